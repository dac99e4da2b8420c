import { GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { WATERMARK_KEY } from "../shared/bucket-layout";
import type { RunManifest } from "../shared/run-manifest";
import { isNotFound } from "../shared/s3";
import { parseWatermark, type Watermark } from "../shared/watermark";

const MAX_ATTEMPTS = 5;

/**
 * Whether a finished real run of this manifest completes its days: only a run of every
 * publication does. A run narrowed to one `publicationCode` is a partial sync, and the
 * start Lambda's catch-up must still cover those days for the others.
 */
export function completesDays(manifest: Pick<RunManifest, "publicationCode">): boolean {
  return manifest.publicationCode === undefined;
}

export interface WatermarkAdvance {
  moved: boolean;
  previous: string | undefined;
  current: string;
}

/**
 * Moves `state/watermark.json` forward to `lastCompleteDate`, never backwards. The write
 * is conditional on the object read (If-Match its ETag, or If-None-Match when absent), so
 * two ingests finishing together cannot move it back; a lost race re-reads and retries.
 */
export async function advanceWatermark(
  s3: S3Client,
  bucket: string,
  next: Omit<Watermark, "updatedAt">,
  now: () => Date = () => new Date(),
): Promise<WatermarkAdvance> {
  for (let attempt = 1; ; attempt++) {
    let current: Watermark | undefined;
    let eTag: string | undefined;
    try {
      const response = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: WATERMARK_KEY }));
      eTag = response.ETag;
      current = parseWatermark(JSON.parse((await response.Body?.transformToString("utf-8")) ?? ""));
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
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
      return { moved: true, previous: current?.lastCompleteDate, current: next.lastCompleteDate };
    } catch (error) {
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata
        ?.httpStatusCode;
      if ((status === 412 || status === 409) && attempt < MAX_ATTEMPTS) continue;
      throw error;
    }
  }
}
