import type { S3Client } from "@aws-sdk/client-s3";
import { GetObjectCommand, paginateListObjectsV2 } from "@aws-sdk/client-s3";
import { RUNS_PREFIX, reportKey, runManifestKey } from "../shared/bucket-layout";
import type { ReconciledReport } from "../shared/reconciliation";
import {
  InvalidRunManifestError,
  parseRunManifest,
  type RunManifest,
} from "../shared/run-manifest";
import { getJsonObject, isNotFound, putJsonObject, replaceIfUnchanged } from "../shared/s3";

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
  /**
   * The manifests written (or rewritten) since `since`, and when the oldest object under
   * `runs/` was written (none: no query was ever started). A manifest that cannot be
   * parsed is skipped: it is not a query of ours.
   */
  recentManifests(
    since: Date,
  ): Promise<{ manifests: RunManifest[]; firstWrittenAt: Date | undefined }>;
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
        // Without an ETag the replace would be unconditional: never risk that.
        if (!response.ETag) throw new Error(`S3 returned no ETag for ${reportKey(sourceKey)}`);
        return { report: JSON.parse(text) as ReconciledReport, eTag: response.ETag };
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    },
    async recentManifests(since) {
      const keys: string[] = [];
      let firstWrittenAt: Date | undefined;
      for await (const page of paginateListObjectsV2(
        { client: s3 },
        { Bucket: bucket, Prefix: RUNS_PREFIX },
      )) {
        for (const object of page.Contents ?? []) {
          if (object.LastModified && !(firstWrittenAt && firstWrittenAt <= object.LastModified)) {
            firstWrittenAt = object.LastModified;
          }
          if (object.Key && object.LastModified && object.LastModified >= since)
            keys.push(object.Key);
        }
      }
      const manifests: RunManifest[] = [];
      for (const key of keys) {
        try {
          const value = await getJsonObject(s3, bucket, key);
          if (value !== undefined) manifests.push(parseRunManifest(value));
        } catch (error) {
          if (!(error instanceof SyntaxError) && !(error instanceof InvalidRunManifestError)) {
            throw error;
          }
        }
      }
      return { manifests, firstWrittenAt };
    },
    replaceReport: (sourceKey, report, eTag) =>
      replaceIfUnchanged(() => putJsonObject(s3, bucket, reportKey(sourceKey), report, eTag)),
  };
}
