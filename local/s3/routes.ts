import type { IncomingHttpHeaders } from "node:http";
import { s3Errors } from "./errors";
import type { Created } from "./notifications";
import {
  createBucket,
  deleteBucket,
  getBucketLocation,
  getBucketVersioning,
  headBucket,
  listBuckets,
} from "./operations/buckets";
import { copyObject } from "./operations/copy-object";
import { listObjectsV2 } from "./operations/list-objects";
import {
  abortMultipartUpload,
  completeMultipartUpload,
  createMultipartUpload,
  uploadPart,
} from "./operations/multipart";
import {
  deleteObject,
  deleteObjects,
  getObject,
  headObject,
  putObject,
} from "./operations/objects";
import { deleteObjectTagging, getObjectTagging, putObjectTagging } from "./operations/tagging";
import type { S3Request } from "./request";
import type { S3State } from "./state";

/** An operation answers on `request.res`; one that created an object says so for notifications. */
export type S3Operation = (
  state: S3State,
  request: S3Request,
) => Promise<Created | undefined> | Created | undefined;

/** What the path-style URL names: `/`, `/bucket` or `/bucket/key`. */
export type Resource = "service" | "bucket" | "object";

/** What a route's condition may look at. */
export interface RouteInput {
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
}

export interface Route {
  resource: Resource;
  method: string;
  /** Conditions on the query and headers; a route without one takes any request. */
  when?: (input: RouteInput) => boolean;
  /** S3's name for the operation (NotImplemented for the ones refused). */
  name: string;
  operation: S3Operation;
}

const MAX_KEY_BYTES = 1024;

const has =
  (...names: string[]) =>
  ({ query }: RouteInput) =>
    names.some((name) => query.has(name));
const queryIs =
  (name: string, value: string) =>
  ({ query }: RouteInput) =>
    query.get(name) === value;
const hasHeader =
  (name: string) =>
  ({ headers }: RouteInput) =>
    Boolean(headers[name]);
// Any sub-resource (?versioning, ?notification, ?policy, ...) is configuration this
// stand-in does not keep; refusing beats silently "creating" the bucket.
const hasSubresource = ({ query }: RouteInput) => [...query.keys()].some((name) => name !== "x-id");
const both =
  (a: (input: RouteInput) => boolean, b: (input: RouteInput) => boolean) => (input: RouteInput) =>
    a(input) && b(input);

function refuse(resource: Resource, method: string, what: string, when?: Route["when"]): Route {
  return {
    resource,
    method,
    when,
    name: "NotImplemented",
    operation: () => {
      throw s3Errors.notImplemented(what);
    },
  };
}

/**
 * First match wins, so within a method the specific sub-resources come before the plain
 * operation. Every method a resource serves ends in a route without a condition; a method
 * with no route at all is answered 405.
 */
export const ROUTES: readonly Route[] = [
  { resource: "service", method: "GET", name: "ListBuckets", operation: listBuckets },

  refuse("bucket", "PUT", "bucket sub-resource", hasSubresource),
  { resource: "bucket", method: "PUT", name: "CreateBucket", operation: createBucket },
  { resource: "bucket", method: "HEAD", name: "HeadBucket", operation: headBucket },
  { resource: "bucket", method: "DELETE", name: "DeleteBucket", operation: deleteBucket },
  {
    resource: "bucket",
    method: "GET",
    when: has("location"),
    name: "GetBucketLocation",
    operation: getBucketLocation,
  },
  {
    resource: "bucket",
    method: "GET",
    when: queryIs("list-type", "2"),
    name: "ListObjectsV2",
    operation: listObjectsV2,
  },
  {
    resource: "bucket",
    method: "GET",
    when: has("versioning"),
    name: "GetBucketVersioning",
    operation: getBucketVersioning,
  },
  refuse("bucket", "GET", "only ListObjectsV2 (list-type=2) is supported"),
  {
    resource: "bucket",
    method: "POST",
    when: has("delete"),
    name: "DeleteObjects",
    operation: deleteObjects,
  },
  refuse("bucket", "POST", "bucket POST"),

  refuse("object", "PUT", "UploadPartCopy", both(has("uploadId"), hasHeader("x-amz-copy-source"))),
  {
    resource: "object",
    method: "PUT",
    when: has("uploadId"),
    name: "UploadPart",
    operation: uploadPart,
  },
  {
    resource: "object",
    method: "PUT",
    when: has("tagging"),
    name: "PutObjectTagging",
    operation: putObjectTagging,
  },
  refuse("object", "PUT", "object sub-resource", has("acl", "retention", "legal-hold")),
  {
    resource: "object",
    method: "PUT",
    when: hasHeader("x-amz-copy-source"),
    name: "CopyObject",
    operation: copyObject,
  },
  { resource: "object", method: "PUT", name: "PutObject", operation: putObject },
  {
    resource: "object",
    method: "GET",
    when: has("tagging"),
    name: "GetObjectTagging",
    operation: getObjectTagging,
  },
  refuse("object", "GET", "object sub-resource", has("uploadId", "acl", "attributes")),
  { resource: "object", method: "GET", name: "GetObject", operation: getObject },
  { resource: "object", method: "HEAD", name: "HeadObject", operation: headObject },
  {
    resource: "object",
    method: "DELETE",
    when: has("uploadId"),
    name: "AbortMultipartUpload",
    operation: abortMultipartUpload,
  },
  {
    resource: "object",
    method: "DELETE",
    when: has("tagging"),
    name: "DeleteObjectTagging",
    operation: deleteObjectTagging,
  },
  { resource: "object", method: "DELETE", name: "DeleteObject", operation: deleteObject },
  {
    resource: "object",
    method: "POST",
    when: has("uploads"),
    name: "CreateMultipartUpload",
    operation: createMultipartUpload,
  },
  {
    resource: "object",
    method: "POST",
    when: has("uploadId"),
    name: "CompleteMultipartUpload",
    operation: completeMultipartUpload,
  },
  refuse("object", "POST", "object POST"),
];

export function resourceOf(bucket: string, key: string): Resource {
  if (bucket === "") return "service";
  return key === "" ? "bucket" : "object";
}

/** The route for a request; throws S3's 405 when the resource has none for the method. */
export function findRoute(resource: Resource, method: string, input: RouteInput): Route {
  const route = ROUTES.find(
    (candidate) =>
      candidate.resource === resource &&
      candidate.method === method &&
      (candidate.when === undefined || candidate.when(input)),
  );
  if (!route) throw s3Errors.methodNotAllowed(method);
  return route;
}

export async function routeRequest(
  state: S3State,
  request: S3Request,
): Promise<Created | undefined> {
  const resource = resourceOf(request.bucket, request.key);
  // A key S3 could never store is refused before anything else about the request.
  if (resource === "object" && Buffer.byteLength(request.key, "utf8") > MAX_KEY_BYTES) {
    throw s3Errors.keyTooLong();
  }
  const route = findRoute(resource, request.method, {
    query: request.query,
    headers: request.req.headers,
  });
  return route.operation(state, request);
}
