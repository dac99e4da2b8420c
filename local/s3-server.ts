import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, open } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import type { S3Event } from "aws-lambda";
import { listen } from "./listen";
import { AwsChunkedDecoder } from "./s3/aws-chunked";
import { S3Error, s3Errors } from "./s3/errors";
import {
  type Bucket,
  type ExpectedDigests,
  MIN_PART_SIZE,
  type MultipartUpload,
  ObjectStore,
  type StoredObject,
  type Tag,
} from "./s3/store";
import { childBlocks, childText, document, element } from "./s3/xml";
import {
  createHostId,
  createObjectCreatedEvent,
  createRequestId,
  createTestEvent,
  type ObjectCreatedEventName,
} from "./s3-events";

/**
 * An in-process S3 stand-in speaking enough of the S3 REST API (path-style) for the real
 * SDK v3 S3Client, with S3-shaped event notifications delivered asynchronously to
 * in-process callbacks (as S3 invokes a Lambda asynchronously). Object bytes are kept in
 * files, metadata in memory. Signatures are not checked.
 *
 * Where it knowingly differs from S3:
 * - Path-style addressing only; one region; any credentials.
 * - Events: ObjectCreated (Put, Copy, CompleteMultipartUpload) only, each delivered exactly
 *   once (S3 promises at least once). Rule prefix/suffix match the plain key; S3 matches
 *   filter values against the URL-encoded key (a space must be written "+").
 * - `versioning: true` gives objects a versionId but keeps only the latest version, and
 *   DeleteObject removes it (no delete markers).
 * - CRC32, SHA-1, SHA-256 and Content-MD5 are verified; CRC32C/CRC64NVME are accepted
 *   unverified; checksums are not stored or returned on GET.
 * - Not served (NotImplemented): ListObjects v1, ListParts, ListMultipartUploads,
 *   UploadPartCopy, ACLs, policies and other bucket configuration, SSE, object lock.
 * - Last-Modified has whole seconds, in listings too.
 */

export interface NotificationRule {
  /** Shown as `s3.configurationId` in the event. */
  id?: string;
  /** Only objects in this bucket; any bucket when omitted. */
  bucket?: string;
  /** Filters on the (unencoded) key name, as S3's prefix/suffix filter rules do. */
  prefix?: string;
  suffix?: string;
  /** `ObjectCreated:*` (the default), `ObjectCreated:Put`, ... with or without `s3:`. */
  events?: string[];
  /**
   * Sends an `s3:TestEvent` when the rule is added, as S3 does when a notification
   * configuration is saved. A Lambda handler typed for S3Event receives it the same way.
   */
  sendTestEvent?: boolean;
  deliver(event: S3Event): Promise<unknown> | unknown;
}

export interface DeliveryFailure {
  ruleId: string;
  event: S3Event;
  error: unknown;
}

export interface S3ServerOptions {
  /** 0 (the default) picks a free port. */
  port?: number;
  /** Where object bytes are stored; a fresh temp dir (removed on stop) when omitted. */
  dir?: string;
  region?: string;
  notifications?: NotificationRule[];
  /** Give every object a versionId (only the latest version is kept). */
  versioning?: boolean;
  /** Called for every `deliver` that throws or rejects (they are also kept in `deliveryErrors`). */
  onDeliveryError?: (failure: DeliveryFailure) => void;
}

export interface S3Server {
  /** `http://127.0.0.1:<port>`: use with `forcePathStyle: true`. */
  endpoint: string;
  port: number;
  region: string;
  /** Where object bytes live. */
  dir: string;
  addNotification(rule: NotificationRule): void;
  /** Resolves when no notification deliveries are in flight (including ones they caused). */
  idle(): Promise<void>;
  /** Every failed delivery so far. */
  readonly deliveryErrors: DeliveryFailure[];
  /** Creates a bucket without going through HTTP (no-op when it exists). */
  createBucket(name: string): void;
  /** Waits for deliveries in flight, closes every socket, removes the temp dir it made. */
  stop(): Promise<void>;
}

interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  requestId: string;
  hostId: string;
  method: string;
  bucket: string;
  key: string;
  query: URLSearchParams;
}

interface Created {
  bucket: string;
  object: StoredObject;
  eventName: ObjectCreatedEventName;
  ctx: RequestContext;
}

const MAX_KEY_BYTES = 1024;
const MAX_XML_BODY = 2 * 1024 * 1024;
const OWNER_ID = "75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a";

export async function startS3Server(options: S3ServerOptions = {}): Promise<S3Server> {
  const region = options.region ?? "us-east-1";
  const ownsDir = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), "s3-stand-in-")));
  const store = new ObjectStore(dir);
  await store.init();

  const rules: NotificationRule[] = [];
  const inFlight = new Set<Promise<void>>();
  const deliveryErrors: DeliveryFailure[] = [];
  let ruleCounter = 0;

  function ruleId(rule: NotificationRule): string {
    return rule.id ?? `notification-${rules.indexOf(rule) + 1}`;
  }

  /**
   * Registers the delivery synchronously (so `idle()` sees it as soon as the client has
   * its response) and runs it on a later tick, after the response is written.
   */
  function schedule(rule: NotificationRule, event: S3Event): void {
    const delivery = new Promise<void>((resolve) => {
      setImmediate(() => {
        Promise.resolve()
          .then(() => rule.deliver(event))
          .catch((error: unknown) => {
            const failure = { ruleId: ruleId(rule), event, error };
            deliveryErrors.push(failure);
            try {
              options.onDeliveryError?.(failure);
            } catch {
              // A failing error callback must not take the server down either.
            }
          })
          .finally(resolve);
      });
    });
    inFlight.add(delivery);
    void delivery.then(() => inFlight.delete(delivery));
  }

  function addNotification(rule: NotificationRule): void {
    ruleCounter += 1;
    const withId = rule.id === undefined ? { ...rule, id: `notification-${ruleCounter}` } : rule;
    rules.push(withId);
    if (withId.sendTestEvent) {
      for (const bucket of withId.bucket === undefined
        ? [...store.buckets.keys()]
        : [withId.bucket]) {
        schedule(withId, createTestEvent(bucket) as unknown as S3Event);
      }
    }
  }

  function notifyCreated({ bucket, object, eventName, ctx }: Created): void {
    for (const rule of rules) {
      if (rule.bucket !== undefined && rule.bucket !== bucket) continue;
      if (rule.prefix !== undefined && !object.key.startsWith(rule.prefix)) continue;
      if (rule.suffix !== undefined && !object.key.endsWith(rule.suffix)) continue;
      if (!matchesEventName(rule.events, eventName)) continue;
      schedule(
        rule,
        createObjectCreatedEvent({
          bucket,
          key: object.key,
          size: object.size,
          eTag: object.etag,
          eventName,
          versionId: object.versionId,
          region,
          eventTime: new Date(),
          configurationId: ruleId(rule),
          sourceIPAddress: normalizeIp(ctx.req.socket.remoteAddress),
          requestId: ctx.requestId,
          hostId: ctx.hostId,
        }),
      );
    }
  }

  for (const rule of options.notifications ?? []) addNotification(rule);

  const server: Server = createServer((req, res) => {
    void handle(req, res);
  });
  // Multi-GB uploads on a slow disk may take longer than Node's default 5 minutes.
  server.requestTimeout = 0;
  server.on("clientError", (_error, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    else socket.destroy();
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = createRequestId();
    const hostId = createHostId();
    res.setHeader("x-amz-request-id", requestId);
    res.setHeader("x-amz-id-2", hostId);
    res.setHeader("Server", "AmazonS3");
    const method = req.method ?? "GET";
    let ctx: RequestContext | undefined;
    try {
      ctx = { req, res, requestId, hostId, method, ...parseTarget(req.url ?? "/") };
      const created = await route(ctx);
      if (created) notifyCreated(created);
    } catch (error) {
      sendError(res, method, requestId, hostId, ctx, error);
    } finally {
      // Unread request bodies (errors before the body was consumed) must not stall the socket.
      if (!req.complete) req.resume();
    }
  }

  async function route(ctx: RequestContext): Promise<Created | undefined> {
    const { method, bucket, key, query, req } = ctx;
    if (bucket === "") {
      if (method === "GET") return listBuckets(ctx);
      throw s3Errors.methodNotAllowed(method);
    }
    if (key === "") {
      switch (method) {
        case "PUT":
          // Any sub-resource (?versioning, ?notification, ?policy, ...) is configuration
          // this stand-in does not keep; refusing beats silently "creating" the bucket.
          if ([...query.keys()].some((name) => name !== "x-id")) {
            throw s3Errors.notImplemented("bucket sub-resource");
          }
          return createBucketOp(ctx);
        case "HEAD":
          return headBucket(ctx);
        case "DELETE":
          return deleteBucket(ctx);
        case "GET":
          if (query.has("location")) return getBucketLocation(ctx);
          if (query.get("list-type") === "2") return listObjectsV2(ctx);
          if (query.has("versioning")) return getBucketVersioning(ctx);
          throw s3Errors.notImplemented("only ListObjectsV2 (list-type=2) is supported");
        case "POST":
          if (query.has("delete")) return deleteObjects(ctx);
          throw s3Errors.notImplemented("bucket POST");
        default:
          throw s3Errors.methodNotAllowed(method);
      }
    }
    if (Buffer.byteLength(key, "utf8") > MAX_KEY_BYTES) throw s3Errors.keyTooLong();
    switch (method) {
      case "PUT":
        if (query.has("uploadId")) {
          if (req.headers["x-amz-copy-source"]) throw s3Errors.notImplemented("UploadPartCopy");
          return uploadPart(ctx);
        }
        if (query.has("tagging")) return putObjectTagging(ctx);
        if (query.has("acl") || query.has("retention") || query.has("legal-hold")) {
          throw s3Errors.notImplemented("object sub-resource");
        }
        if (req.headers["x-amz-copy-source"]) return copyObject(ctx);
        return putObject(ctx);
      case "GET":
        if (query.has("tagging")) return getObjectTagging(ctx);
        if (query.has("uploadId") || query.has("acl") || query.has("attributes")) {
          throw s3Errors.notImplemented("object sub-resource");
        }
        return getObject(ctx, false);
      case "HEAD":
        return getObject(ctx, true);
      case "DELETE":
        if (query.has("uploadId")) return abortMultipartUpload(ctx);
        if (query.has("tagging")) return deleteObjectTagging(ctx);
        return deleteObject(ctx);
      case "POST":
        if (query.has("uploads")) return createMultipartUpload(ctx);
        if (query.has("uploadId")) return completeMultipartUpload(ctx);
        throw s3Errors.notImplemented("object POST");
      default:
        throw s3Errors.methodNotAllowed(method);
    }
  }

  // --- buckets ---------------------------------------------------------------------

  function createBucket(name: string): Bucket {
    const existing = store.buckets.get(name);
    if (existing) return existing;
    const bucket: Bucket = {
      name,
      created: wholeSeconds(new Date()),
      objects: new Map(),
      uploads: new Map(),
    };
    store.buckets.set(name, bucket);
    return bucket;
  }

  async function createBucketOp(ctx: RequestContext): Promise<undefined> {
    await drain(ctx.req);
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(ctx.bucket)) {
      throw s3Errors.invalidBucketName(ctx.bucket);
    }
    // us-east-1 answers 200 to re-creating a bucket you own; other regions refuse.
    if (store.buckets.has(ctx.bucket) && region !== "us-east-1") {
      throw s3Errors.bucketAlreadyOwnedByYou(ctx.bucket);
    }
    createBucket(ctx.bucket);
    ctx.res.setHeader("Location", `/${ctx.bucket}`);
    send(ctx.res, 200);
    return undefined;
  }

  function headBucket(ctx: RequestContext): undefined {
    store.bucket(ctx.bucket);
    ctx.res.setHeader("x-amz-bucket-region", region);
    send(ctx.res, 200);
    return undefined;
  }

  async function deleteBucket(ctx: RequestContext): Promise<undefined> {
    const bucket = store.bucket(ctx.bucket);
    if (bucket.objects.size > 0) throw s3Errors.bucketNotEmpty(ctx.bucket);
    for (const upload of bucket.uploads.values()) await discardParts(upload);
    store.buckets.delete(ctx.bucket);
    send(ctx.res, 204);
    return undefined;
  }

  function getBucketLocation(ctx: RequestContext): undefined {
    store.bucket(ctx.bucket);
    // S3 reports us-east-1 as an empty LocationConstraint.
    const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${region === "us-east-1" ? "" : region}</LocationConstraint>`;
    sendXml(ctx.res, 200, xml);
    return undefined;
  }

  function getBucketVersioning(ctx: RequestContext): undefined {
    store.bucket(ctx.bucket);
    sendXml(
      ctx.res,
      200,
      document("VersioningConfiguration", options.versioning ? element("Status", "Enabled") : ""),
    );
    return undefined;
  }

  function listBuckets(ctx: RequestContext): undefined {
    const buckets = [...store.buckets.values()]
      .sort((a, b) => compareKeys(a.name, b.name))
      .map(
        (bucket) =>
          `<Bucket>${element("Name", bucket.name)}${element("CreationDate", bucket.created.toISOString())}${element("BucketRegion", region)}</Bucket>`,
      )
      .join("");
    sendXml(
      ctx.res,
      200,
      document(
        "ListAllMyBucketsResult",
        `<Owner>${element("ID", OWNER_ID)}${element("DisplayName", "local")}</Owner><Buckets>${buckets}</Buckets>`,
      ),
    );
    return undefined;
  }

  function listObjectsV2(ctx: RequestContext): undefined {
    const bucket = store.bucket(ctx.bucket);
    const { query } = ctx;
    const prefix = query.get("prefix") ?? "";
    const delimiter = query.get("delimiter") ?? "";
    const encodingType = query.get("encoding-type") ?? undefined;
    if (encodingType !== undefined && encodingType !== "url") {
      throw s3Errors.invalidArgument(
        "Invalid Encoding Method specified in Request",
        "encoding-type",
        encodingType,
      );
    }
    const maxKeysText = query.get("max-keys");
    const maxKeys = maxKeysText === null ? 1000 : Number(maxKeysText);
    if (!Number.isInteger(maxKeys) || maxKeys < 0) {
      throw s3Errors.invalidArgument(
        "Provided max-keys not an integer or within integer range",
        "max-keys",
        maxKeysText ?? "",
      );
    }
    const continuationToken = query.get("continuation-token") ?? undefined;
    const startAfter = query.get("start-after") ?? undefined;
    let marker = startAfter ?? "";
    if (continuationToken !== undefined) {
      const decoded = decodeContinuationToken(continuationToken);
      if (decoded === undefined) {
        throw s3Errors.invalidArgument(
          "The continuation token provided is incorrect",
          "continuation-token",
          continuationToken,
        );
      }
      marker = decoded;
    }
    const fetchOwner = query.get("fetch-owner") === "true";
    const encode = (value: string) => (encodingType === "url" ? encodeListKey(value) : value);

    const keys = [...bucket.objects.keys()]
      .filter((key) => key.startsWith(prefix) && key > marker)
      .sort(compareKeys);
    const contents: StoredObject[] = [];
    const commonPrefixes: string[] = [];
    let truncated = false;
    let lastReturned = "";
    for (const key of keys) {
      let commonPrefix: string | undefined;
      if (delimiter !== "") {
        const at = key.indexOf(delimiter, prefix.length);
        if (at >= 0) commonPrefix = key.slice(0, at + delimiter.length);
      }
      if (commonPrefix !== undefined) {
        // Keys under the prefix the previous page ended on, or the one just added.
        if (commonPrefix === marker || commonPrefix === commonPrefixes.at(-1)) continue;
      }
      if (contents.length + commonPrefixes.length >= maxKeys) {
        truncated = true;
        break;
      }
      if (commonPrefix !== undefined) {
        commonPrefixes.push(commonPrefix);
        lastReturned = commonPrefix;
      } else {
        const object = bucket.objects.get(key);
        if (object) contents.push(object);
        lastReturned = key;
      }
    }
    const owner = `<Owner>${element("ID", OWNER_ID)}${element("DisplayName", "local")}</Owner>`;
    const body = [
      element("Name", bucket.name),
      element("Prefix", encode(prefix)),
      delimiter === "" ? "" : element("Delimiter", encode(delimiter)),
      element("MaxKeys", maxKeys),
      element("KeyCount", contents.length + commonPrefixes.length),
      element("IsTruncated", truncated),
      element("EncodingType", encodingType),
      element("ContinuationToken", continuationToken),
      truncated ? element("NextContinuationToken", encodeContinuationToken(lastReturned)) : "",
      element("StartAfter", startAfter === undefined ? undefined : encode(startAfter)),
      ...contents.map(
        (object) =>
          `<Contents>${element("Key", encode(object.key))}${element("LastModified", object.lastModified.toISOString())}${element("ETag", object.etag)}${element("Size", object.size)}${fetchOwner ? owner : ""}${element("StorageClass", "STANDARD")}</Contents>`,
      ),
      ...commonPrefixes.map(
        (value) => `<CommonPrefixes>${element("Prefix", encode(value))}</CommonPrefixes>`,
      ),
    ].join("");
    sendXml(ctx.res, 200, document("ListBucketResult", body));
    return undefined;
  }

  // --- objects ---------------------------------------------------------------------

  function newVersionId(): string | undefined {
    return options.versioning ? randomBytes(24).toString("base64url") : undefined;
  }

  /** Replaces (or adds) the object, dropping the bytes of the one it replaces. */
  async function commit(bucket: Bucket, object: StoredObject): Promise<void> {
    const previous = bucket.objects.get(object.key);
    bucket.objects.set(object.key, object);
    if (previous && previous.file !== object.file) await store.discard(previous.file);
  }

  async function putObject(ctx: RequestContext): Promise<Created> {
    const bucket = store.bucket(ctx.bucket);
    const { req, res } = ctx;
    const tags = parseTaggingHeader(header(req, "x-amz-tagging"));
    checkPutPreconditions(bucket, ctx);
    const written = await receiveBody(req);
    // Checked again after the body: another upload may have finished meanwhile.
    try {
      checkPutPreconditions(bucket, ctx);
    } catch (error) {
      await store.discard(written.file);
      throw error;
    }
    const object: StoredObject = {
      key: ctx.key,
      file: written.file,
      size: written.size,
      etag: `"${written.md5.toString("hex")}"`,
      ...objectHeaders(req),
      tags,
      lastModified: wholeSeconds(new Date()),
      versionId: newVersionId(),
    };
    await commit(bucket, object);
    res.setHeader("ETag", object.etag);
    if (object.versionId) res.setHeader("x-amz-version-id", object.versionId);
    send(res, 200);
    return { bucket: bucket.name, object, eventName: "ObjectCreated:Put", ctx };
  }

  function checkPutPreconditions(bucket: Bucket, ctx: RequestContext): void {
    const ifNoneMatch = header(ctx.req, "if-none-match");
    const ifMatch = header(ctx.req, "if-match");
    const existing = bucket.objects.get(ctx.key);
    if (ifNoneMatch === "*" && existing) throw s3Errors.preconditionFailed("If-None-Match");
    if (ifMatch !== undefined) {
      if (!existing) throw s3Errors.noSuchKey(ctx.key);
      if (ifMatch !== "*" && stripQuotes(ifMatch) !== stripQuotes(existing.etag)) {
        throw s3Errors.preconditionFailed("If-Match");
      }
    }
  }

  async function getObject(ctx: RequestContext, headOnly: boolean): Promise<undefined> {
    const { req, res, query } = ctx;
    const object = store.object(ctx.bucket, ctx.key);
    const versionId = query.get("versionId");
    if (versionId !== null && versionId !== "null" && versionId !== object.versionId) {
      throw new S3Error("NoSuchVersion", 404, "The specified version does not exist.", {
        Key: ctx.key,
        VersionId: versionId,
      });
    }
    // Open before answering: a concurrent overwrite unlinks the file, but an open
    // handle keeps reading the bytes this response describes.
    const handle = headOnly ? undefined : await open(object.file, "r");
    try {
      const notModified = checkGetPreconditions(req, object);
      const range = parseRange(header(req, "range"), object.size);
      res.setHeader("Accept-Ranges", "bytes");
      res.setHeader("ETag", object.etag);
      res.setHeader("Last-Modified", object.lastModified.toUTCString());
      res.setHeader("Content-Type", object.contentType);
      if (object.contentEncoding) res.setHeader("Content-Encoding", object.contentEncoding);
      if (object.contentDisposition)
        res.setHeader("Content-Disposition", object.contentDisposition);
      if (object.cacheControl) res.setHeader("Cache-Control", object.cacheControl);
      if (object.versionId) res.setHeader("x-amz-version-id", object.versionId);
      for (const [name, value] of Object.entries(object.metadata)) {
        res.setHeader(`x-amz-meta-${name}`, value);
      }
      if (!headOnly && object.tags.length > 0) {
        res.setHeader("x-amz-tagging-count", String(object.tags.length));
      }
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
      const stream = handle.createReadStream({ start, end, autoClose: true });
      await pipeline(stream, res).catch(() => {
        // The client went away mid-download; nothing to report to it.
      });
      return undefined;
    } finally {
      await handle?.close().catch(() => undefined);
    }
  }

  async function copyObject(ctx: RequestContext): Promise<Created> {
    const { req, res } = ctx;
    await drain(req);
    const target = store.bucket(ctx.bucket);
    const source = parseCopySource(header(req, "x-amz-copy-source") ?? "");
    const sourceObject = store.object(source.bucket, source.key);
    if (source.versionId !== undefined && source.versionId !== sourceObject.versionId) {
      throw new S3Error("NoSuchVersion", 404, "The specified version does not exist.");
    }
    const metadataDirective = header(req, "x-amz-metadata-directive") ?? "COPY";
    const taggingDirective = header(req, "x-amz-tagging-directive") ?? "COPY";
    if (
      !["COPY", "REPLACE"].includes(metadataDirective) ||
      !["COPY", "REPLACE"].includes(taggingDirective)
    ) {
      throw s3Errors.invalidArgument("Unknown metadata or tagging directive.");
    }
    if (source.bucket === ctx.bucket && source.key === ctx.key && metadataDirective === "COPY") {
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
    const file = await store.copyFile(sourceObject.file);
    const described =
      metadataDirective === "REPLACE"
        ? objectHeaders(req)
        : {
            contentType: sourceObject.contentType,
            contentEncoding: sourceObject.contentEncoding,
            contentDisposition: sourceObject.contentDisposition,
            cacheControl: sourceObject.cacheControl,
            metadata: { ...sourceObject.metadata },
          };
    const object: StoredObject = {
      key: ctx.key,
      file,
      size: sourceObject.size,
      // A copy made in one request gets the MD5 of its bytes even if the source was multipart.
      etag: sourceObject.etag.includes("-") ? `"${await md5OfFile(file)}"` : sourceObject.etag,
      ...described,
      tags:
        taggingDirective === "REPLACE"
          ? parseTaggingHeader(header(req, "x-amz-tagging"))
          : sourceObject.tags.map((tag) => ({ ...tag })),
      lastModified: wholeSeconds(new Date()),
      versionId: newVersionId(),
    };
    await commit(target, object);
    if (sourceObject.versionId)
      res.setHeader("x-amz-copy-source-version-id", sourceObject.versionId);
    if (object.versionId) res.setHeader("x-amz-version-id", object.versionId);
    sendXml(
      res,
      200,
      document(
        "CopyObjectResult",
        element("LastModified", object.lastModified.toISOString()) + element("ETag", object.etag),
      ),
    );
    return { bucket: target.name, object, eventName: "ObjectCreated:Copy", ctx };
  }

  async function deleteObject(ctx: RequestContext): Promise<undefined> {
    await drain(ctx.req);
    const bucket = store.bucket(ctx.bucket);
    const object = bucket.objects.get(ctx.key);
    if (object) {
      bucket.objects.delete(ctx.key);
      await store.discard(object.file);
    }
    // S3 answers 204 whether or not the key existed.
    send(ctx.res, 204);
    return undefined;
  }

  async function deleteObjects(ctx: RequestContext): Promise<undefined> {
    const bucket = store.bucket(ctx.bucket);
    const xml = await readSmallBody(ctx.req);
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
        await store.discard(object.file);
      }
      if (!quiet) deleted += `<Deleted>${element("Key", key)}</Deleted>`;
    }
    sendXml(ctx.res, 200, document("DeleteResult", deleted));
    return undefined;
  }

  // --- tagging ---------------------------------------------------------------------

  function getObjectTagging(ctx: RequestContext): undefined {
    const object = store.object(ctx.bucket, ctx.key);
    if (object.versionId) ctx.res.setHeader("x-amz-version-id", object.versionId);
    sendXml(ctx.res, 200, document("Tagging", `<TagSet>${tagsXml(object.tags)}</TagSet>`));
    return undefined;
  }

  /** Replaces the tag set. Like S3, this fires no ObjectCreated notification. */
  async function putObjectTagging(ctx: RequestContext): Promise<undefined> {
    const object = store.object(ctx.bucket, ctx.key);
    const xml = await readSmallBody(ctx.req);
    const tagSet = childBlocks(xml, "TagSet")[0];
    if (tagSet === undefined) throw s3Errors.malformedXml();
    const tags = childBlocks(tagSet, "Tag").map((block) => {
      const Key = childText(block, "Key");
      const Value = childText(block, "Value");
      if (Key === undefined || Value === undefined) throw s3Errors.malformedXml();
      return { Key, Value };
    });
    validateTags(tags);
    object.tags = tags;
    if (object.versionId) ctx.res.setHeader("x-amz-version-id", object.versionId);
    send(ctx.res, 200);
    return undefined;
  }

  async function deleteObjectTagging(ctx: RequestContext): Promise<undefined> {
    await drain(ctx.req);
    const object = store.object(ctx.bucket, ctx.key);
    object.tags = [];
    if (object.versionId) ctx.res.setHeader("x-amz-version-id", object.versionId);
    send(ctx.res, 204);
    return undefined;
  }

  // --- multipart -------------------------------------------------------------------

  function upload(ctx: RequestContext): MultipartUpload {
    const uploadId = ctx.query.get("uploadId") ?? "";
    const found = store.bucket(ctx.bucket).uploads.get(uploadId);
    if (!found || found.key !== ctx.key) throw s3Errors.noSuchUpload(uploadId);
    return found;
  }

  async function createMultipartUpload(ctx: RequestContext): Promise<undefined> {
    await drain(ctx.req);
    const bucket = store.bucket(ctx.bucket);
    const tags = parseTaggingHeader(header(ctx.req, "x-amz-tagging"));
    const uploadId = randomBytes(32).toString("base64url");
    bucket.uploads.set(uploadId, {
      uploadId,
      key: ctx.key,
      initiated: new Date(),
      ...objectHeaders(ctx.req),
      tags,
      parts: new Map(),
    });
    sendXml(
      ctx.res,
      200,
      document(
        "InitiateMultipartUploadResult",
        element("Bucket", bucket.name) + element("Key", ctx.key) + element("UploadId", uploadId),
      ),
    );
    return undefined;
  }

  async function uploadPart(ctx: RequestContext): Promise<undefined> {
    const target = upload(ctx);
    const partNumberText = ctx.query.get("partNumber") ?? "";
    const partNumber = Number(partNumberText);
    if (!/^\d+$/.test(partNumberText) || partNumber < 1 || partNumber > 10000) {
      throw s3Errors.invalidArgument(
        "Part number must be an integer between 1 and 10000, inclusive",
        "partNumber",
        partNumberText,
      );
    }
    const written = await receiveBody(ctx.req);
    const etag = `"${written.md5.toString("hex")}"`;
    // The upload may have been completed or aborted while the part was arriving.
    if (store.bucket(ctx.bucket).uploads.get(target.uploadId) !== target) {
      await store.discard(written.file);
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
    if (previous) await store.discard(previous.file);
    ctx.res.setHeader("ETag", etag);
    send(ctx.res, 200);
    return undefined;
  }

  async function completeMultipartUpload(ctx: RequestContext): Promise<Created> {
    const target = upload(ctx);
    const bucket = store.bucket(ctx.bucket);
    const xml = await readSmallBody(ctx.req);
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
    // Claimed before the (slow) concatenation so a concurrent complete or abort fails.
    bucket.uploads.delete(target.uploadId);
    let file: string;
    try {
      file = await store.concatenate(parts.map((part) => part.file));
    } catch (error) {
      bucket.uploads.set(target.uploadId, target);
      throw error;
    }
    await discardParts(target);
    const md5s = Buffer.concat(parts.map((part) => Buffer.from(stripQuotes(part.etag), "hex")));
    const object: StoredObject = {
      key: ctx.key,
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
      versionId: newVersionId(),
    };
    await commit(bucket, object);
    if (object.versionId) ctx.res.setHeader("x-amz-version-id", object.versionId);
    sendXml(
      ctx.res,
      200,
      document(
        "CompleteMultipartUploadResult",
        element("Location", `${endpoint}/${bucket.name}/${encodePathKey(ctx.key)}`) +
          element("Bucket", bucket.name) +
          element("Key", ctx.key) +
          element("ETag", object.etag),
      ),
    );
    return { bucket: bucket.name, object, eventName: "ObjectCreated:CompleteMultipartUpload", ctx };
  }

  async function abortMultipartUpload(ctx: RequestContext): Promise<undefined> {
    await drain(ctx.req);
    const target = upload(ctx);
    store.bucket(ctx.bucket).uploads.delete(target.uploadId);
    await discardParts(target);
    send(ctx.res, 204);
    return undefined;
  }

  async function discardParts(target: MultipartUpload): Promise<void> {
    for (const part of target.parts.values()) await store.discard(part.file);
    target.parts.clear();
  }

  // --- bodies ----------------------------------------------------------------------

  /** Streams a PUT body to disk, decoding aws-chunked and verifying the checksums sent. */
  async function receiveBody(req: IncomingMessage) {
    const contentSha256 = header(req, "x-amz-content-sha256") ?? "";
    const chunked =
      contentSha256.startsWith("STREAMING-") ||
      (header(req, "content-encoding") ?? "").split(",").some((v) => v.trim() === "aws-chunked");
    const decodedLengthText = header(req, "x-amz-decoded-content-length");
    const declaredLength = chunked
      ? decodedLengthText === undefined
        ? undefined
        : Number(decodedLengthText)
      : header(req, "content-length") === undefined
        ? undefined
        : Number(header(req, "content-length"));
    if (declaredLength !== undefined && !Number.isSafeInteger(declaredLength)) {
      throw s3Errors.invalidArgument("Invalid content length");
    }
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

  let endpoint = "";
  const port = await listen(server, { port: options.port });
  endpoint = `http://127.0.0.1:${port}`;

  async function idle(): Promise<void> {
    while (inFlight.size > 0) {
      await Promise.all([...inFlight]);
    }
  }

  let stopped: Promise<void> | undefined;
  return {
    endpoint,
    port,
    region,
    dir,
    addNotification,
    idle,
    deliveryErrors,
    createBucket: (name: string) => {
      createBucket(name);
    },
    stop() {
      stopped ??= (async () => {
        await idle();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        if (ownsDir) await store.removeAll();
      })();
      return stopped;
    },
  };
}

// --- helpers -----------------------------------------------------------------------

function parseTarget(url: string): { bucket: string; key: string; query: URLSearchParams } {
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

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(",") : value;
}

function objectHeaders(req: IncomingMessage) {
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

function checksumAlgorithmOf(name: string | undefined): string | undefined {
  return name?.startsWith("x-amz-checksum-") ? name.slice("x-amz-checksum-".length) : undefined;
}

/** `x-amz-tagging`: URL query syntax, `k1=v1&k2=v2`. */
function parseTaggingHeader(value: string | undefined): Tag[] {
  if (value === undefined || value === "") return [];
  const tags = [...new URLSearchParams(value)].map(([Key, Value]) => ({ Key, Value }));
  validateTags(tags);
  return tags;
}

function validateTags(tags: Tag[]): void {
  if (tags.length > 10) throw s3Errors.invalidTag("Object tags cannot be greater than 10");
  const seen = new Set<string>();
  for (const tag of tags) {
    if (tag.Key.length === 0 || tag.Key.length > 128) {
      throw s3Errors.invalidTag("The TagKey you have provided is invalid");
    }
    if (tag.Value.length > 256)
      throw s3Errors.invalidTag("The TagValue you have provided is invalid");
    if (seen.has(tag.Key))
      throw s3Errors.invalidTag("Cannot provide multiple Tags with the same key");
    seen.add(tag.Key);
  }
}

function tagsXml(tags: Tag[]): string {
  return tags
    .map((tag) => `<Tag>${element("Key", tag.Key)}${element("Value", tag.Value)}</Tag>`)
    .join("");
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

function matchesEventName(
  events: string[] | undefined,
  eventName: ObjectCreatedEventName,
): boolean {
  const wanted = (events ?? ["ObjectCreated:*"]).map((name) => name.replace(/^s3:/, ""));
  return wanted.includes(eventName) || wanted.includes(`${eventName.split(":")[0]}:*`);
}

function normalizeIp(address: string | undefined): string {
  if (!address) return "127.0.0.1";
  return address.startsWith("::ffff:") ? address.slice("::ffff:".length) : address;
}

function stripQuotes(etag: string): string {
  return etag.trim().replace(/^W\//, "").replace(/^"|"$/g, "");
}

function wholeSeconds(date: Date): Date {
  // HTTP dates carry whole seconds; keep listings and headers in agreement.
  return new Date(Math.floor(date.getTime() / 1000) * 1000);
}

function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

function encodeContinuationToken(lastKey: string): string {
  return Buffer.from(JSON.stringify({ after: lastKey }), "utf8").toString("base64url");
}

function decodeContinuationToken(token: string): string | undefined {
  try {
    const parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as {
      after?: unknown;
    };
    return typeof parsed.after === "string" ? parsed.after : undefined;
  } catch {
    return undefined;
  }
}

/** `encoding-type=url` in listings: percent-encoding as S3 does, keeping "/". */
function encodeListKey(key: string): string {
  return key
    .split("/")
    .map((segment) =>
      encodeURIComponent(segment).replace(
        /[!'()*]/g,
        (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
      ),
    )
    .join("/");
}

function encodePathKey(key: string): string {
  return encodeListKey(key);
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

/** Reads a small XML request body (tagging, multipart completion, batch delete). */
async function readSmallBody(req: IncomingMessage): Promise<string> {
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

async function drain(req: IncomingMessage): Promise<void> {
  for await (const _ of req) {
    // Discarded: the operation has no body, but the connection must be reusable.
  }
}

function send(res: ServerResponse, status: number): void {
  res.statusCode = status;
  if (status !== 204 && status !== 304) res.setHeader("Content-Length", "0");
  res.end();
}

function sendXml(res: ServerResponse, status: number, xml: string): void {
  const body = Buffer.from(xml, "utf8");
  res.statusCode = status;
  res.setHeader("Content-Type", "application/xml");
  res.setHeader("Content-Length", String(body.length));
  res.end(body);
}

function sendError(
  res: ServerResponse,
  method: string,
  requestId: string,
  hostId: string,
  ctx: RequestContext | undefined,
  error: unknown,
): void {
  if (res.headersSent) {
    // Mid-body failure: the only honest signal left is a broken connection.
    res.destroy();
    return;
  }
  const s3Error =
    error instanceof S3Error
      ? error
      : new S3Error(
          "InternalError",
          500,
          `We encountered an internal error. Please try again. (${error instanceof Error ? error.message : String(error)})`,
        );
  for (const [name, value] of Object.entries(s3Error.headers)) res.setHeader(name, value);
  if (s3Error.statusCode === 405) res.setHeader("Allow", "GET, PUT, HEAD, DELETE, POST");
  if (method === "HEAD") {
    // HEAD errors carry no body; the SDK maps the status (404 → NotFound).
    send(res, s3Error.statusCode);
    return;
  }
  const details = Object.entries(s3Error.details)
    .map(([name, value]) => element(name, value))
    .join("");
  const resource = ctx ? `/${ctx.bucket}${ctx.key === "" ? "" : `/${ctx.key}`}` : undefined;
  const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<Error>${element("Code", s3Error.code)}${element("Message", s3Error.message)}${details}${element("Resource", resource)}${element("RequestId", requestId)}${element("HostId", hostId)}</Error>`;
  // Keep the connection usable when the request body was never read.
  if (ctx && !ctx.req.complete) res.setHeader("Connection", "close");
  sendXml(res, s3Error.statusCode, xml);
}
