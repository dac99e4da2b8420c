import {
  AbortMultipartUploadCommand,
  type CompletedPart,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";

/** S3's smallest part (all parts but the last). */
export const MIN_PART_BYTES = 5 * 1024 * 1024;

/**
 * Writes one result object through the S3 API as it is produced, holding at most one
 * part in memory. Objects up to `multipartThresholdBytes` go up in one PutObject; larger
 * ones (or all, with threshold 0, as Athena does) by multipart upload, so S3 reports
 * `ObjectCreated:CompleteMultipartUpload`.
 */
export class S3ResultWriter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private uploadId: string | undefined;
  private readonly parts: CompletedPart[] = [];
  private readonly partBytes: number;
  bytesWritten = 0;

  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
    private readonly key: string,
    private readonly contentType: string,
    private readonly multipartThresholdBytes: number,
  ) {
    this.partBytes = Math.max(MIN_PART_BYTES, multipartThresholdBytes);
  }

  /** Buffers `text`; awaits an upload only when a part is full. */
  async write(text: string): Promise<void> {
    const bytes = Buffer.from(text, "utf8");
    this.pending.push(bytes);
    this.pendingBytes += bytes.length;
    this.bytesWritten += bytes.length;
    if (this.pendingBytes > this.multipartThresholdBytes && this.pendingBytes >= this.partBytes) {
      await this.uploadPart(false);
    }
  }

  async finish(): Promise<void> {
    if (this.uploadId === undefined && this.pendingBytes <= this.multipartThresholdBytes) {
      await this.s3.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.key,
          Body: this.take(),
          ContentType: this.contentType,
        }),
      );
      return;
    }
    await this.uploadPart(true);
    await this.s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: this.bucket,
        Key: this.key,
        UploadId: this.uploadId,
        MultipartUpload: { Parts: this.parts },
      }),
    );
  }

  /** Drops a started multipart upload so no parts are left behind. */
  async abort(): Promise<void> {
    if (this.uploadId === undefined) return;
    await this.s3
      .send(
        new AbortMultipartUploadCommand({
          Bucket: this.bucket,
          Key: this.key,
          UploadId: this.uploadId,
        }),
      )
      .catch(() => undefined);
  }

  private take(): Buffer {
    const body = Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    return body;
  }

  private async uploadPart(last: boolean): Promise<void> {
    if (this.uploadId === undefined) {
      const created = await this.s3.send(
        new CreateMultipartUploadCommand({
          Bucket: this.bucket,
          Key: this.key,
          ContentType: this.contentType,
        }),
      );
      this.uploadId = created.UploadId;
    }
    if (!last && this.pendingBytes < this.partBytes) return;
    if (last && this.pendingBytes === 0 && this.parts.length > 0) return;
    const partNumber = this.parts.length + 1;
    const response = await this.s3.send(
      new UploadPartCommand({
        Bucket: this.bucket,
        Key: this.key,
        UploadId: this.uploadId,
        PartNumber: partNumber,
        Body: this.take(),
      }),
    );
    this.parts.push({ ETag: response.ETag, PartNumber: partNumber });
  }
}
