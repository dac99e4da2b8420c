import { queryExecutionIdFromKey } from "../shared/bucket-layout";
import { isTruthyFlag } from "../shared/env";
import { parseRunManifest, type RunManifest } from "../shared/run-manifest";
import { InvalidManifestError, ObjectUnreadableError } from "./errors";
import type { SourceStore } from "./ports";
import type { S3ObjectRef } from "./s3-records";

export interface RunOptions {
  dryRun: boolean;
  /** Why this is a dry run, when it is one. */
  dryRunSource: "tag" | "manifest" | undefined;
  queryExecutionId: string | undefined;
  /** The start Lambda's manifest; absent for manual drops (normal). */
  manifest: RunManifest | undefined;
}

/**
 * Reads how to run an object: a dry run when the object is tagged `dryRun` (key and
 * value case-insensitive: true/1/yes) at upload, or when its run manifest says so.
 */
export async function readRunOptions(
  source: Pick<SourceStore, "readTags" | "readManifest">,
  object: S3ObjectRef,
): Promise<RunOptions> {
  const queryExecutionId = queryExecutionIdFromKey(object.key);
  let tags: { Key?: string; Value?: string }[];
  try {
    tags = await source.readTags(object);
  } catch (error) {
    throw new ObjectUnreadableError(
      `Could not read the tags of s3://${object.bucket}/${object.key}`,
      {
        cause: (error as Error).name,
        message: (error as Error).message,
      },
    );
  }
  const taggedDryRun = tags.some(
    (tag) => tag.Key?.trim().toLowerCase() === "dryrun" && isTruthyFlag(tag.Value ?? ""),
  );
  let manifest: RunManifest | undefined;
  if (queryExecutionId) {
    const raw = await source.readManifest(object.bucket, queryExecutionId).catch((error: Error) => {
      if (error instanceof SyntaxError)
        throw new InvalidManifestError(`run manifest is not JSON: ${error.message}`);
      throw new ObjectUnreadableError(`Could not read the run manifest for ${queryExecutionId}`, {
        message: error.message,
      });
    });
    if (raw !== undefined) {
      try {
        manifest = parseRunManifest(raw);
      } catch (error) {
        throw new InvalidManifestError((error as Error).message);
      }
    }
  }
  const dryRunSource = taggedDryRun ? "tag" : manifest?.dryRun ? "manifest" : undefined;
  return { dryRun: dryRunSource !== undefined, dryRunSource, queryExecutionId, manifest };
}
