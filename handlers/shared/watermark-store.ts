import type { S3Client } from "@aws-sdk/client-s3";
import { WATERMARK_KEY } from "./bucket-layout";
import { getJsonObject, updateJsonObject } from "./s3";
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

/**
 * The watermark in `bucket`. `advance` writes conditionally on the object read (see
 * `updateJsonObject`), so two runs finishing together cannot move it back.
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

    advance: (next) =>
      updateJsonObject<WatermarkAdvance>(s3, bucket, WATERMARK_KEY, (value) => {
        const current = value === undefined ? undefined : parseWatermark(value);
        if (current && current.lastCompleteDate >= next.lastCompleteDate) {
          const kept = current.lastCompleteDate;
          return { result: { moved: false, previous: kept, current: kept } };
        }
        return {
          next: { ...next, updatedAt: now().toISOString() },
          result: {
            moved: true,
            previous: current?.lastCompleteDate,
            current: next.lastCompleteDate,
          },
        };
      }),
  };
}
