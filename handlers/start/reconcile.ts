import { athenaResultKey } from "../shared/bucket-layout";
import { type CompletionStores, completeRun } from "../shared/complete-run";
import type { Logger } from "../shared/logger";
import { type Reconciliation, reconcile, withVerdict } from "../shared/reconciliation";
import type { RunManifest } from "../shared/run-manifest";
import type { QueryInspector } from "./athena-query";
import type { StartMetrics } from "./metrics";
import type { RunStore } from "./run-store";

export interface ReconcileDeps extends CompletionStores {
  runs: RunStore;
  queries: QueryInspector;
  metrics: StartMetrics;
}

export type OutputRowsOutcome =
  | { action: "output-rows-unknown"; queryExecutionId: string }
  | {
      action: "output-rows-recorded";
      queryExecutionId: string;
      outputRows: number;
      /** Present when this function recorded the verdict (the ingest had finished first). */
      verdict?: Reconciliation;
    };

/**
 * A query of ours SUCCEEDED: records Athena's row count in its manifest, then, if the
 * ingest already finished the result file and is waiting for that count, records the
 * verdict in the ingest's report (written first, read second, so one of the two
 * functions always sees both numbers). A complete real run of every publication moves
 * the watermark; an incomplete one counts `IncompleteResults`.
 */
export async function recordOutputRows(
  deps: ReconcileDeps,
  manifest: RunManifest,
  logger: Logger,
): Promise<OutputRowsOutcome> {
  const { queryExecutionId } = manifest;
  const outputRows = await deps.queries.outputRows(queryExecutionId);
  if (outputRows === undefined) {
    logger.warn("Athena reported no output row count; the result cannot be reconciled");
    return { action: "output-rows-unknown", queryExecutionId };
  }
  if (manifest.outputRows !== outputRows) {
    await deps.runs.writeManifest({ ...manifest, outputRows });
  }
  const sourceKey = athenaResultKey(queryExecutionId);
  const found = await deps.runs.readReport(sourceKey);
  const current = found?.report.reconciliation;
  const dryRun = found?.report.dryRun ?? manifest.dryRun;
  if (found && current?.status !== "pending" && current && "recordedBy" in current) {
    if (current.recordedBy === "start") {
      // A redelivery (or Lambda's retry after a failure past the replace): what the verdict
      // implies may not have happened yet. The watermark write is idempotent; a second
      // IncompleteResults only keeps an alarm that is already right.
      await settle(deps, { ...manifest, dryRun }, current, sourceKey, logger);
    }
    logger.info("Output rows recorded", { outputRows, report: current.status });
    return { action: "output-rows-recorded", queryExecutionId, outputRows };
  }
  if (!found || current?.status !== "pending") {
    logger.info("Output rows recorded", { outputRows, report: current?.status ?? "not yet" });
    return { action: "output-rows-recorded", queryExecutionId, outputRows };
  }
  const verdict = reconcile(outputRows, current.read, "start");
  if (!(await deps.runs.replaceReport(sourceKey, withVerdict(found.report, verdict), found.eTag))) {
    logger.info("Reconciliation recorded by the ingest", { outputRows });
    return { action: "output-rows-recorded", queryExecutionId, outputRows };
  }
  await settle(deps, { ...manifest, dryRun }, verdict, sourceKey, logger);
  return { action: "output-rows-recorded", queryExecutionId, outputRows, verdict };
}

/** What a verdict this function recorded implies: the alarm's metric, or the watermark. */
async function settle(
  deps: ReconcileDeps,
  manifest: RunManifest,
  verdict: Reconciliation,
  sourceKey: string,
  logger: Logger,
): Promise<void> {
  if (verdict.status === "incomplete") {
    logger.error("Incomplete result: records read differ from Athena's OutputRows", {
      reconciliation: verdict,
    });
    if (!manifest.dryRun) await deps.metrics.incompleteResults(manifest.queryExecutionId);
    return;
  }
  logger.info("Reconciled with Athena's OutputRows", { reconciliation: verdict });
  if (manifest.dryRun) return;
  const outcome = await completeRun(deps, manifest, sourceKey);
  logger.info(outcome.moved ? "Watermark advanced" : "Watermark kept", { ...outcome });
}
