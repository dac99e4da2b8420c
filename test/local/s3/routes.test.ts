import type { IncomingHttpHeaders } from "node:http";
import { describe, expect, it } from "vitest";
import { S3Error } from "../../../local/s3/errors";
import type { S3Request } from "../../../local/s3/request";
import { findRoute, resourceOf, routeRequest } from "../../../local/s3/routes";
import type { S3State } from "../../../local/s3/state";

/** The route a path-style request reaches, by S3's operation name. */
function routeName(method: string, url: string, headers: IncomingHttpHeaders = {}): string {
  const [path = "", query = ""] = url.split("?");
  const [bucket = "", ...keyParts] = path.slice(1).split("/");
  const resource = resourceOf(bucket, keyParts.join("/"));
  return findRoute(resource, method, { query: new URLSearchParams(query), headers }).name;
}

function thrownBy(action: () => unknown): unknown {
  try {
    action();
  } catch (error) {
    return error;
  }
  throw new Error("expected the call to throw");
}

const COPY_SOURCE = { "x-amz-copy-source": "/source/key" };

describe("the S3 route table", () => {
  it.each([
    ["GET", "/", {}, "ListBuckets"],
    ["PUT", "/bucket", {}, "CreateBucket"],
    ["PUT", "/bucket?x-id=CreateBucket", {}, "CreateBucket"],
    ["PUT", "/bucket?versioning", {}, "NotImplemented"],
    ["HEAD", "/bucket", {}, "HeadBucket"],
    ["DELETE", "/bucket", {}, "DeleteBucket"],
    ["GET", "/bucket?location", {}, "GetBucketLocation"],
    ["GET", "/bucket?list-type=2&prefix=a", {}, "ListObjectsV2"],
    ["GET", "/bucket?versioning", {}, "GetBucketVersioning"],
    ["GET", "/bucket", {}, "NotImplemented"],
    ["GET", "/bucket?list-type=1", {}, "NotImplemented"],
    ["POST", "/bucket?delete", {}, "DeleteObjects"],
    ["POST", "/bucket", {}, "NotImplemented"],
    ["PUT", "/bucket/a/key", {}, "PutObject"],
    ["PUT", "/bucket/key", COPY_SOURCE, "CopyObject"],
    ["PUT", "/bucket/key?uploadId=u&partNumber=1", {}, "UploadPart"],
    ["PUT", "/bucket/key?uploadId=u&partNumber=1", COPY_SOURCE, "NotImplemented"],
    ["PUT", "/bucket/key?tagging", {}, "PutObjectTagging"],
    ["PUT", "/bucket/key?tagging", COPY_SOURCE, "PutObjectTagging"],
    ["PUT", "/bucket/key?acl", {}, "NotImplemented"],
    ["PUT", "/bucket/key?legal-hold", COPY_SOURCE, "NotImplemented"],
    ["GET", "/bucket/key", {}, "GetObject"],
    ["GET", "/bucket/key?versionId=v", {}, "GetObject"],
    ["GET", "/bucket/key?tagging", {}, "GetObjectTagging"],
    ["GET", "/bucket/key?attributes", {}, "NotImplemented"],
    ["HEAD", "/bucket/key", {}, "HeadObject"],
    ["DELETE", "/bucket/key", {}, "DeleteObject"],
    ["DELETE", "/bucket/key?uploadId=u", {}, "AbortMultipartUpload"],
    ["DELETE", "/bucket/key?tagging", {}, "DeleteObjectTagging"],
    ["POST", "/bucket/key?uploads", {}, "CreateMultipartUpload"],
    ["POST", "/bucket/key?uploadId=u", {}, "CompleteMultipartUpload"],
    ["POST", "/bucket/key", {}, "NotImplemented"],
  ])("sends %s %s (headers %j) to %s", (method, url, headers, expected) => {
    expect(routeName(method, url, headers)).toBe(expected);
  });

  it.each([
    ["PUT", "/"],
    ["PATCH", "/bucket"],
    ["OPTIONS", "/bucket/key"],
  ])("answers %s %s with 405 MethodNotAllowed", (method, url) => {
    const error = thrownBy(() => routeName(method, url));

    expect(error).toBeInstanceOf(S3Error);
    expect(error).toMatchObject({ code: "MethodNotAllowed", statusCode: 405 });
  });

  it("refuses a key over 1024 bytes before looking at the method", async () => {
    const request = {
      method: "PATCH",
      bucket: "bucket",
      key: "k".repeat(1025),
      query: new URLSearchParams(),
      req: { headers: {} },
    } as unknown as S3Request;

    await expect(routeRequest({} as S3State, request)).rejects.toMatchObject({
      code: "KeyTooLongError",
    });
  });
});
