/** An S3 error response: the SDK maps `Code` to the exception name (NoSuchKey, ...). */
export class S3Error extends Error {
  constructor(
    readonly code: string,
    readonly statusCode: number,
    message: string,
    /** Extra elements S3 adds to the error document (Key, BucketName, ...). */
    readonly details: Record<string, string> = {},
    /** Extra response headers (Content-Range on 416, ...). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = code;
  }
}

export const s3Errors = {
  noSuchBucket: (bucket: string) =>
    new S3Error("NoSuchBucket", 404, "The specified bucket does not exist", {
      BucketName: bucket,
    }),
  noSuchKey: (key: string) =>
    new S3Error("NoSuchKey", 404, "The specified key does not exist.", { Key: key }),
  noSuchUpload: (uploadId: string) =>
    new S3Error(
      "NoSuchUpload",
      404,
      "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
      { UploadId: uploadId },
    ),
  invalidRange: (size: number) =>
    new S3Error(
      "InvalidRange",
      416,
      "The requested range is not satisfiable",
      { ActualObjectSize: String(size) },
      { "Content-Range": `bytes */${size}` },
    ),
  invalidArgument: (message: string, name?: string, value?: string) =>
    new S3Error(
      "InvalidArgument",
      400,
      message,
      name === undefined ? {} : { ArgumentName: name, ArgumentValue: value ?? "" },
    ),
  invalidRequest: (message: string) => new S3Error("InvalidRequest", 400, message),
  malformedXml: () =>
    new S3Error(
      "MalformedXML",
      400,
      "The XML you provided was not well-formed or did not validate against our published schema",
    ),
  badDigest: (message: string) => new S3Error("BadDigest", 400, message),
  incompleteBody: () =>
    new S3Error(
      "IncompleteBody",
      400,
      "You did not provide the number of bytes specified by the Content-Length HTTP header",
    ),
  invalidPart: () =>
    new S3Error(
      "InvalidPart",
      400,
      "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
    ),
  invalidPartOrder: () =>
    new S3Error(
      "InvalidPartOrder",
      400,
      "The list of parts was not in ascending order. Parts must be ordered by part number.",
    ),
  entityTooSmall: () =>
    new S3Error(
      "EntityTooSmall",
      400,
      "Your proposed upload is smaller than the minimum allowed object size.",
    ),
  keyTooLong: () => new S3Error("KeyTooLongError", 400, "Your key is too long", {}, {}),
  bucketAlreadyOwnedByYou: (bucket: string) =>
    new S3Error(
      "BucketAlreadyOwnedByYou",
      409,
      "Your previous request to create the named bucket succeeded and you already own it.",
      { BucketName: bucket },
    ),
  bucketNotEmpty: (bucket: string) =>
    new S3Error("BucketNotEmpty", 409, "The bucket you tried to delete is not empty", {
      BucketName: bucket,
    }),
  invalidBucketName: (bucket: string) =>
    new S3Error("InvalidBucketName", 400, "The specified bucket is not valid.", {
      BucketName: bucket,
    }),
  preconditionFailed: (condition: string) =>
    new S3Error(
      "PreconditionFailed",
      412,
      "At least one of the pre-conditions you specified did not hold",
      { Condition: condition },
    ),
  invalidTag: (message: string) => new S3Error("InvalidTag", 400, message),
  notImplemented: (what: string) =>
    new S3Error(
      "NotImplemented",
      501,
      `A header or query you provided implies functionality that is not implemented (${what}).`,
    ),
  methodNotAllowed: (method: string) =>
    new S3Error(
      "MethodNotAllowed",
      405,
      "The specified method is not allowed against this resource.",
      { Method: method, ResourceType: "OBJECT" },
    ),
};
