import { isCalendarDate, toIsoDate } from "../shared/dates";
import type { FanOutStore } from "../shared/fan-out-store";
import type { Logger } from "../shared/logger";
import type { RunTrigger } from "../shared/run-manifest";
import type { DateRange } from "../shared/sync-request";
import { UnreadableWatermarkError, type WatermarkStore } from "../shared/watermark-store";
import type { QueryStarter } from "./athena-query";
import { applyCatchUp, requestedDateRange } from "./date-range";
import { type FanOutSummary, fanOutRequest } from "./fan-out";
import type { RunStore } from "./run-store";
import { startRun } from "./start-run";
import { validateSyncRequest } from "./sync-event";

/** What the start Lambda returns for a manual or scheduled start. */
export interface StartResult {
  success: boolean;
  /** The one query of a one-day request; a fanned-out request lists its days' in `plan`. */
  queryExecutionId?: string;
  /** Empty strings when the request was refused before a range existed (the spec's convention). */
  dateRange: DateRange;
  dryRun: boolean;
  publicationCode?: string;
  duration: number;
  error?: string;
  /** A request of more than one day: one query per day, started up to the concurrency limit. */
  plan?: FanOutSummary;
}

export interface StartDeps {
  queries: QueryStarter;
  runs: RunStore;
  watermark: WatermarkStore;
  fanOut: FanOutStore;
  settings: {
    database: string;
    table: string;
    maxDays: number;
    catchUpMaxDays: number;
    maxConcurrentQueries: number;
  };
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
  const common = {
    dateRange,
    dryRun,
    ...(publicationCode !== undefined ? { publicationCode } : {}),
  };
  if (dateRange.start !== dateRange.end) {
    const plan = await fanOutRequest(
      deps,
      { trigger: input.trigger, request, dateRange, publicationCode, dryRun },
      logger,
      input.now,
    );
    return { success: true, ...common, duration: Date.now() - startedAt, plan };
  }
  const { queryExecutionId } = await startRun(
    deps,
    { trigger: input.trigger, request, dateRange, publicationCode, dryRun, attempt: 1 },
    logger,
    input.now,
  );
  return {
    success: true,
    queryExecutionId,
    ...common,
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
