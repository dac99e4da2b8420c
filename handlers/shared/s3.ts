import {
  GetObjectCommand,
  PutObjectCommand,
  type PutObjectCommandOutput,
  S3Client,
  S3ServiceException,
} from "@aws-sdk/client-s3";
import { booleanEnv } from "./env";

/**
 * The S3 client both Lambdas use. The SDK honours `AWS_ENDPOINT_URL_S3` on its own;
 * local stand-ins also need path-style addressing (`S3_FORCE_PATH_STYLE=true`).
 * Create once at module scope and reuse across invocations.
 */
export function createS3Client(): S3Client {
  return new S3Client({ forcePathStyle: booleanEnv("S3_FORCE_PATH_STYLE", false) });
}

/** Reads and parses a JSON object; `undefined` when the key does not exist. */
export async function getJsonObject(
  s3: S3Client,
  bucket: string,
  key: string,
): Promise<unknown | undefined> {
  try {
    const response = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const body = await response.Body?.transformToString("utf-8");
    return body === undefined ? undefined : JSON.parse(body);
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

/**
 * Writes a JSON object (pretty-printed: people read these); with `ifMatch`, only over
 * that version of it (a 412 otherwise, see `replaceIfUnchanged`).
 */
export function putJsonObject(
  s3: S3Client,
  bucket: string,
  key: string,
  value: unknown,
  ifMatch?: string,
): Promise<PutObjectCommandOutput> {
  return s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: `${JSON.stringify(value, null, 2)}\n`,
      ContentType: "application/json",
      ...(ifMatch ? { IfMatch: ifMatch } : {}),
    }),
  );
}

/**
 * Runs a conditional write: false when its precondition failed (the object changed).
 * S3 answers 409 while a conflicting write is in flight and asks for a retry.
 */
export async function replaceIfUnchanged(write: () => Promise<unknown>): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    try {
      await write();
      return true;
    } catch (error) {
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata
        ?.httpStatusCode;
      if (status === 412) return false;
      if (status === 409 && attempt < 3) continue;
      throw error;
    }
  }
}

export function isNotFound(error: unknown): boolean {
  if (error instanceof S3ServiceException) {
    return (
      error.name === "NoSuchKey" ||
      error.name === "NotFound" ||
      error.$metadata.httpStatusCode === 404
    );
  }
  return false;
}
