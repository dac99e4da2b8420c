import type { S3Client } from "@aws-sdk/client-s3";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { reportKey, runManifestKey } from "../shared/bucket-layout";
import type { ReconciledReport } from "../shared/reconciliation";
import { parseRunManifest, type RunManifest } from "../shared/run-manifest";
import {
  getJsonObject,
  isNotFound,
  putJsonObject,
  putReport,
  replaceIfUnchanged,
} from "../shared/s3";

/**
 * What the start Lambda keeps in the results bucket: run manifests, one per started
 * query; and the ingest's run reports, where it records a reconciliation verdict.
 */
export interface RunStore {
  readManifest(queryExecutionId: string): Promise<RunManifest | undefined>;
  writeManifest(manifest: RunManifest): Promise<void>;
  /** The ingest's report of a source file, with the version read. */
  readReport(sourceKey: string): Promise<{ report: ReconciledReport; eTag: string } | undefined>;
  /** Replaces the report only if it is still the version `eTag`; false when it changed since. */
  replaceReport(sourceKey: string, report: ReconciledReport, eTag: string): Promise<boolean>;
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
    async readReport(sourceKey) {
      try {
        const response = await s3.send(
          new GetObjectCommand({ Bucket: bucket, Key: reportKey(sourceKey) }),
        );
        const text = (await response.Body?.transformToString("utf-8")) ?? "";
        return { report: JSON.parse(text) as ReconciledReport, eTag: response.ETag ?? "" };
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    },
    replaceReport: (sourceKey, report, eTag) =>
      replaceIfUnchanged(() => putReport(s3, bucket, reportKey(sourceKey), report, eTag)),
  };
}
