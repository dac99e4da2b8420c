import { randomBytes } from "node:crypto";
import {
  athenaResultKey,
  checkpointKey,
  dryRunMemoryKey,
  rejectsKey,
} from "../shared/bucket-layout";
import { type CompletionStores, completeRun } from "../shared/complete-run";
import type { TrackingSyncError } from "../shared/errors";
import type { Logger } from "../shared/logger";
import { type Reconciliation, reconcile, withVerdict } from "../shared/reconciliation";
import { redactSecrets } from "../shared/redact";
import { parseRunManifest, type RunManifest } from "../shared/run-manifest";
import {
  type ContinuationEvent,
  type DryRunMemoryRef,
  MAX_CONTINUATION_PAYLOAD_BYTES,
} from "./continuation";
import { type DryRunMemory, encodeDryRunMemory } from "./dry-run-memory";
import {
  ContinuationFailedError,
  InvalidManifestError,
  MissingColumnsError,
  ObjectReplacedError,
} from "./errors";
import { FileRun } from "./file-run";
import type { FileMetrics } from "./metrics";
import type {
  ArtifactStore,
  EntryStore,
  FileArtifacts,
  IngestMetricsPublisher,
  SelfInvoker,
  SourceStore,
} from "./ports";
import type { FileRejects } from "./rejects";
import type { ObjectReport } from "./report";
import type { S3ObjectRef } from "./s3-records";

/** What ending a file's invocation needs: the run, where its artifacts go, metrics, the log. */
export interface FileEnd {
  run: FileRun;
  artifacts: FileArtifacts;
  metrics: IngestMetricsPublisher;
  /** Epoch ms: this invocation's `Duration` is measured from here. */
  invocationStartedAt: number;
  /** Carries the bucket and key (and the query id once known) on every line. */
  logger: Logger;
  /** Where the run is recorded (`tracking_sync_runs`). */
  runs?: Pick<EntryStore, "recordRun">;
}

/**
 * Records a real run in `tracking_sync_runs`: started (`outcome: "running"`) when its
 * source is open, and how it ended. A dry run writes nothing, so it records nothing.
 */
export async function recordRunOf(end: FileEnd, report: ObjectReport): Promise<void> {
  const { run } = end;
  const runId = run.runId;
  if (!end.runs || !run.options || run.options.dryRun || !runId || !run.source) return;
  const ended = report.outcome !== "running" && report.outcome !== "continued";
  await end.runs.recordRun({
    _id: runId,
    source: {
      bucket: run.object.bucket,
      key: run.object.key,
      eTag: run.source.eTag,
      ...(run.object.versionId ? { versionId: run.object.versionId } : {}),
      size: run.source.size,
    },
    startedAt: run.startedAt,
    ...(ended ? { finishedAt: new Date(report.finishedAt) } : {}),
    outcome: report.outcome,
    invocations: report.invocations,
    counts: {
      rows: report.stats.rowsFromAthena,
      synced: report.stats.synced,
      skipped: report.stats.skipped,
      errors: report.stats.errors,
      inserted: report.inserted,
      updated: report.updated,
      unchanged: report.unchanged,
      moved: report.moved,
      deleted: report.deleted,
    },
    ...(run.options.queryExecutionId ? { queryExecutionId: run.options.queryExecutionId } : {}),
  });
}

/**
 * The file is read to its end: writes the rejects object, reconciles the records read
 * with Athena's row count, moves the watermark (a complete real run of a manifest that
 * completes its days), writes the report, removes what a continued file left, then
 * publishes the file's metrics, last.
 */
export async function finishFile(
  end: FileEnd,
  rejects: FileRejects,
  watermark: CompletionStores,
  manifests: ManifestReader,
): Promise<ObjectReport> {
  const { run, logger } = end;
  const rejectedRows = await rejects.finish(run.chain);
  const read = run.report({
    outcome: "synced",
    ...(rejectedRows !== undefined
      ? {
          rejects: {
            bucket: run.object.bucket,
            key: rejectsKey(run.object.key),
            rows: rejectedRows,
          },
        }
      : {}),
  });
  const manifest = run.options?.manifest;
  let report = withVerdict(read, await verdictNow(end, manifests, "ingest"));
  if (manifest && report.reconciliation?.status === "complete") {
    await advanceWatermark(end, manifest, watermark);
  }
  const eTag = await end.artifacts.writeReport(report);
  if (manifest && report.reconciliation?.status === "pending") {
    // Written first, read second: whichever function sees both numbers second records the verdict.
    report = await recordLateVerdict(end, report, eTag, manifests, (verdict) =>
      verdict.status === "complete" ? advanceWatermark(end, manifest, watermark) : undefined,
    );
  }
  logVerdict(end, report.reconciliation);
  await recordRunOf(end, report);
  if (run.chain) await removeContinuationLeftovers(end, rejects, run.chain);
  // Last, once the report is written: a retry after a failed report write publishes the
  // counts once, not twice, and this invocation's Duration covers all its work.
  await publishMetrics(end, {
    synced: run.tally.synced,
    skipped: run.tally.skipped,
    errors: run.tally.errors,
    inserted: run.tally.inserted,
    updated: run.tally.updated,
    unchanged: run.tally.unchanged,
    fileDurationMs: report.duration,
    invocations: report.invocations,
    incomplete:
      report.reconciliation?.status === "incomplete" &&
      report.reconciliation.recordedBy === "ingest",
  });
  logger.info("Ingest finished", {
    invocations: report.invocations,
    dryRun: report.dryRun,
    stats: report.stats,
    inserted: report.inserted,
    updated: report.updated,
    unchanged: report.unchanged,
    skippedByReason: report.skippedByReason,
    errorsByReason: report.errorsByReason,
    warnings: report.warnings,
    duration: report.duration,
  });
  return report;
}

/** Reads a query's run manifest (the source port's reader). */
export type ManifestReader = Pick<SourceStore, "readManifest">;

const MANUAL_DROP: Reconciliation = {
  status: "not-reconciled",
  reason: "manual drop: no run manifest, so no Athena row count to compare with",
};

const NOT_THE_RESULT: Reconciliation = {
  status: "not-reconciled",
  reason: "not Athena's result file (a copy under another prefix may hold only some of its rows)",
};

/** The verdict as far as known now: Athena's count from a fresh read of the manifest. */
async function verdictNow(
  end: FileEnd,
  manifests: ManifestReader,
  recordedBy: "ingest",
): Promise<Reconciliation> {
  const { run } = end;
  const manifest = run.options?.manifest;
  if (!manifest) return MANUAL_DROP;
  // A copy under another prefix (a re-dropped rejects file, say) may hold only some rows.
  if (run.object.key !== athenaResultKey(manifest.queryExecutionId)) return NOT_THE_RESULT;
  const raw = await manifests.readManifest(run.object.bucket, manifest.queryExecutionId);
  const outputRows = raw === undefined ? undefined : parseRunManifest(raw).outputRows;
  return outputRows === undefined
    ? { status: "pending", read: run.tally.rows }
    : reconcile(outputRows, run.tally.rows, recordedBy);
}

/** A second look after the pending report is written; records the verdict if Athena's count is there now. */
async function recordLateVerdict(
  end: FileEnd,
  pending: ObjectReport,
  eTag: string | undefined,
  manifests: ManifestReader,
  onRecorded: (verdict: Reconciliation) => Promise<void> | undefined,
): Promise<ObjectReport> {
  // The report is written: a failure from here on must not turn it into a failed run.
  // The start function wrote the manifest before reading the report, so it records the
  // verdict when this look fails.
  let verdict: Reconciliation;
  let recorded: ObjectReport;
  try {
    verdict = await verdictNow(end, manifests, "ingest");
    if (verdict.status === "pending" || eTag === undefined) return pending;
    recorded = withVerdict(pending, verdict);
    if (!(await end.artifacts.replaceReport(recorded, eTag))) {
      end.logger.info("Reconciliation recorded by the start function", { verdict });
      return pending;
    }
  } catch (error) {
    end.logger.warn("Second look at Athena's row count failed; the start function reconciles", {
      error,
    });
    return pending;
  }
  // This function recorded the verdict, so only it acts on it: a failure here (the watermark,
  // a fanned-out day marked complete) is thrown, and Lambda's retry of the file finds the
  // verdict complete and acts on it again.
  await onRecorded(verdict);
  return recorded;
}

function logVerdict(end: FileEnd, verdict: Reconciliation | undefined): void {
  if (verdict?.status === "incomplete") {
    end.logger.error("Incomplete result: records read differ from Athena's OutputRows", {
      reconciliation: verdict,
    });
  } else if (verdict?.status === "pending") {
    end.logger.info(
      "Reconciliation pending: Athena's row count is not recorded yet; the start function records the verdict",
      { reconciliation: verdict },
    );
  } else if (verdict?.status === "complete") {
    end.logger.info("Reconciled with Athena's OutputRows", { reconciliation: verdict });
  }
}

/**
 * Hands the rest of the file to a fresh invocation: uploads this invocation's rejects as
 * the next part, writes the checkpoint for operators, then invokes. A failure of the
 * checkpoint or the invoke throws ContinuationFailedError: Lambda retries this invocation
 * from its own start point.
 */
export async function handOver(
  end: FileEnd,
  rejects: FileRejects,
  continueWith: SelfInvoker,
  dryRunMemory?: DryRunMemory,
): Promise<ObjectReport> {
  const { run, logger } = end;
  const chain = run.chainForHandOver();
  const memory = dryRunMemory ? await handOverDryRunMemory(end, chain, dryRunMemory) : undefined;
  const state = run.continuationState(
    await rejects.handOver(chain, handOverName(chain, run.invocation)),
    memory,
  );
  const event: ContinuationEvent = { trackingSyncContinuation: state };
  const bytes = Buffer.byteLength(JSON.stringify(event));
  if (bytes > MAX_CONTINUATION_PAYLOAD_BYTES) {
    throw new ContinuationFailedError(
      `Continuation payload of ${bytes} bytes exceeds ${MAX_CONTINUATION_PAYLOAD_BYTES}`,
      { bytes },
    );
  }
  try {
    await end.artifacts.writeCheckpoint(state);
    await continueWith(event);
  } catch (error) {
    throw new ContinuationFailedError(
      `Could not continue ${run.object.key} in a fresh invocation: ${(error as Error).message}`,
      { cause: (error as Error).name, checkpoint: state.checkpoint },
    );
  }
  logger.info("Continuing in a fresh invocation", {
    continuation: state.continuation,
    checkpoint: state.checkpoint,
    rejectsRows: state.rejects.rows,
    payloadBytes: bytes,
    ...(memory ? { dryRunMemoryBytes: memory.size } : {}),
  });
  await publishMetrics(end);
  return run.report({ outcome: "continued" });
}

/**
 * The file failed as a unit. Writes a `success: false` report (best effort) and publishes
 * this invocation's Duration. A data problem (retry cannot help) is returned as the
 * report; anything else is thrown for Lambda's retries.
 */
export async function failFile(end: FileEnd, error: TrackingSyncError): Promise<ObjectReport> {
  const { run, logger } = end;
  // A replaced object is ingested by its own event; retrying this one cannot help.
  const dataProblem =
    error instanceof MissingColumnsError ||
    error instanceof InvalidManifestError ||
    error instanceof ObjectReplacedError;
  const report = run.report({
    outcome: dataProblem ? "rejected" : "failed",
    error: error.message,
    ...(error instanceof MissingColumnsError ? { missingColumns: error.missingColumns } : {}),
  });
  try {
    await end.artifacts.writeReport(report);
  } catch (reportError) {
    logger.error("Could not write the failure report", { error: reportError });
  }
  try {
    await recordRunOf(end, report);
  } catch (runError) {
    logger.error("Could not record the failed run", { error: runError });
  }
  logger.error(dataProblem ? "Ingest rejected the file" : "Ingest failed", {
    error,
    stats: report.stats,
    duration: report.duration,
  });
  // An invocation that fails near its timeout is what the Duration alarm is for; no counts.
  await publishMetrics(end);
  if (dataProblem) return report;
  throw error;
}

async function advanceWatermark(
  end: FileEnd,
  manifest: RunManifest,
  stores: CompletionStores,
): Promise<void> {
  const dryRun = end.run.options?.dryRun ?? manifest.dryRun;
  if (dryRun) return;
  const outcome = await completeRun(stores, { ...manifest, dryRun }, end.run.object.key);
  end.logger.info(outcome.moved ? "Watermark advanced" : "Watermark kept", { ...outcome });
}

/**
 * After the report is written: the checkpoint, a dry run's memories and an earlier
 * version's rejects parts (this version's expire: `FileRejects.removeParts`). Best effort
 * (logged): leftovers trigger nothing, while throwing now would retry a finished file.
 */
async function removeContinuationLeftovers(
  end: FileEnd,
  rejects: FileRejects,
  chain: string,
): Promise<void> {
  await rejects.removeParts(chain, end.logger);
  try {
    await end.artifacts.removeCheckpoint();
  } catch (error) {
    end.logger.warn("Could not remove a continuation leftover", {
      leftover: checkpointKey(end.run.object.key),
      error,
    });
  }
  await removeDryRunMemories(end);
}

/**
 * `<chain>-<invocation>-<nonce>`: what one hand-over writes is named for it alone, so two
 * copies of one invocation (a redelivered event, a retry after an invoke that did go
 * out) that stopped at different rows never write, read or remove each other's objects.
 */
function handOverName(chain: string, invocation: number): string {
  return `${chain}-${invocation}-${randomBytes(6).toString("hex")}`;
}

/**
 * A dry run continued in a fresh invocation: what it simulated so far goes to an object
 * of its own (`state/checkpoints/<key>.dry-run-<chain>-<n>-<nonce>`; too large for the payload),
 * which the next invocation reads, so its counts go on exactly as in one invocation.
 */
async function handOverDryRunMemory(
  end: FileEnd,
  chain: string,
  memory: DryRunMemory,
): Promise<DryRunMemoryRef> {
  const { run } = end;
  const name = handOverName(chain, run.invocation);
  const previous = run.earlierDryRunMemory;
  const earlier = previous ? [...previous.earlier, previous.name] : [];
  const content = encodeDryRunMemory(memory);
  try {
    await end.artifacts.writeDryRunMemory(name, content);
  } catch (error) {
    throw new ContinuationFailedError(
      `Could not hand the dry run's memory over: ${(error as Error).message}`,
      { name, bytes: content.size },
    );
  }
  return { name, size: content.size, earlier };
}

/**
 * Best effort, once the file is done: the memories every earlier invocation of a
 * continued dry run handed over (kept until then, so a retried or twice-delivered
 * continuation still finds the one it reads; a leftover only costs storage).
 */
async function removeDryRunMemories(end: FileEnd): Promise<void> {
  const { run } = end;
  const last = run.earlierDryRunMemory;
  if (!last) return;
  for (const name of [...last.earlier, last.name]) {
    try {
      await end.artifacts.removeDryRunMemory(name);
    } catch (error) {
      end.logger.warn("Could not remove a continuation leftover", {
        leftover: dryRunMemoryKey(run.object.key, name),
        error,
      });
    }
  }
}

/**
 * Every invocation of a real run publishes its own Duration; only the one that finishes
 * the file adds the file's counts. Dry runs publish nothing.
 */
async function publishMetrics(end: FileEnd, file?: FileMetrics): Promise<void> {
  const options = end.run.options;
  if (!options || options.dryRun) return;
  await end.metrics.publish(
    { invocationDurationMs: Date.now() - end.invocationStartedAt, ...(file ? { file } : {}) },
    end.logger,
  );
}

/**
 * The `success: false` report of an object that was not attempted because MongoDB was
 * already found down in this invocation (best effort: a failure here is only logged).
 */
export async function reportNotAttempted(
  object: S3ObjectRef,
  artifacts: ArtifactStore,
  error: string,
  logger: Logger,
): Promise<void> {
  const report = FileRun.start(object).report({ outcome: "failed", error: redactSecrets(error) });
  try {
    await artifacts(object).writeReport(report);
  } catch (reportError) {
    logger.error("Could not write the failure report", {
      bucket: object.bucket,
      key: object.key,
      error: reportError,
    });
  }
}
