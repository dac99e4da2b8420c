import type { DateRange, SyncRequest } from "./sync-request";

/**
 * `runs/<QueryExecutionId>.json`, written by startQuery when it starts a query and
 * read by the ingest when that query's result lands. A manual drop into
 * `reprocess/` has none, which is normal.
 */
export interface RunManifest {
  version: 1;
  queryExecutionId: string;
  /** The validated request as received (scheduled runs: `{}`). */
  request: SyncRequest;
  dateRange: DateRange;
  publicationCode?: string;
  dryRun: boolean;
  /** 1 for the first start, 2 and 3 for restarts after a FAILED query. */
  attempt: number;
  trigger: RunTrigger;
  /** The QueryExecutionId this run restarts, when `trigger` is `retry`. */
  previousQueryExecutionId?: string;
  /** ISO timestamp of the StartQueryExecution call. */
  startedAt: string;
  /**
   * Rows the query returned (Athena's `OutputRows`), recorded by the start function once
   * the query SUCCEEDED: what the ingest's records read are reconciled with.
   */
  outputRows?: number;
  /**
   * Set on the one-day queries of a fanned-out request (its plan in `state/fan-out.json`);
   * `dateRange` is then that one day.
   */
  planId?: string;
}

export interface RunTrigger {
  kind: "schedule" | "manual" | "retry";
  /** The scheduled event's id, the manual invoke's request id, or the failed query's id. */
  id: string;
}

/** The JSON is not a run manifest this code understands. */
export class InvalidRunManifestError extends Error {}

/** Narrows parsed JSON to a RunManifest, or explains why it is not one. */
export function parseRunManifest(value: unknown): RunManifest {
  if (typeof value !== "object" || value === null)
    throw new InvalidRunManifestError("run manifest is not an object");
  const manifest = value as Partial<RunManifest>;
  if (manifest.version !== 1)
    throw new InvalidRunManifestError(`unsupported run manifest version ${manifest.version}`);
  if (typeof manifest.queryExecutionId !== "string")
    throw new InvalidRunManifestError("run manifest has no queryExecutionId");
  if (typeof manifest.dryRun !== "boolean")
    throw new InvalidRunManifestError("run manifest has no dryRun flag");
  if (
    typeof manifest.dateRange?.start !== "string" ||
    typeof manifest.dateRange?.end !== "string"
  ) {
    throw new InvalidRunManifestError("run manifest has no dateRange");
  }
  if (
    manifest.outputRows !== undefined &&
    !(Number.isInteger(manifest.outputRows) && manifest.outputRows >= 0)
  ) {
    throw new InvalidRunManifestError("run manifest's outputRows is not a row count");
  }
  if (manifest.planId !== undefined && typeof manifest.planId !== "string") {
    throw new InvalidRunManifestError("run manifest's planId is not a string");
  }
  return manifest as RunManifest;
}

/**
 * Whether a finished real run of this manifest completes its days: only a run of every
 * publication does. A run narrowed to one `publicationCode` is a partial sync, and the
 * start Lambda's catch-up must still cover those days for the others.
 */
export function completesDays(manifest: Pick<RunManifest, "publicationCode">): boolean {
  return manifest.publicationCode === undefined;
}
