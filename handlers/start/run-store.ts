import type { S3Client } from "@aws-sdk/client-s3";
import { runManifestKey } from "../shared/bucket-layout";
import { parseRunManifest, type RunManifest } from "../shared/run-manifest";
import { getJsonObject, putJsonObject } from "../shared/s3";

/** The run manifests the start Lambda keeps in the results bucket, one per started query. */
export interface RunStore {
  readManifest(queryExecutionId: string): Promise<RunManifest | undefined>;
  writeManifest(manifest: RunManifest): Promise<void>;
}

export function createS3RunStore(s3: S3Client, bucket: string): RunStore {
  return {
    async readManifest(queryExecutionId) {
      const value = await getJsonObject(s3, bucket, runManifestKey(queryExecutionId));
      return value === undefined ? undefined : parseRunManifest(value);
    },
    async writeManifest(manifest) {
      await putJsonObject(s3, bucket, runManifestKey(manifest.queryExecutionId), manifest);
    },
  };
}
