import { createHash, randomBytes } from "node:crypto";
import { encodeListKey, stripQuotes, wholeSeconds } from "../conventions";
import { s3Errors } from "../errors";
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
import {
  MIN_PART_SIZE,
  type MultipartUpload,
  type StoredObject,
  type UploadedPart,
} from "../store";
import { childBlocks, childText, document, element } from "../xml";
import { parseTaggingHeader } from "./tagging";

export async function createMultipartUpload(
  state: S3State,
  request: S3Request,
): Promise<undefined> {
  await drain(request.req);
  const bucket = state.store.bucket(request.bucket);
  const tags = parseTaggingHeader(header(request.req, "x-amz-tagging"));
  const uploadId = randomBytes(32).toString("base64url");
  bucket.uploads.set(uploadId, {
    uploadId,
    key: request.key,
    initiated: new Date(),
    ...objectHeaders(request.req),
    tags,
    parts: new Map(),
  });
  sendXml(
    request.res,
    200,
    document(
      "InitiateMultipartUploadResult",
      element("Bucket", bucket.name) + element("Key", request.key) + element("UploadId", uploadId),
    ),
  );
  return undefined;
}

export async function uploadPart(state: S3State, request: S3Request): Promise<undefined> {
  const target = findUpload(state, request);
  const partNumberText = request.query.get("partNumber") ?? "";
  const partNumber = Number(partNumberText);
  if (!/^\d+$/.test(partNumberText) || partNumber < 1 || partNumber > 10000) {
    throw s3Errors.invalidArgument(
      "Part number must be an integer between 1 and 10000, inclusive",
      "partNumber",
      partNumberText,
    );
  }
  const written = await receiveBody(state.store, request.req);
  const etag = `"${written.md5.toString("hex")}"`;
  // The upload may have been completed or aborted while the part was arriving.
  if (state.store.bucket(request.bucket).uploads.get(target.uploadId) !== target) {
    await state.store.discard(written.file);
    throw s3Errors.noSuchUpload(target.uploadId);
  }
  const previous = target.parts.get(partNumber);
  target.parts.set(partNumber, {
    partNumber,
    file: written.file,
    size: written.size,
    etag,
    lastModified: new Date(),
  });
  if (previous) await state.store.discard(previous.file);
  request.res.setHeader("ETag", etag);
  send(request.res, 200);
  return undefined;
}

export async function completeMultipartUpload(
  state: S3State,
  request: S3Request,
): Promise<Created> {
  const target = findUpload(state, request);
  const bucket = state.store.bucket(request.bucket);
  const parts = requestedParts(target, await readSmallBody(request.req));
  // Claimed before the (slow) concatenation so a concurrent complete or abort fails.
  bucket.uploads.delete(target.uploadId);
  let file: string;
  try {
    file = await state.store.concatenate(parts.map((part) => part.file));
  } catch (error) {
    bucket.uploads.set(target.uploadId, target);
    throw error;
  }
  await discardParts(state, target);
  const md5s = Buffer.concat(parts.map((part) => Buffer.from(stripQuotes(part.etag), "hex")));
  const object: StoredObject = {
    key: request.key,
    file,
    size: parts.reduce((total, part) => total + part.size, 0),
    etag: `"${createHash("md5").update(md5s).digest("hex")}-${parts.length}"`,
    contentType: target.contentType,
    contentEncoding: target.contentEncoding,
    contentDisposition: target.contentDisposition,
    cacheControl: target.cacheControl,
    metadata: target.metadata,
    tags: target.tags,
    lastModified: wholeSeconds(new Date()),
    versionId: newVersionId(state),
  };
  await commitObject(state, bucket, object);
  if (object.versionId) request.res.setHeader("x-amz-version-id", object.versionId);
  sendXml(
    request.res,
    200,
    document(
      "CompleteMultipartUploadResult",
      element("Location", `${state.endpoint}/${bucket.name}/${encodeListKey(request.key)}`) +
        element("Bucket", bucket.name) +
        element("Key", request.key) +
        element("ETag", object.etag),
    ),
  );
  return {
    bucket: bucket.name,
    object,
    eventName: "ObjectCreated:CompleteMultipartUpload",
    request,
  };
}

/** The parts the completion lists, checked against the ones uploaded. */
function requestedParts(target: MultipartUpload, xml: string): UploadedPart[] {
  const requested = childBlocks(xml, "Part").map((block) => ({
    partNumber: Number(childText(block, "PartNumber")),
    etag: stripQuotes(childText(block, "ETag") ?? ""),
  }));
  if (requested.length === 0) throw s3Errors.malformedXml();
  const parts = requested.map(({ partNumber, etag }, index) => {
    const previous = requested[index - 1];
    if (previous && partNumber <= previous.partNumber) throw s3Errors.invalidPartOrder();
    const part = target.parts.get(partNumber);
    if (!part || stripQuotes(part.etag) !== etag) throw s3Errors.invalidPart();
    return part;
  });
  if (parts.slice(0, -1).some((part) => part.size < MIN_PART_SIZE)) {
    throw s3Errors.entityTooSmall();
  }
  return parts;
}

export async function abortMultipartUpload(state: S3State, request: S3Request): Promise<undefined> {
  await drain(request.req);
  const target = findUpload(state, request);
  state.store.bucket(request.bucket).uploads.delete(target.uploadId);
  await discardParts(state, target);
  send(request.res, 204);
  return undefined;
}

export async function discardParts(state: S3State, target: MultipartUpload): Promise<void> {
  for (const part of target.parts.values()) await state.store.discard(part.file);
  target.parts.clear();
}

function findUpload(state: S3State, request: S3Request): MultipartUpload {
  const uploadId = request.query.get("uploadId") ?? "";
  const found = state.store.bucket(request.bucket).uploads.get(uploadId);
  if (!found || found.key !== request.key) throw s3Errors.noSuchUpload(uploadId);
  return found;
}
