import { Transform, type TransformCallback } from "node:stream";
import { s3Errors } from "./errors";

/**
 * Decodes an `aws-chunked` request body (`Content-Encoding: aws-chunked`), which SDK v3
 * sends for streamed uploads when it adds a flexible checksum as a trailer:
 *
 *   <hex size>[;chunk-signature=...]\r\n<bytes>\r\n ... 0\r\n<trailer>:<value>\r\n\r\n
 *
 * Emits the payload bytes only; the trailing headers (x-amz-checksum-crc32, ...) are
 * collected in `trailers`. A body that ends early or is malformed fails the stream with
 * an S3 error.
 */
export class AwsChunkedDecoder extends Transform {
  readonly trailers: Record<string, string> = {};
  private buffered: Buffer = Buffer.alloc(0);
  private state: "size" | "data" | "data-end" | "trailer" | "done" = "size";
  private remainingInChunk = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    try {
      this.consume();
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback) {
    if (this.state !== "done") {
      callback(s3Errors.incompleteBody());
      return;
    }
    callback();
  }

  private consume(): void {
    while (this.buffered.length > 0) {
      switch (this.state) {
        case "size": {
          const line = this.takeLine();
          if (line === undefined) return;
          const sizeText = line.split(";", 1)[0]?.trim() ?? "";
          if (!/^[0-9a-fA-F]+$/.test(sizeText)) {
            throw s3Errors.invalidArgument("Invalid chunk size in aws-chunked body");
          }
          this.remainingInChunk = Number.parseInt(sizeText, 16);
          this.state = this.remainingInChunk === 0 ? "trailer" : "data";
          break;
        }
        case "data": {
          const take = Math.min(this.remainingInChunk, this.buffered.length);
          this.push(this.buffered.subarray(0, take));
          this.buffered = this.buffered.subarray(take);
          this.remainingInChunk -= take;
          if (this.remainingInChunk === 0) this.state = "data-end";
          break;
        }
        case "data-end": {
          const line = this.takeLine();
          if (line === undefined) return;
          if (line !== "") throw s3Errors.invalidArgument("Malformed aws-chunked body");
          this.state = "size";
          break;
        }
        case "trailer": {
          const line = this.takeLine();
          if (line === undefined) return;
          if (line === "") {
            this.state = "done";
            break;
          }
          const colon = line.indexOf(":");
          if (colon <= 0) throw s3Errors.invalidArgument("Malformed aws-chunked trailer");
          this.trailers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
          break;
        }
        case "done":
          // Bytes after the final CRLF: tolerated and ignored.
          this.buffered = Buffer.alloc(0);
          return;
      }
    }
  }

  /** Removes and returns one CRLF-terminated line, or undefined if it is not complete yet. */
  private takeLine(): string | undefined {
    const end = this.buffered.indexOf("\r\n");
    if (end < 0) {
      if (this.buffered.length > 64 * 1024) {
        throw s3Errors.invalidArgument("aws-chunked header line too long");
      }
      return undefined;
    }
    const line = this.buffered.subarray(0, end).toString("latin1");
    this.buffered = this.buffered.subarray(end + 2);
    return line;
  }
}
