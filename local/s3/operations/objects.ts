import { type FileHandle, open } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { pipeline } from "node:stream/promises";
import { stripQuotes, wholeSeconds } from "../conventions";
import { S3Error, s3Errors } from "../errors";
import type { CutDownloadSpec } from "../faults";
import type { Created } from "../notifications";
import {
  drain,
  header,
  objectHeaders,
  readSmallBody,
  receiveBody,
  type S3Request,
} from "../request";
import { send, sendXml } from "../response";
import { commitObject, newVersionId, type S3State } from "../state";
import type { Bucket, StoredObject } from "../store";
import { childBlocks, childText, document, element } from "../xml";
import { parseTaggingHeader } from "./tagging";

export async function putObject(state: S3State, request: S3Request): Promise<Created> {
  const bucket = state.store.bucket(request.bucket);
  const { req, res } = request;
  const tags = parseTaggingHeader(header(req, "x-amz-tagging"));
  checkPutPreconditions(bucket, request);
  const written = await receiveBody(state.store, req);
  // Checked again after the body: another upload may have finished meanwhile.
  try {
    checkPutPreconditions(bucket, request);
  } catch (error) {
    await state.store.discard(written.file);
    throw error;
  }
  const object: StoredObject = {
    key: request.key,
    file: written.file,
    size: written.size,
    etag: `"${written.md5.toString("hex")}"`,
    ...objectHeaders(req),
    tags,
    lastModified: wholeSeconds(new Date()),
    versionId: newVersionId(state),
  };
  await commitObject(state, bucket, object);
  res.setHeader("ETag", object.etag);
  if (object.versionId) res.setHeader("x-amz-version-id", object.versionId);
  send(res, 200);
  return { bucket: bucket.name, object, eventName: "ObjectCreated:Put", request };
}

function checkPutPreconditions(bucket: Bucket, request: S3Request): void {
  const ifNoneMatch = header(request.req, "if-none-match");
  const ifMatch = header(request.req, "if-match");
  const existing = bucket.objects.get(request.key);
  if (ifNoneMatch === "*" && existing) throw s3Errors.preconditionFailed("If-None-Match");
  if (ifMatch !== undefined) {
    if (!existing) throw s3Errors.noSuchKey(request.key);
    if (ifMatch !== "*" && stripQuotes(ifMatch) !== stripQuotes(existing.etag)) {
      throw s3Errors.preconditionFailed("If-Match");
    }
  }
}

export function getObject(state: S3State, request: S3Request): Promise<undefined> {
  return readObject(state, request, false);
}

export function headObject(state: S3State, request: S3Request): Promise<undefined> {
  return readObject(state, request, true);
}

async function readObject(
  state: S3State,
  request: S3Request,
  headOnly: boolean,
): Promise<undefined> {
  const { req, res, query } = request;
  const object = state.store.object(request.bucket, request.key);
  const versionId = query.get("versionId");
  if (versionId !== null && versionId !== "null" && versionId !== object.versionId) {
    throw new S3Error("NoSuchVersion", 404, "The specified version does not exist.", {
      Key: request.key,
      VersionId: versionId,
    });
  }
  // Open before answering: a concurrent overwrite unlinks the file, but an open
  // handle keeps reading the bytes this response describes.
  const handle = headOnly ? undefined : await open(object.file, "r");
  try {
    const notModified = checkGetPreconditions(req, object);
    const range = parseRange(header(req, "range"), object.size);
    setObjectHeaders(res, object, headOnly);
    if (notModified) {
      send(res, 304);
      return undefined;
    }
    const start = range?.start ?? 0;
    const end = range?.end ?? object.size - 1;
    const length = object.size === 0 ? 0 : end - start + 1;
    res.setHeader("Content-Length", String(length));
    if (range) res.setHeader("Content-Range", `bytes ${start}-${end}/${object.size}`);
    res.statusCode = range ? 206 : 200;
    if (!handle || length === 0) {
      res.end();
      return undefined;
    }
    const cut = state.faults.takeCut(request.bucket, request.key);
    if (cut) {
      await sendCut(handle, res, { start, end }, cut);
      return undefined;
    }
    const stream = handle.createReadStream({ start, end, autoClose: true });
    await pipeline(stream, res).catch(() => {
      // The client went away mid-download; nothing to report to it.
    });
    return undefined;
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/**
 * A download broken on purpose: the headers (full Content-Length) and the first
 * `afterBytes` of the range, each flushed to the socket so the client really has them,
 * then the socket is destroyed short of the length, as a reset connection ends one.
 */
async function sendCut(
  handle: FileHandle,
  res: ServerResponse,
  range: { start: number; end: number },
  cut: CutDownloadSpec,
): Promise<void> {
  const end = Math.min(range.end, range.start + cut.afterBytes - 1);
  if (end >= range.start) {
    for await (const chunk of handle.createReadStream({
      start: range.start,
      end,
      autoClose: false,
    })) {
      await new Promise<void>((resolve) => res.write(chunk, () => resolve()));
    }
  } else {
    res.flushHeaders();
  }
  await cut.beforeCut?.();
  res.destroy();
}

function setObjectHeaders(res: ServerResponse, object: StoredObject, headOnly: boolean): void {
  res.setHeader("Accept-Ranges", "bytes");
  res.setHeader("ETag", object.etag);
  res.setHeader("Last-Modified", object.lastModified.toUTCString());
  res.setHeader("Content-Type", object.contentType);
  if (object.contentEncoding) res.setHeader("Content-Encoding", object.contentEncoding);
  if (object.contentDisposition) res.setHeader("Content-Disposition", object.contentDisposition);
  if (object.cacheControl) res.setHeader("Cache-Control", object.cacheControl);
  if (object.versionId) res.setHeader("x-amz-version-id", object.versionId);
  for (const [name, value] of Object.entries(object.metadata)) {
    res.setHeader(`x-amz-meta-${name}`, value);
  }
  if (!headOnly && object.tags.length > 0) {
    res.setHeader("x-amz-tagging-count", String(object.tags.length));
  }
}

/** True when the GET should be answered 304; throws 412 when If-Match fails. */
function checkGetPreconditions(req: IncomingMessage, object: StoredObject): boolean {
  const ifMatch = header(req, "if-match");
  if (
    ifMatch !== undefined &&
    ifMatch !== "*" &&
    stripQuotes(ifMatch) !== stripQuotes(object.etag)
  ) {
    throw s3Errors.preconditionFailed("If-Match");
  }
  const ifNoneMatch = header(req, "if-none-match");
  return (
    ifNoneMatch !== undefined &&
    (ifNoneMatch === "*" || stripQuotes(ifNoneMatch) === stripQuotes(object.etag))
  );
}

/**
 * `bytes=a-b`, `bytes=a-`, `bytes=-n`. Like S3, a header it cannot use (multiple ranges,
 * garbage) is ignored and the whole object is returned; a start past the end is a 416.
 */
function parseRange(
  value: string | undefined,
  size: number,
): { start: number; end: number } | undefined {
  if (value === undefined) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(value.trim());
  if (!match) return undefined;
  const [, startText = "", endText = ""] = match;
  if (startText === "" && endText === "") return undefined;
  if (startText === "") {
    const suffix = Number(endText);
    if (suffix === 0) throw s3Errors.invalidRange(size);
    if (size === 0) return undefined;
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(startText);
  const end = endText === "" ? size - 1 : Math.min(Number(endText), size - 1);
  if (endText !== "" && Number(endText) < start) return undefined;
  if (start >= size) throw s3Errors.invalidRange(size);
  return { start, end };
}

export async function deleteObject(state: S3State, request: S3Request): Promise<undefined> {
  await drain(request.req);
  const bucket = state.store.bucket(request.bucket);
  const object = bucket.objects.get(request.key);
  if (object) {
    bucket.objects.delete(request.key);
    await state.store.discard(object.file);
  }
  // S3 answers 204 whether or not the key existed.
  send(request.res, 204);
  return undefined;
}

export async function deleteObjects(state: S3State, request: S3Request): Promise<undefined> {
  const bucket = state.store.bucket(request.bucket);
  const xml = await readSmallBody(request.req);
  const quiet = childText(xml, "Quiet") === "true";
  const keys = childBlocks(xml, "Object").map((block) => childText(block, "Key"));
  if (keys.length === 0 || keys.length > 1000 || keys.some((key) => key === undefined)) {
    throw s3Errors.malformedXml();
  }
  let deleted = "";
  for (const key of keys as string[]) {
    const object = bucket.objects.get(key);
    if (object) {
      bucket.objects.delete(key);
      await state.store.discard(object.file);
    }
    if (!quiet) deleted += `<Deleted>${element("Key", key)}</Deleted>`;
  }
  sendXml(request.res, 200, document("DeleteResult", deleted));
  return undefined;
}
