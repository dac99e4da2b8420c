import { createHash } from "node:crypto";
import { addDays } from "../shared/dates";
import {
  addPlan,
  claimSlots,
  type DayRef,
  type DayStatus,
  type DayToStart,
  dayKey,
  daysToStart,
  type EndedStatus,
  type FanOutPlan,
  type FanOutState,
  markEnded,
  markStarted,
  queuePositions,
} from "../shared/fan-out";
import type { Logger } from "../shared/logger";
import type { RunManifest, RunTrigger } from "../shared/run-manifest";
import type { DateRange, SyncRequest } from "../shared/sync-request";
import { startRun } from "./start-run";
import type { StartDeps } from "./start-sync";

/** One day of a fanned-out request in the start function's response. */
export interface PlannedDay {
  date: string;
  status: DayStatus;
  /** Started days: the day's query (its latest attempt). */
  queryExecutionId?: string;
  /** Queued days: 1 starts next, across all requests. */
  queuePosition?: number;
}

/** The plan a multi-day request was fanned out into. */
export interface FanOutSummary {
  planId: string;
  maxConcurrentQueries: number;
  days: PlannedDay[];
}

export interface FanOutRequest {
  trigger: RunTrigger;
  request: SyncRequest;
  dateRange: DateRange;
  publicationCode?: string | undefined;
  dryRun: boolean;
}

/**
 * A request for several days becomes one query per day (each its own token, manifest,
 * file and ingest), at most `maxConcurrentQueries` active at once across all requests;
 * the rest wait in `state/fan-out.json` and start as earlier days' queries end
 * (`dayEnded`). A redelivered request finds its plan (the id comes from the trigger)
 * and starts nothing new.
 */
export async function fanOutRequest(
  deps: StartDeps,
  input: FanOutRequest,
  logger: Logger,
  now: Date,
): Promise<FanOutSummary> {
  const plan: FanOutPlan = {
    planId: planIdFor(input.trigger),
    createdAt: now.toISOString(),
    trigger: input.trigger,
    request: input.request,
    dateRange: input.dateRange,
    ...(input.publicationCode !== undefined ? { publicationCode: input.publicationCode } : {}),
    dryRun: input.dryRun,
    days: eachDay(input.dateRange).map((date) => ({ date, status: "queued" })),
  };
  const log = logger.child({ planId: plan.planId });
  const added = await deps.fanOut.update((state) => {
    const isNew = addPlan(state, plan);
    claimSlots(state, deps.settings.maxConcurrentQueries);
    return isNew;
  });
  if (added) {
    log.info("Request fanned out: one query per day", {
      dateRange: plan.dateRange,
      days: plan.days.length,
      maxConcurrentQueries: deps.settings.maxConcurrentQueries,
    });
  } else {
    log.info("Request already fanned out by an earlier delivery of this trigger", {
      trigger: plan.trigger,
    });
  }
  const state = await startClaimedDays(deps, log, now);
  return summarize(state, plan.planId, deps.settings.maxConcurrentQueries);
}

/**
 * A fanned-out day's query ended for good (SUCCEEDED, restarts exhausted, or cancelled):
 * its slot goes to the next queued day. Redelivered events change nothing.
 */
export async function dayEnded(
  deps: StartDeps,
  manifest: RunManifest,
  status: EndedStatus,
  logger: Logger,
  now: Date,
): Promise<void> {
  const ref = dayOf(manifest);
  if (!ref) return;
  const ended = await deps.fanOut.update((state) => {
    // Also records the query, in case the invocation that started it failed before it could.
    markStarted(state, ref, manifest.queryExecutionId, manifest.attempt);
    const changed = markEnded(state, ref, status);
    claimSlots(state, deps.settings.maxConcurrentQueries);
    return changed;
  });
  if (ended) logger.info("Fanned-out day ended; its slot is free", { ...ref, status });
  await startClaimedDays(deps, logger, now);
}

/** A restart of a fanned-out day's failed query: the day now waits for that one. */
export async function dayRestarted(
  deps: StartDeps,
  manifest: Pick<RunManifest, "planId" | "dateRange">,
  queryExecutionId: string,
  attempt: number,
): Promise<void> {
  const ref = dayOf(manifest);
  if (!ref) return;
  await deps.fanOut.update((state) => markStarted(state, ref, queryExecutionId, attempt));
}

/**
 * Starts every day that holds a slot but has no query yet: those just given a slot,
 * and any whose start an earlier invocation did not finish (the day's token makes it
 * the same query, so nothing starts twice). Records each query id, also when another
 * day's start failed; that failure is thrown, for Lambda's retries.
 */
export async function startClaimedDays(
  deps: StartDeps,
  logger: Logger,
  now: Date,
): Promise<FanOutState> {
  const current = await deps.fanOut.read();
  const due = daysToStart(current);
  if (due.length === 0) return current;
  const results = await Promise.allSettled(
    due.map(async (day) => {
      const started = await startRun(deps, dayRun(day), logger.child({ date: day.date }), now);
      return { ref: { planId: day.planId, date: day.date }, ...started };
    }),
  );
  const started = results.flatMap((result) =>
    result.status === "fulfilled" ? [result.value] : [],
  );
  const state = await deps.fanOut.update((latest) => {
    for (const day of started) markStarted(latest, day.ref, day.queryExecutionId, 1);
    return latest;
  });
  const failure = results.find((result) => result.status === "rejected");
  if (failure) throw failure.reason;
  return state;
}

/** The plan's id: from the trigger alone (event id, invoke request id), never from the range. */
export function planIdFor(trigger: RunTrigger): string {
  return createHash("sha256")
    .update(JSON.stringify(["tracking-sync/plan/v1", trigger.kind, trigger.id]))
    .digest("hex")
    .slice(0, 32);
}

export function eachDay(range: DateRange): string[] {
  const days: string[] = [];
  for (let day = range.start; day <= range.end; day = addDays(day, 1)) days.push(day);
  return days;
}

function dayRun(day: DayToStart) {
  const { plan } = day;
  return {
    trigger: plan.trigger,
    request: plan.request,
    dateRange: { start: day.date, end: day.date },
    publicationCode: plan.publicationCode,
    dryRun: plan.dryRun,
    attempt: 1,
    planId: plan.planId,
  };
}

function dayOf(manifest: Pick<RunManifest, "planId" | "dateRange">): DayRef | undefined {
  return manifest.planId === undefined
    ? undefined
    : { planId: manifest.planId, date: manifest.dateRange.start };
}

function summarize(
  state: FanOutState,
  planId: string,
  maxConcurrentQueries: number,
): FanOutSummary {
  const plan = state.plans.find((candidate) => candidate.planId === planId);
  const positions = queuePositions(state);
  return {
    planId,
    maxConcurrentQueries,
    days: (plan?.days ?? []).map((day) => ({
      date: day.date,
      status: day.status,
      ...(day.queryExecutionId !== undefined ? { queryExecutionId: day.queryExecutionId } : {}),
      ...(day.status === "queued"
        ? { queuePosition: positions.get(dayKey(planId, day.date)) ?? 0 }
        : {}),
    })),
  };
}
