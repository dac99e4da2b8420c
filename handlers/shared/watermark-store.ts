import { GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { WATERMARK_KEY } from "./bucket-layout";
import { getJsonObject, isNotFound } from "./s3";
import { parseWatermark, type Watermark } from "./watermark";

/**
 * `state/watermark.json`, the one piece of state both functions share: the ingest moves
 * it forward after a complete real run, the start function reads it to catch up.
 */
export interface WatermarkStore {
  /** Throws `UnreadableWatermarkError` when the object exists but is not a watermark. */
  read(): Promise<Watermark | undefined>;
  /** Moves the watermark forward to `next.lastCompleteDate`, never backwards. */
  advance(next: Omit<Watermark, "updatedAt">): Promise<WatermarkAdvance>;
}

export interface WatermarkAdvance {
  moved: boolean;
  previous: string | undefined;
  current: string;
}

export class UnreadableWatermarkError extends Error {}

const MAX_ATTEMPTS = 5;

/**
 * The watermark in `bucket`. `advance` writes conditionally on the object read (If-Match
 * its ETag, or If-None-Match when absent), so two ingests finishing together cannot move
 * it back; a lost race re-reads and retries.
 */
export function createS3WatermarkStore(
  s3: S3Client,
  bucket: string,
  now: () => Date = () => new Date(),
): WatermarkStore {
  return {
    async read() {
      let value: unknown;
      try {
        value = await getJsonObject(s3, bucket, WATERMARK_KEY);
      } catch (error) {
        if (error instanceof SyntaxError) throw new UnreadableWatermarkError(error.message);
        throw error;
      }
      if (value === undefined) return undefined;
      try {
        return parseWatermark(value);
      } catch (error) {
        throw new UnreadableWatermarkError((error as Error).message);
      }
    },

    async advance(next) {
      for (let attempt = 1; ; attempt++) {
        const { current, eTag } = await readWithETag(s3, bucket);
        if (current && current.lastCompleteDate >= next.lastCompleteDate) {
          return {
            moved: false,
            previous: current.lastCompleteDate,
            current: current.lastCompleteDate,
          };
        }
        try {
          await s3.send(
            new PutObjectCommand({
              Bucket: bucket,
              Key: WATERMARK_KEY,
              Body: `${JSON.stringify({ ...next, updatedAt: now().toISOString() }, null, 2)}\n`,
              ContentType: "application/json",
              ...(eTag ? { IfMatch: eTag } : { IfNoneMatch: "*" }),
            }),
          );
          return {
            moved: true,
            previous: current?.lastCompleteDate,
            current: next.lastCompleteDate,
          };
        } catch (error) {
          const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata
            ?.httpStatusCode;
          if ((status === 412 || status === 409) && attempt < MAX_ATTEMPTS) continue;
          throw error;
        }
      }
    },
  };
}

async function readWithETag(
  s3: S3Client,
  bucket: string,
): Promise<{ current: Watermark | undefined; eTag: string | undefined }> {
  try {
    const response = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: WATERMARK_KEY }));
    const text = (await response.Body?.transformToString("utf-8")) ?? "";
    return { current: parseWatermark(JSON.parse(text)), eTag: response.ETag };
  } catch (error) {
    if (!isNotFound(error)) throw error;
    return { current: undefined, eTag: undefined };
  }
}
