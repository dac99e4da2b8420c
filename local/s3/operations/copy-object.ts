import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import { stripQuotes, wholeSeconds } from "../conventions";
import { S3Error, s3Errors } from "../errors";
import type { Created } from "../notifications";
import { drain, header, objectHeaders, type S3Request } from "../request";
import { sendXml } from "../response";
import { commitObject, newVersionId, type S3State } from "../state";
import type { StoredObject } from "../store";
import { document, element } from "../xml";
import { parseTaggingHeader } from "./tagging";

type Directive = "COPY" | "REPLACE";

export async function copyObject(state: S3State, request: S3Request): Promise<Created> {
  const { req, res } = request;
  await drain(req);
  const target = state.store.bucket(request.bucket);
  const source = parseCopySource(header(req, "x-amz-copy-source") ?? "");
  const sourceObject = state.store.object(source.bucket, source.key);
  if (source.versionId !== undefined && source.versionId !== sourceObject.versionId) {
    throw new S3Error("NoSuchVersion", 404, "The specified version does not exist.");
  }
  const { metadataDirective, taggingDirective } = parseDirectives(req);
  if (
    source.bucket === request.bucket &&
    source.key === request.key &&
    metadataDirective === "COPY"
  ) {
    throw s3Errors.invalidRequest(
      "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
    );
  }
  const copySourceIfMatch = header(req, "x-amz-copy-source-if-match");
  if (
    copySourceIfMatch !== undefined &&
    stripQuotes(copySourceIfMatch) !== stripQuotes(sourceObject.etag)
  ) {
    throw s3Errors.preconditionFailed("x-amz-copy-source-If-Match");
  }
  const object = await copyOf(state, request, sourceObject, metadataDirective, taggingDirective);
  await commitObject(state, target, object);
  if (sourceObject.versionId) res.setHeader("x-amz-copy-source-version-id", sourceObject.versionId);
  if (object.versionId) res.setHeader("x-amz-version-id", object.versionId);
  sendXml(
    res,
    200,
    document(
      "CopyObjectResult",
      element("LastModified", object.lastModified.toISOString()) + element("ETag", object.etag),
    ),
  );
  return { bucket: target.name, object, eventName: "ObjectCreated:Copy", request };
}

function parseDirectives(req: IncomingMessage): {
  metadataDirective: Directive;
  taggingDirective: Directive;
} {
  const metadataDirective = header(req, "x-amz-metadata-directive") ?? "COPY";
  const taggingDirective = header(req, "x-amz-tagging-directive") ?? "COPY";
  if (
    !["COPY", "REPLACE"].includes(metadataDirective) ||
    !["COPY", "REPLACE"].includes(taggingDirective)
  ) {
    throw s3Errors.invalidArgument("Unknown metadata or tagging directive.");
  }
  return {
    metadataDirective: metadataDirective as Directive,
    taggingDirective: taggingDirective as Directive,
  };
}

/** The new object: its own file, with the source's attributes unless the request replaces them. */
async function copyOf(
  state: S3State,
  request: S3Request,
  sourceObject: StoredObject,
  metadataDirective: Directive,
  taggingDirective: Directive,
): Promise<StoredObject> {
  const file = await state.store.copyFile(sourceObject.file);
  const described =
    metadataDirective === "REPLACE"
      ? objectHeaders(request.req)
      : {
          contentType: sourceObject.contentType,
          contentEncoding: sourceObject.contentEncoding,
          contentDisposition: sourceObject.contentDisposition,
          cacheControl: sourceObject.cacheControl,
          metadata: { ...sourceObject.metadata },
        };
  return {
    key: request.key,
    file,
    size: sourceObject.size,
    // A copy made in one request gets the MD5 of its bytes even if the source was multipart.
    etag: sourceObject.etag.includes("-") ? `"${await md5OfFile(file)}"` : sourceObject.etag,
    ...described,
    tags:
      taggingDirective === "REPLACE"
        ? parseTaggingHeader(header(request.req, "x-amz-tagging"))
        : sourceObject.tags.map((tag) => ({ ...tag })),
    lastModified: wholeSeconds(new Date()),
    versionId: newVersionId(state),
  };
}

function parseCopySource(value: string): { bucket: string; key: string; versionId?: string } {
  const questionMark = value.indexOf("?");
  const path = questionMark < 0 ? value : value.slice(0, questionMark);
  const versionId =
    questionMark < 0
      ? undefined
      : (new URLSearchParams(value.slice(questionMark + 1)).get("versionId") ?? undefined);
  let decoded: string;
  try {
    decoded = decodeURIComponent(path.replace(/^\//, ""));
  } catch {
    throw s3Errors.invalidArgument("Invalid copy source encoding", "x-amz-copy-source", value);
  }
  const slash = decoded.indexOf("/");
  if (slash <= 0 || slash === decoded.length - 1) {
    throw s3Errors.invalidArgument(
      "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
      "x-amz-copy-source",
      value,
    );
  }
  return { bucket: decoded.slice(0, slash), key: decoded.slice(slash + 1), versionId };
}

async function md5OfFile(file: string): Promise<string> {
  const handle = await open(file, "r");
  const hash = createHash("md5");
  try {
    for await (const chunk of handle.createReadStream({ autoClose: false }))
      hash.update(chunk as Buffer);
  } finally {
    await handle.close();
  }
  return hash.digest("hex");
}
