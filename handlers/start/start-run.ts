import type { Logger } from "../shared/logger";
import type { RunManifest, RunTrigger } from "../shared/run-manifest";
import type { DateRange, SyncRequest } from "../shared/sync-request";
import { buildSyncQuery } from "./athena-query";
import { clientRequestToken } from "./client-request-token";
import type { StartDeps } from "./start-sync";

/** One query to start: everything its token, SQL and manifest are made of. */
export interface RunPlan {
  trigger: RunTrigger;
  request: SyncRequest;
  dateRange: DateRange;
  publicationCode?: string | undefined;
  dryRun: boolean;
  attempt: number;
  previousQueryExecutionId?: string | undefined;
  /** The fanned-out request this one-day query belongs to. */
  planId?: string | undefined;
}

export interface StartedRun {
  queryExecutionId: string;
  /** True when an earlier delivery of the same trigger already started this query. */
  alreadyStarted: boolean;
}

/**
 * Starts the query for a plan and records its run manifest. Idempotent: the same
 * plan gives the same ClientRequestToken, Athena answers with the query it already
 * started, and an existing manifest is left as it is.
 */
export async function startRun(
  deps: StartDeps,
  plan: RunPlan,
  logger: Logger,
  now: Date,
): Promise<StartedRun> {
  const token = clientRequestToken(plan);
  const query = buildSyncQuery({
    database: deps.settings.database,
    table: deps.settings.table,
    dateRange: plan.dateRange,
    publicationCode: plan.publicationCode,
  });
  const queryExecutionId = await deps.queries.start({ query, clientRequestToken: token });
  const log = logger.child({ queryExecutionId });

  if (await deps.runs.readManifest(queryExecutionId)) {
    log.info("Query already started by an earlier delivery of this trigger; nothing new started", {
      trigger: plan.trigger,
      attempt: plan.attempt,
    });
    return { queryExecutionId, alreadyStarted: true };
  }

  const manifest: RunManifest = {
    version: 1,
    queryExecutionId,
    request: plan.request,
    dateRange: plan.dateRange,
    ...(plan.publicationCode !== undefined ? { publicationCode: plan.publicationCode } : {}),
    dryRun: plan.dryRun,
    attempt: plan.attempt,
    trigger: plan.trigger,
    ...(plan.previousQueryExecutionId !== undefined
      ? { previousQueryExecutionId: plan.previousQueryExecutionId }
      : {}),
    startedAt: now.toISOString(),
    ...(plan.planId !== undefined ? { planId: plan.planId } : {}),
  };
  try {
    await deps.runs.writeManifest(manifest);
  } catch (error) {
    if (plan.dryRun) {
      // Without its manifest the ingest would take this dry run's result for a real run.
      await deps.queries.stop(queryExecutionId).catch((stopError: unknown) => {
        log.error("Could not stop the dry-run query; its result may be ingested for real", {
          error: stopError,
        });
      });
      log.error("Run manifest not written; dry-run query stopped", { error });
    }
    throw error;
  }
  log.info("Query started", {
    dateRange: plan.dateRange,
    publicationCode: plan.publicationCode,
    dryRun: plan.dryRun,
    attempt: plan.attempt,
    trigger: plan.trigger,
    previousQueryExecutionId: plan.previousQueryExecutionId,
    planId: plan.planId,
  });
  return { queryExecutionId, alreadyStarted: false };
}
