import { athenaResultKey } from "../shared/bucket-layout";
import { claimSlots } from "../shared/fan-out";
import type { Logger } from "../shared/logger";
import type { RunManifest } from "../shared/run-manifest";
import type { DateRange } from "../shared/sync-request";
import { startClaimedDays } from "./fan-out";
import type { StartMetrics } from "./metrics";
import { type ReconcileDeps, recordOutputRows } from "./reconcile";
import { handleQueryStateChange, type RetryDeps } from "./retry";
import type { RunStore } from "./run-store";

export interface FreshnessDeps extends ReconcileDeps {
  runs: RunStore;
  metrics: StartMetrics;
  settings: { resultDeadlineHours: number };
  /** Handles the ended queries of fanned-out days whose state change was never handled. */
  retry: RetryDeps;
}

export interface MissingResult {
  queryExecutionId: string;
  startedAt: string;
  dateRange: DateRange;
}

export interface FreshnessOutcome {
  action: "freshness-checked";
  /** Queries past the deadline whose result was never reported. */
  missing: MissingResult[];
  /** True when no nightly query started within a day and the deadline. */
  nightMissing: boolean;
  /** Fanned-out days whose ended query was handled by this check (its event was lost). */
  fanOutHealed: number;
}

const HOUR_MS = 3_600_000;
/** An ended query's own event normally arrives within seconds; a restart waits at most 5 min. */
const EVENT_GRACE_MS = 15 * 60_000;
/** How far back a late result is still looked for: two days past the deadline. */
const LOOKBACK_MS = 48 * HOUR_MS;

/**
 * The freshness check (its own hourly schedule): every query the schedule started (or a
 * restart of a failed one) that is older than the deadline and was not superseded by a
 * restart must have its report by now; and some nightly query must have started within
 * the last day plus the deadline. Publishes `MissingResults` (0 included) and logs
 * `Missing result` with each query id.
 */
export async function checkFreshness(
  deps: FreshnessDeps,
  now: Date,
  logger: Logger,
): Promise<FreshnessOutcome> {
  const fanOutHealed = await healFanOut(deps, now, logger);
  const deadlineMs = deps.settings.resultDeadlineHours * HOUR_MS;
  const since = new Date(now.getTime() - deadlineMs - LOOKBACK_MS);
  const { manifests, firstWrittenAt } = await deps.runs.recentManifests(since);
  const missing: MissingResult[] = [];
  for (const manifest of dueManifests(manifests, now.getTime() - deadlineMs)) {
    if (await hasSettledReport(deps, manifest, logger)) continue;
    // Someone re-ran the range by hand (or a later schedule covered it): that result counts.
    if (await anySatisfied(deps, laterRunsCovering(manifests, manifest))) continue;
    const result = {
      queryExecutionId: manifest.queryExecutionId,
      startedAt: manifest.startedAt,
      dateRange: manifest.dateRange,
    };
    logger.error("Missing result: no report within the deadline", {
      ...result,
      deadlineHours: deps.settings.resultDeadlineHours,
    });
    missing.push(result);
  }
  // A deployment whose first query was written less than a day (plus the deadline) ago
  // may not have seen its first night yet.
  const nightCutoff = now.getTime() - 24 * HOUR_MS - deadlineMs;
  const nightMissing =
    firstWrittenAt !== undefined &&
    firstWrittenAt.getTime() <= nightCutoff &&
    !startedNightly(manifests, nightCutoff);
  if (nightMissing) {
    logger.error("Missing result: the schedule started no query within a day and the deadline", {
      deadlineHours: deps.settings.resultDeadlineHours,
    });
  }
  await deps.metrics.missingResults(missing.length + (nightMissing ? 1 : 0));
  logger.info("Freshness checked", { missing: missing.length, nightMissing, fanOutHealed });
  return { action: "freshness-checked", missing, nightMissing, fanOutHealed };
}

/**
 * Fanned-out requests wait on events: a day holds its slot until its query's state change
 * is handled. A lost event (or a crash between claiming and starting a day) would stall
 * the rest of the request, so the check asks Athena about every running day, handles
 * those that ended a while ago as their event would have, and starts what is due.
 * Best effort: a failure is logged and the check goes on to its metric.
 */
async function healFanOut(deps: FreshnessDeps, now: Date, logger: Logger): Promise<number> {
  const { start } = deps.retry;
  let healed = 0;
  let state: Awaited<ReturnType<typeof start.fanOut.read>>;
  try {
    state = await start.fanOut.read();
  } catch (error) {
    logger.error("Could not read the fan-out state", { error });
    return 0;
  }
  for (const plan of state.plans) {
    for (const day of plan.days) {
      if (day.status !== "running" || day.queryExecutionId === undefined) continue;
      const log = logger.child({ planId: plan.planId, date: day.date });
      // One day that cannot be handled must not keep the others (or the metric) waiting.
      try {
        if (await healDay(deps, day.queryExecutionId, now, log)) healed += 1;
      } catch (error) {
        log.error("Could not check a fanned-out day", {
          queryExecutionId: day.queryExecutionId,
          error,
        });
      }
    }
  }
  try {
    await start.fanOut.update((latest) => claimSlots(latest, start.settings.maxConcurrentQueries));
    await startClaimedDays(start, logger, now);
  } catch (error) {
    logger.error("Could not start the fanned-out days that are due", { error });
  }
  return healed;
}

/** Handles a running day's ended query as its state change would have; false if it still runs. */
async function healDay(
  deps: FreshnessDeps,
  queryExecutionId: string,
  now: Date,
  log: Logger,
): Promise<boolean> {
  const status = await deps.queries.status(queryExecutionId);
  if (!status.state || !ENDED_STATES.includes(status.state)) return false;
  if (status.completedAt && now.getTime() - status.completedAt.getTime() < EVENT_GRACE_MS) {
    return false;
  }
  log.warn("Fanned-out day's query ended but its state change was not handled; handling it now", {
    queryExecutionId,
    state: status.state,
  });
  await handleQueryStateChange(
    deps.retry,
    { queryExecutionId, currentState: status.state, workgroupName: deps.retry.workgroup },
    log,
  );
  return true;
}

const ENDED_STATES = ["SUCCEEDED", "FAILED", "CANCELLED"];

async function hasReport(deps: FreshnessDeps, manifest: RunManifest): Promise<boolean> {
  return (await deps.runs.readReport(athenaResultKey(manifest.queryExecutionId))) !== undefined;
}

/**
 * A report whose reconciliation is settled. One still `pending` past the deadline lost
 * its SUCCEEDED event (or Athena gave no count): reconcile it now, and count it missing
 * only if that cannot settle it either.
 */
async function hasSettledReport(
  deps: FreshnessDeps,
  manifest: RunManifest,
  logger: Logger,
): Promise<boolean> {
  const key = athenaResultKey(manifest.queryExecutionId);
  let found: Awaited<ReturnType<RunStore["readReport"]>>;
  try {
    found = await deps.runs.readReport(key);
  } catch (error) {
    // One unreadable report must not stop the whole check (and its metric): count it missing.
    if (!(error instanceof SyntaxError)) throw error;
    logger.warn("Report is not JSON", { queryExecutionId: manifest.queryExecutionId, error });
    return false;
  }
  if (!found) return false;
  if (found.report.reconciliation?.status !== "pending") return true;
  const log = logger.child({ queryExecutionId: manifest.queryExecutionId });
  log.warn("Reconciliation still pending past the deadline; reconciling now");
  await recordOutputRows(deps, manifest, log);
  return (await deps.runs.readReport(key))?.report.reconciliation?.status !== "pending";
}

async function anySatisfied(deps: FreshnessDeps, manifests: RunManifest[]): Promise<boolean> {
  for (const manifest of manifests) if (await hasReport(deps, manifest)) return true;
  return false;
}

/** Real runs started after `missed` whose range and publications include all of its. */
function laterRunsCovering(manifests: RunManifest[], missed: RunManifest): RunManifest[] {
  return manifests.filter(
    (other) =>
      other.queryExecutionId !== missed.queryExecutionId &&
      Date.parse(other.startedAt) > Date.parse(missed.startedAt) &&
      other.dryRun === missed.dryRun &&
      (other.publicationCode === undefined || other.publicationCode === missed.publicationCode) &&
      other.dateRange.start <= missed.dateRange.start &&
      other.dateRange.end >= missed.dateRange.end,
  );
}

/** Scheduled queries and restarts started before `cutoff`, unless a restart superseded them. */
function dueManifests(manifests: RunManifest[], cutoff: number): RunManifest[] {
  const restarted = new Set(manifests.map((manifest) => manifest.previousQueryExecutionId));
  return manifests.filter(
    (manifest) =>
      (manifest.trigger.kind === "schedule" || manifest.trigger.kind === "retry") &&
      Date.parse(manifest.startedAt) <= cutoff &&
      !restarted.has(manifest.queryExecutionId),
  );
}

function startedNightly(manifests: RunManifest[], since: number): boolean {
  return manifests.some(
    (manifest) => manifest.trigger.kind === "schedule" && Date.parse(manifest.startedAt) >= since,
  );
}
