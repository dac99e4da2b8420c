import { isCalendarDate, toIsoDate } from "../shared/dates";
import type { Logger } from "../shared/logger";
import type { RunManifest, RunTrigger } from "../shared/run-manifest";
import type { DateRange, SyncRequest } from "../shared/sync-request";
import { UnreadableWatermarkError, type WatermarkStore } from "../shared/watermark-store";
import { buildSyncQuery, type QueryStarter } from "./athena-query";
import { clientRequestToken } from "./client-request-token";
import { applyCatchUp, requestedDateRange } from "./date-range";
import type { RunStore } from "./run-store";
import { validateSyncRequest } from "./sync-event";

/** What the start Lambda returns for a manual or scheduled start. */
export interface StartResult {
  success: boolean;
  queryExecutionId?: string;
  /** Empty strings when the request was refused before a range existed (the spec's convention). */
  dateRange: DateRange;
  dryRun: boolean;
  publicationCode?: string;
  duration: number;
  error?: string;
}

export interface StartDeps {
  queries: QueryStarter;
  runs: RunStore;
  watermark: WatermarkStore;
  settings: { database: string; table: string; maxDays: number; catchUpMaxDays: number };
}

/** One query to start: everything its token, SQL and manifest are made of. */
export interface RunPlan {
  trigger: RunTrigger;
  request: SyncRequest;
  dateRange: DateRange;
  publicationCode?: string | undefined;
  dryRun: boolean;
  attempt: number;
  previousQueryExecutionId?: string | undefined;
}

export interface StartedRun {
  queryExecutionId: string;
  /** True when an earlier delivery of the same trigger already started this query. */
  alreadyStarted: boolean;
}

/**
 * A manual or scheduled request: validate, work out the range (with catch-up),
 * start the query. Bad input is answered with `success: false` and starts
 * nothing; failures of Athena or S3 are thrown, so Lambda's own retries (same
 * event, same token) take over.
 */
export async function requestSync(
  deps: StartDeps,
  input: { trigger: RunTrigger; payload: unknown; now: Date },
  logger: Logger,
): Promise<StartResult> {
  const startedAt = Date.now();
  const refuse = (error: string): StartResult => {
    logger.warn("Request refused; nothing started", { error });
    return {
      success: false,
      dateRange: { start: "", end: "" },
      dryRun: false,
      duration: Date.now() - startedAt,
      error,
    };
  };
  const today = toIsoDate(input.now);
  const validated = validateSyncRequest(input.payload, { today, maxDays: deps.settings.maxDays });
  if (!validated.ok) return refuse(validated.error);

  const request = validated.value;
  const publicationCode = request.publicationCode?.toLowerCase();
  let dateRange = requestedDateRange(request, today);
  if (!isCalendarDate(dateRange.start)) {
    return refuse(
      `Invalid request: ${request.days} days ending ${dateRange.end} start before year 100`,
    );
  }
  // The watermark is about all publications, so only unfiltered runs without an
  // explicit date catch up; an explicit date means "exactly this".
  if (request.date === undefined && publicationCode === undefined) {
    dateRange = await catchUp(deps, dateRange, logger);
  }

  const dryRun = request.dryRun ?? false;
  const { queryExecutionId } = await startRun(
    deps,
    { trigger: input.trigger, request, dateRange, publicationCode, dryRun, attempt: 1 },
    logger,
    input.now,
  );
  return {
    success: true,
    queryExecutionId,
    dateRange,
    dryRun,
    ...(publicationCode !== undefined ? { publicationCode } : {}),
    duration: Date.now() - startedAt,
  };
}

async function catchUp(deps: StartDeps, range: DateRange, logger: Logger): Promise<DateRange> {
  let lastCompleteDate: string | undefined;
  try {
    lastCompleteDate = (await deps.watermark.read())?.lastCompleteDate;
  } catch (error) {
    // A retry cannot repair a malformed state file; tonight's range still runs.
    if (!(error instanceof UnreadableWatermarkError)) throw error;
    logger.warn("Watermark unreadable; no catch-up this run", { error });
    return range;
  }
  if (lastCompleteDate === undefined) return range;
  const caughtUp = applyCatchUp(range, lastCompleteDate, deps.settings.catchUpMaxDays);
  if (caughtUp.addedDays > 0) {
    logger.info("Catching up missed days", {
      lastCompleteDate,
      requestedRange: range,
      dateRange: caughtUp.range,
      addedDays: caughtUp.addedDays,
      capped: caughtUp.capped,
      catchUpMaxDays: deps.settings.catchUpMaxDays,
    });
  }
  if (caughtUp.capped) {
    logger.warn("Missed span longer than the catch-up cap; older days need a manual backfill", {
      lastCompleteDate,
      firstDayNotCovered: caughtUp.range.start,
    });
  }
  return caughtUp.range;
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
  });
  return { queryExecutionId, alreadyStarted: false };
}
