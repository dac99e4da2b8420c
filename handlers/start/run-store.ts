import type { S3Client } from "@aws-sdk/client-s3";
import { runManifestKey, WATERMARK_KEY } from "../shared/bucket-layout";
import { parseRunManifest, type RunManifest } from "../shared/run-manifest";
import { getJsonObject, putJsonObject } from "../shared/s3";
import { parseWatermark, type Watermark } from "../shared/watermark";

/** What the start Lambda keeps in the results bucket: run manifests, and the ingest's watermark. */
export interface RunStore {
  readManifest(queryExecutionId: string): Promise<RunManifest | undefined>;
  writeManifest(manifest: RunManifest): Promise<void>;
  /** Throws `UnreadableWatermarkError` when the object exists but is not a watermark. */
  readWatermark(): Promise<Watermark | undefined>;
}

export class UnreadableWatermarkError extends Error {}

export function createS3RunStore(s3: S3Client, bucket: string): RunStore {
  return {
    async readManifest(queryExecutionId) {
      const value = await getJsonObject(s3, bucket, runManifestKey(queryExecutionId));
      return value === undefined ? undefined : parseRunManifest(value);
    },
    async writeManifest(manifest) {
      await putJsonObject(s3, bucket, runManifestKey(manifest.queryExecutionId), manifest);
    },
    async readWatermark() {
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
  };
}
