import type { RunTrigger } from "./run-manifest";
import type { DateRange, SyncRequest } from "./sync-request";

/**
 * `state/fan-out.json`: the days of every multi-day request, each its own query, and
 * where each day stands. The start function plans the days, starts them as slots free
 * up and frees a slot when a day's query ends; whoever reconciles a day's result whole
 * marks it complete, so the watermark only passes days that are all complete. One object
 * for all requests, so `maxConcurrent` holds across them (Athena's quota is per account).
 */
export interface FanOutState {
  version: 1;
  plans: FanOutPlan[];
}

/** One multi-day request: its days in date order. */
export interface FanOutPlan {
  /** From the trigger alone, so a redelivered request finds its plan whatever the range. */
  planId: string;
  createdAt: string;
  trigger: RunTrigger;
  request: SyncRequest;
  dateRange: DateRange;
  publicationCode?: string;
  dryRun: boolean;
  days: PlanDay[];
}

/**
 * queued: waits for a slot. starting: holds a slot, its query is being started (a start
 * that crashed is finished by the next one: the token makes it the same query). running:
 * its query (or a restart of it) is active or waits for its restart. The rest have ended
 * and hold no slot: succeeded, failed (restarts exhausted), cancelled (by a person).
 */
export type DayStatus = "queued" | "starting" | "running" | "succeeded" | "failed" | "cancelled";
export type EndedStatus = "succeeded" | "failed" | "cancelled";

export interface PlanDay {
  date: string;
  status: DayStatus;
  /** The day's latest query (a restart replaces it). */
  queryExecutionId?: string;
  attempt?: number;
  /** A real run's result of this day was reconciled complete with Athena's row count. */
  complete?: true;
}

export interface DayRef {
  planId: string;
  date: string;
}

/** A day to start, with what its query is made of. */
export interface DayToStart extends DayRef {
  plan: FanOutPlan;
}

export const EMPTY_FAN_OUT: FanOutState = { version: 1, plans: [] };

/** Plans older than this are dropped once no day holds a slot, complete or not. */
export const PLAN_RETENTION_DAYS = 14;
/** A finished plan is kept this long, for people to look at. */
export const FINISHED_RETENTION_DAYS = 2;

export class InvalidFanOutStateError extends Error {}

export function parseFanOutState(value: unknown): FanOutState {
  if (value === undefined) return structuredClone(EMPTY_FAN_OUT);
  const state = value as Partial<FanOutState> | null;
  if (state?.version !== 1 || !Array.isArray(state.plans)) {
    throw new InvalidFanOutStateError("state/fan-out.json is not a version 1 fan-out state");
  }
  return state as FanOutState;
}

const HOLDS_SLOT: readonly DayStatus[] = ["starting", "running"];
const ENDED: readonly DayStatus[] = ["succeeded", "failed", "cancelled"];

export function findDay(state: FanOutState, ref: DayRef): PlanDay | undefined {
  return state.plans
    .find((plan) => plan.planId === ref.planId)
    ?.days.find((day) => day.date === ref.date);
}

/** Adds the plan unless a plan of that id exists (a redelivery): false then. */
export function addPlan(state: FanOutState, plan: FanOutPlan): boolean {
  if (state.plans.some((existing) => existing.planId === plan.planId)) return false;
  state.plans.push(plan);
  return true;
}

export function inFlight(state: FanOutState): number {
  return state.plans.reduce(
    (count, plan) => count + plan.days.filter((day) => HOLDS_SLOT.includes(day.status)).length,
    0,
  );
}

/** Gives free slots to queued days, oldest plan first, earliest day first. */
export function claimSlots(state: FanOutState, maxConcurrent: number): number {
  let free = maxConcurrent - inFlight(state);
  let claimed = 0;
  for (const plan of state.plans) {
    for (const day of plan.days) {
      if (free <= 0) return claimed;
      if (day.status !== "queued") continue;
      day.status = "starting";
      free -= 1;
      claimed += 1;
    }
  }
  return claimed;
}

/** Every day that holds a slot but has no query yet. */
export function daysToStart(state: FanOutState): DayToStart[] {
  return state.plans.flatMap((plan) =>
    plan.days
      .filter((day) => day.status === "starting")
      .map((day) => ({ planId: plan.planId, date: day.date, plan })),
  );
}

/** The day's query started (or restarted). An ended day keeps its status. */
export function markStarted(
  state: FanOutState,
  ref: DayRef,
  queryExecutionId: string,
  attempt: number,
): void {
  const day = findDay(state, ref);
  if (!day) return;
  if ((day.attempt ?? 0) > attempt) return; // A late write of an earlier attempt.
  day.queryExecutionId = queryExecutionId;
  day.attempt = attempt;
  if (!ENDED.includes(day.status)) day.status = "running";
}

/** The day's query ended for good: its slot is free. Ending twice changes nothing. */
export function markEnded(state: FanOutState, ref: DayRef, status: EndedStatus): boolean {
  const day = findDay(state, ref);
  if (!day || ENDED.includes(day.status)) return false;
  day.status = status;
  return true;
}

export function markComplete(state: FanOutState, ref: DayRef): void {
  const day = findDay(state, ref);
  if (day) day.complete = true;
}

/** The last day D of the plan such that every day of the plan up to D is complete. */
export function completeThrough(plan: FanOutPlan): string | undefined {
  let through: string | undefined;
  for (const day of plan.days) {
    if (!day.complete) break;
    through = day.date;
  }
  return through;
}

/** 1-based places in the queue, across plans, in the order slots are given. */
export function queuePositions(state: FanOutState): Map<string, number> {
  const positions = new Map<string, number>();
  for (const plan of state.plans) {
    for (const day of plan.days) {
      if (day.status === "queued") positions.set(dayKey(plan.planId, day.date), positions.size + 1);
    }
  }
  return positions;
}

export function dayKey(planId: string, date: string): string {
  return `${planId}/${date}`;
}

/**
 * Drops plans nothing waits for any more: every day ended and, for a real run of every
 * publication (whose days move the watermark), every succeeded day complete. A finished
 * plan stays FINISHED_RETENTION_DAYS for people to look at; one still waiting for a day
 * that never completes goes after PLAN_RETENTION_DAYS.
 */
export function prunePlans(state: FanOutState, now: Date): void {
  const ageDays = (plan: FanOutPlan) => (now.getTime() - Date.parse(plan.createdAt)) / 86_400_000;
  state.plans = state.plans.filter((plan) => {
    if (!plan.days.every((day) => ENDED.includes(day.status))) return true;
    if (ageDays(plan) > PLAN_RETENTION_DAYS) return false;
    const movesWatermark = !plan.dryRun && plan.publicationCode === undefined;
    const waiting =
      movesWatermark && plan.days.some((day) => day.status === "succeeded" && !day.complete);
    return waiting || ageDays(plan) <= FINISHED_RETENTION_DAYS;
  });
}
