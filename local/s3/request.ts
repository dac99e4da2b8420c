import type { IncomingMessage, ServerResponse } from "node:http";
import { AwsChunkedDecoder } from "./aws-chunked";
import { S3Error, s3Errors } from "./errors";
import type { ExpectedDigests, ObjectStore, WrittenBody } from "./store";

/** One request as the operations see it: path-style target already split and decoded. */
export interface S3Request {
  req: IncomingMessage;
  res: ServerResponse;
  requestId: string;
  hostId: string;
  method: string;
  bucket: string;
  key: string;
  query: URLSearchParams;
}

const MAX_XML_BODY = 2 * 1024 * 1024;

export function parseTarget(url: string): { bucket: string; key: string; query: URLSearchParams } {
  const questionMark = url.indexOf("?");
  const rawPath = questionMark < 0 ? url : url.slice(0, questionMark);
  const rawQuery = questionMark < 0 ? "" : url.slice(questionMark + 1);
  if (!rawPath.startsWith("/"))
    throw new S3Error("InvalidURI", 400, "Couldn't parse the specified URI.");
  const afterSlash = rawPath.slice(1);
  const slash = afterSlash.indexOf("/");
  try {
    // Split before decoding: an encoded "/" (%2F) in a key stays part of the key.
    const bucket = decodeURIComponent(slash < 0 ? afterSlash : afterSlash.slice(0, slash));
    const key = slash < 0 ? "" : decodeURIComponent(afterSlash.slice(slash + 1));
    return { bucket, key, query: new URLSearchParams(rawQuery) };
  } catch {
    throw new S3Error("InvalidURI", 400, "Couldn't parse the specified URI.");
  }
}

export function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(",") : value;
}

/** The object attributes a PUT or CreateMultipartUpload describes in its headers. */
export function objectHeaders(req: IncomingMessage) {
  const metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (name.startsWith("x-amz-meta-") && value !== undefined) {
      metadata[name.slice("x-amz-meta-".length)] = Array.isArray(value) ? value.join(",") : value;
    }
  }
  // aws-chunked describes the transfer, not the object; S3 does not store it.
  const contentEncoding = (header(req, "content-encoding") ?? "")
    .split(",")
    .map((value) => value.trim())
    .filter((value) => value !== "" && value !== "aws-chunked")
    .join(", ");
  return {
    contentType: header(req, "content-type") ?? "binary/octet-stream",
    contentEncoding: contentEncoding === "" ? undefined : contentEncoding,
    contentDisposition: header(req, "content-disposition"),
    cacheControl: header(req, "cache-control"),
    metadata,
  };
}

/** Streams a PUT body to disk, decoding aws-chunked and verifying the checksums sent. */
export async function receiveBody(store: ObjectStore, req: IncomingMessage): Promise<WrittenBody> {
  const contentSha256 = header(req, "x-amz-content-sha256") ?? "";
  const chunked =
    contentSha256.startsWith("STREAMING-") ||
    (header(req, "content-encoding") ?? "").split(",").some((v) => v.trim() === "aws-chunked");
  const declaredLength = declaredLengthOf(req, chunked);
  const decoder = chunked ? new AwsChunkedDecoder() : undefined;
  const algorithm = (
    header(req, "x-amz-sdk-checksum-algorithm") ??
    checksumAlgorithmOf(header(req, "x-amz-trailer")) ??
    checksumAlgorithmOf(
      Object.keys(req.headers).find((name) => name.startsWith("x-amz-checksum-")),
    ) ??
    ""
  ).toLowerCase();
  const want = {
    crc32: algorithm === "crc32",
    sha1: algorithm === "sha1",
    sha256: algorithm === "sha256",
  };
  const expected = (): ExpectedDigests => {
    const value = (name: string) => header(req, name) ?? decoder?.trailers[name];
    return {
      contentMd5: header(req, "content-md5"),
      crc32: value("x-amz-checksum-crc32"),
      sha1: value("x-amz-checksum-sha1"),
      sha256: value("x-amz-checksum-sha256"),
    };
  };
  const source = decoder ? req.pipe(decoder) : req;
  if (decoder) req.on("error", (error) => decoder.destroy(error));
  return store.writeBody(source, expected, want, declaredLength);
}

function declaredLengthOf(req: IncomingMessage, chunked: boolean): number | undefined {
  const text = chunked
    ? header(req, "x-amz-decoded-content-length")
    : header(req, "content-length");
  const declaredLength = text === undefined ? undefined : Number(text);
  if (declaredLength !== undefined && !Number.isSafeInteger(declaredLength)) {
    throw s3Errors.invalidArgument("Invalid content length");
  }
  return declaredLength;
}

function checksumAlgorithmOf(name: string | undefined): string | undefined {
  return name?.startsWith("x-amz-checksum-") ? name.slice("x-amz-checksum-".length) : undefined;
}

/** Reads a small XML request body (tagging, multipart completion, batch delete). */
export async function readSmallBody(req: IncomingMessage): Promise<string> {
  const chunked = (header(req, "x-amz-content-sha256") ?? "").startsWith("STREAMING-");
  const decoder = chunked ? new AwsChunkedDecoder() : undefined;
  if (decoder) req.on("error", (error) => decoder.destroy(error));
  const source = decoder ? req.pipe(decoder) : req;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of source) {
    size += (chunk as Buffer).length;
    if (size > MAX_XML_BODY) throw s3Errors.malformedXml();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

export async function drain(req: IncomingMessage): Promise<void> {
  for await (const _ of req) {
    // Discarded: the operation has no body, but the connection must be reusable.
  }
}
