import { createHash, randomUUID } from "node:crypto";
import { createWriteStream } from "node:fs";
import { copyFile, mkdir, open, rm, unlink } from "node:fs/promises";
import { join } from "node:path";
import { Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { crc32 } from "node:zlib";
import { S3Error, s3Errors } from "./errors";

export interface Tag {
  Key: string;
  Value: string;
}

/** Object metadata lives in memory; the bytes live in `file` on disk. */
export interface StoredObject {
  key: string;
  file: string;
  size: number;
  /** Quoted, as in the ETag header: `"<md5 hex>"` or `"<md5 hex>-<parts>"`. */
  etag: string;
  contentType: string;
  contentEncoding?: string;
  contentDisposition?: string;
  cacheControl?: string;
  metadata: Record<string, string>;
  tags: Tag[];
  lastModified: Date;
  versionId?: string;
}

export interface UploadedPart {
  partNumber: number;
  file: string;
  size: number;
  etag: string;
  lastModified: Date;
}

export interface MultipartUpload {
  uploadId: string;
  key: string;
  initiated: Date;
  contentType: string;
  contentEncoding?: string;
  contentDisposition?: string;
  cacheControl?: string;
  metadata: Record<string, string>;
  tags: Tag[];
  parts: Map<number, UploadedPart>;
}

export interface Bucket {
  name: string;
  created: Date;
  objects: Map<string, StoredObject>;
  uploads: Map<string, MultipartUpload>;
}

/** Checksums the client asked S3 to verify (header or aws-chunked trailer values, base64). */
export interface ExpectedDigests {
  contentMd5?: string;
  crc32?: string;
  sha1?: string;
  sha256?: string;
}

export interface WrittenBody {
  file: string;
  size: number;
  md5: Buffer;
}

export const MIN_PART_SIZE = 5 * 1024 * 1024;

/**
 * Hashes bytes on their way to disk. CRC32/SHA-1/SHA-256 only when the client sent one
 * (the SDK's default flexible checksum is CRC32); CRC32C and CRC64NVME are not verified.
 */
class Digester extends Transform {
  readonly md5 = createHash("md5");
  size = 0;
  crc?: number;
  readonly sha1?: ReturnType<typeof createHash>;
  readonly sha256?: ReturnType<typeof createHash>;

  constructor(want: { crc32: boolean; sha1: boolean; sha256: boolean }) {
    super();
    if (want.crc32) this.crc = 0;
    if (want.sha1) this.sha1 = createHash("sha1");
    if (want.sha256) this.sha256 = createHash("sha256");
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
    this.size += chunk.length;
    this.md5.update(chunk);
    if (this.crc !== undefined) this.crc = crc32(chunk, this.crc);
    this.sha1?.update(chunk);
    this.sha256?.update(chunk);
    callback(null, chunk);
  }
}

function crc32Base64(value: number): string {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(value >>> 0);
  return bytes.toString("base64");
}

export class ObjectStore {
  readonly buckets = new Map<string, Bucket>();
  private readonly objectsDir: string;

  constructor(readonly dir: string) {
    this.objectsDir = join(dir, "objects");
  }

  async init(): Promise<void> {
    await mkdir(this.objectsDir, { recursive: true });
  }

  bucket(name: string): Bucket {
    const bucket = this.buckets.get(name);
    if (!bucket) throw s3Errors.noSuchBucket(name);
    return bucket;
  }

  object(bucketName: string, key: string): StoredObject {
    const object = this.bucket(bucketName).objects.get(key);
    if (!object) throw s3Errors.noSuchKey(key);
    return object;
  }

  /**
   * Streams `body` into a new file, hashing as it goes; verifies the digests the client
   * sent once the body is complete (which for aws-chunked is when the trailer arrives, so
   * `expected` is read lazily). Nothing is kept when the body fails or does not verify.
   */
  async writeBody(
    body: NodeJS.ReadableStream,
    expected: () => ExpectedDigests,
    want: { crc32: boolean; sha1: boolean; sha256: boolean },
    declaredLength?: number,
  ): Promise<WrittenBody> {
    const file = join(this.objectsDir, randomUUID());
    const digester = new Digester(want);
    try {
      await pipeline(body, digester, createWriteStream(file));
      const md5 = digester.md5.digest();
      if (declaredLength !== undefined && digester.size !== declaredLength) {
        throw s3Errors.incompleteBody();
      }
      const digests = expected();
      if (digests.contentMd5 !== undefined && digests.contentMd5 !== md5.toString("base64")) {
        throw s3Errors.badDigest("The Content-MD5 you specified did not match what we received.");
      }
      if (digests.crc32 !== undefined && digester.crc !== undefined) {
        if (digests.crc32 !== crc32Base64(digester.crc)) {
          throw s3Errors.badDigest(
            "The CRC32 you specified did not match the calculated checksum.",
          );
        }
      }
      if (digests.sha1 !== undefined && digester.sha1) {
        if (digests.sha1 !== digester.sha1.digest("base64")) {
          throw s3Errors.badDigest("The SHA1 you specified did not match the calculated checksum.");
        }
      }
      if (digests.sha256 !== undefined && digester.sha256) {
        if (digests.sha256 !== digester.sha256.digest("base64")) {
          throw s3Errors.badDigest(
            "The SHA256 you specified did not match the calculated checksum.",
          );
        }
      }
      return { file, size: digester.size, md5 };
    } catch (error) {
      await unlink(file).catch(() => undefined);
      throw error instanceof S3Error ? error : wrapBodyError(error);
    }
  }

  /** Concatenates part files into one object file (streamed, never buffered whole). */
  async concatenate(files: string[]): Promise<string> {
    const target = join(this.objectsDir, randomUUID());
    const handle = await open(target, "w");
    try {
      const out = handle.createWriteStream();
      for (const partFile of files) {
        const partHandle = await open(partFile, "r");
        await pipeline(partHandle.createReadStream(), out, { end: false });
      }
      await new Promise<void>((resolve, reject) => {
        out.end((error?: Error | null) => (error ? reject(error) : resolve()));
      });
    } catch (error) {
      await handle.close().catch(() => undefined);
      await unlink(target).catch(() => undefined);
      throw error;
    }
    return target;
  }

  async copyFile(source: string): Promise<string> {
    const target = join(this.objectsDir, randomUUID());
    await copyFile(source, target);
    return target;
  }

  /** Removes a stored file. Readers that already opened it keep reading (POSIX unlink). */
  async discard(file: string): Promise<void> {
    await unlink(file).catch(() => undefined);
  }

  async removeAll(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

function wrapBodyError(error: unknown): Error {
  // A client that hangs up mid-body, or a body shorter than announced.
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ERR_STREAM_PREMATURE_CLOSE" || code === "ECONNRESET") {
    return s3Errors.incompleteBody();
  }
  return error instanceof Error ? error : new Error(String(error));
}
