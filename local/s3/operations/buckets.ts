import { compareKeys, ownerXml } from "../conventions";
import { s3Errors } from "../errors";
import { drain, type S3Request } from "../request";
import { send, sendXml } from "../response";
import { ensureBucket, type S3State } from "../state";
import { document, element } from "../xml";
import { discardParts } from "./multipart";

export async function createBucket(state: S3State, request: S3Request): Promise<undefined> {
  await drain(request.req);
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(request.bucket)) {
    throw s3Errors.invalidBucketName(request.bucket);
  }
  // us-east-1 answers 200 to re-creating a bucket you own; other regions refuse.
  if (state.store.buckets.has(request.bucket) && state.region !== "us-east-1") {
    throw s3Errors.bucketAlreadyOwnedByYou(request.bucket);
  }
  ensureBucket(state, request.bucket);
  request.res.setHeader("Location", `/${request.bucket}`);
  send(request.res, 200);
  return undefined;
}

export function headBucket(state: S3State, request: S3Request): undefined {
  state.store.bucket(request.bucket);
  request.res.setHeader("x-amz-bucket-region", state.region);
  send(request.res, 200);
  return undefined;
}

export async function deleteBucket(state: S3State, request: S3Request): Promise<undefined> {
  const bucket = state.store.bucket(request.bucket);
  if (bucket.objects.size > 0) throw s3Errors.bucketNotEmpty(request.bucket);
  for (const upload of bucket.uploads.values()) await discardParts(state, upload);
  state.store.buckets.delete(request.bucket);
  send(request.res, 204);
  return undefined;
}

export function getBucketLocation(state: S3State, request: S3Request): undefined {
  state.store.bucket(request.bucket);
  // S3 reports us-east-1 as an empty LocationConstraint.
  const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${state.region === "us-east-1" ? "" : state.region}</LocationConstraint>`;
  sendXml(request.res, 200, xml);
  return undefined;
}

export function getBucketVersioning(state: S3State, request: S3Request): undefined {
  state.store.bucket(request.bucket);
  sendXml(
    request.res,
    200,
    document("VersioningConfiguration", state.versioning ? element("Status", "Enabled") : ""),
  );
  return undefined;
}

export function listBuckets(state: S3State, request: S3Request): undefined {
  const buckets = [...state.store.buckets.values()]
    .sort((a, b) => compareKeys(a.name, b.name))
    .map(
      (bucket) =>
        `<Bucket>${element("Name", bucket.name)}${element("CreationDate", bucket.created.toISOString())}${element("BucketRegion", state.region)}</Bucket>`,
    )
    .join("");
  sendXml(
    request.res,
    200,
    document("ListAllMyBucketsResult", `${ownerXml()}<Buckets>${buckets}</Buckets>`),
  );
  return undefined;
}
