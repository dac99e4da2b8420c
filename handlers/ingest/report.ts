import type { Reconciliation } from "../shared/reconciliation";
import type { DateRange } from "../shared/sync-request";
import type { Checkpoint } from "./batch-pipeline";
import type { S3ObjectRef } from "./s3-records";
import type { LineCounts, Tally } from "./tally";

/** The spec's SyncResponse stats (§5). */
export interface SyncStats {
  rowsFromAthena: number;
  synced: number;
  skipped: number;
  errors: number;
}

/**
 * `reports/<source key>.json`: the spec's SyncResponse fields for one object plus what
 * operators need to act on it.
 */
export interface ObjectReport {
  success: boolean;
  dateRange: DateRange;
  stats: SyncStats;
  /**
   * The object's physical lines, beside `stats`' records: a record can span lines (a quote
   * that never closed swallows the next line). `accounted` sums every bucket: the header,
   * the synced, skipped and error records' lines and the blank lines; it equals `read`.
   */
  lines: LineCounts & { accounted: number };
  /** Milliseconds. */
  duration: number;
  error?: string;
  /**
   * `synced`: ran to the end; `rejected`: the file cannot be ingested as is (retry won't help);
   * `failed`: retryable; `continued`: handed over to a fresh invocation (never written as the
   * report, only returned by the invocation that stopped); `incomplete`: ran to the end,
   * but the records read differ from the rows Athena returned (`reconciliation`).
   */
  outcome: "synced" | "rejected" | "failed" | "continued" | "incomplete" | "running";
  /** Records read against Athena's OutputRows, for a file that ran to its end. */
  reconciliation?: Reconciliation;
  /** Lambda invocations the file took so far (1 unless it continued in fresh invocations). */
  invocations: number;
  dryRun: boolean;
  dryRunSource?: "tag" | "manifest";
  /** Entry updates (one per entry per batch): inserted, updated, unchanged. Dry runs: would be. */
  inserted: number;
  updated: number;
  unchanged: number;
  /**
   * Row identities of a day that now resolve to another entry than before: their
   * contribution left the old entry (counted in `updated`, or in `deleted` when the old
   * entry was left with none). Dry runs: would.
   */
  moved: number;
  /** Automated entries deleted because every contribution moved away. */
  deleted: number;
  /** `tracking_sync_runs._id` of this run: what the contributions' `run` names. */
  run?: string;
  /** Dry runs: how many entry updates would change each field. */
  fieldChanges?: Record<string, number>;
  skippedByReason: Record<string, number>;
  errorsByReason: Record<string, number>;
  warnings: Record<string, number>;
  missingColumns?: string[];
  rejects?: { bucket: string; key: string; rows: number };
  source: {
    bucket: string;
    key: string;
    eTag?: string;
    versionId?: string;
    size?: number;
    sequencer?: string;
  };
  queryExecutionId?: string;
  /** Committed progress: where a continuation would resume. */
  progress: Checkpoint;
  lookupQueries: number;
  writeBatches: number;
  /** Times the source's body broke mid-file and was reopened where it broke (all invocations). */
  streamResumes: number;
  startedAt: string;
  finishedAt: string;
}

export function buildReport(input: {
  object: S3ObjectRef;
  tally: Tally;
  outcome: ObjectReport["outcome"];
  error?: string;
  dryRun: boolean;
  dryRunSource?: "tag" | "manifest";
  queryExecutionId?: string;
  missingColumns?: string[];
  rejects?: ObjectReport["rejects"];
  run?: string;
  progress: Checkpoint;
  lookupQueries: number;
  writeBatches: number;
  /** Defaults to 1 (a file read in one invocation). */
  invocations?: number;
  startedAt: Date;
  finishedAt: Date;
}): ObjectReport {
  const { tally, object } = input;
  return {
    success: input.outcome === "synced" || input.outcome === "continued",
    dateRange: tally.dateRange,
    stats: {
      rowsFromAthena: tally.rows,
      synced: tally.synced,
      skipped: tally.skipped,
      errors: tally.errors,
    },
    lines: { ...tally.lines, accounted: tally.linesAccounted },
    duration: input.finishedAt.getTime() - input.startedAt.getTime(),
    ...(input.error !== undefined ? { error: input.error } : {}),
    outcome: input.outcome,
    invocations: input.invocations ?? 1,
    dryRun: input.dryRun,
    ...(input.dryRunSource ? { dryRunSource: input.dryRunSource } : {}),
    inserted: tally.inserted,
    updated: tally.updated,
    unchanged: tally.unchanged,
    moved: tally.moved,
    deleted: tally.deleted,
    ...(input.run ? { run: input.run } : {}),
    ...(input.dryRun ? { fieldChanges: tally.fieldChanges } : {}),
    skippedByReason: tally.skippedByReason,
    errorsByReason: tally.errorsByReason,
    warnings: tally.warnings,
    ...(input.missingColumns ? { missingColumns: input.missingColumns } : {}),
    ...(input.rejects ? { rejects: input.rejects } : {}),
    source: {
      bucket: object.bucket,
      key: object.key,
      ...(object.eTag ? { eTag: object.eTag } : {}),
      ...(object.versionId ? { versionId: object.versionId } : {}),
      ...(object.size !== undefined ? { size: object.size } : {}),
      ...(object.sequencer ? { sequencer: object.sequencer } : {}),
    },
    ...(input.queryExecutionId ? { queryExecutionId: input.queryExecutionId } : {}),
    progress: input.progress,
    lookupQueries: input.lookupQueries,
    writeBatches: input.writeBatches,
    streamResumes: tally.streamResumes,
    startedAt: input.startedAt.toISOString(),
    finishedAt: input.finishedAt.toISOString(),
  };
}
