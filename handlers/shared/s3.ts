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

/** What a read-modify-write makes of the object: its new value (none: leave it) and a result. */
export interface JsonUpdate<R> {
  next?: unknown;
  result: R;
}

/**
 * Read-modify-write of one JSON object that concurrent writers share: reads it (absent:
 * `undefined`), lets `change` decide, and writes only over the version read (If-Match its
 * ETag, If-None-Match when it was absent). A lost race reads again and decides again, so
 * no writer's change is lost. `change` must be pure: it may run several times.
 */
export async function updateJsonObject<R>(
  s3: S3Client,
  bucket: string,
  key: string,
  change: (current: unknown | undefined) => JsonUpdate<R>,
  attempts = 8,
): Promise<R> {
  for (let attempt = 1; ; attempt++) {
    const { value, eTag } = await readJsonWithETag(s3, bucket, key);
    const { next, result } = change(value);
    if (next === undefined) return result;
    try {
      await s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: `${JSON.stringify(next, null, 2)}\n`,
          ContentType: "application/json",
          ...(eTag ? { IfMatch: eTag } : { IfNoneMatch: "*" }),
        }),
      );
      return result;
    } catch (error) {
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata
        ?.httpStatusCode;
      if ((status === 412 || status === 409) && attempt < attempts) {
        // Writers that collided back off by different amounts before they read again.
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 25 * attempt));
        continue;
      }
      throw error;
    }
  }
}

async function readJsonWithETag(
  s3: S3Client,
  bucket: string,
  key: string,
): Promise<{ value: unknown | undefined; eTag: string | undefined }> {
  try {
    const response = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const text = (await response.Body?.transformToString("utf-8")) ?? "";
    // Without an ETag the write would be unconditional: never risk that.
    if (!response.ETag) throw new Error(`S3 returned no ETag for ${key}`);
    return { value: JSON.parse(text), eTag: response.ETag };
  } catch (error) {
    if (!isNotFound(error)) throw error;
    return { value: undefined, eTag: undefined };
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
