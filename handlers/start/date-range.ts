import { addDays, daysBetween, isCalendarDate } from "../shared/dates";
import type { DateRange, SyncRequest } from "../shared/sync-request";

/**
 * The report dates a request covers, in UTC. One rule for every shape:
 * the range *ends* at `date` (default: yesterday) and spans `days` days (default 1).
 * So `{}` is yesterday, `{days: 7}` the 7 days ending yesterday (the spec's
 * "sync last 7 days"), `{date}` that one day, and `{date, days}` the `days` days
 * ending at `date` — the same reading as `{days}` alone, with `date` in place of
 * yesterday. The end is never after `date`, so a validated date keeps the whole
 * range out of the future.
 */
export function requestedDateRange(request: SyncRequest, today: string): DateRange {
  const end = request.date ?? addDays(today, -1);
  const days = request.days ?? 1;
  return { start: addDays(end, -(days - 1)), end };
}

export interface CatchUp {
  /** The range after catch-up (unchanged when nothing was missed). */
  range: DateRange;
  /** Days added in front of the requested range. */
  addedDays: number;
  /** True when the missed span was longer than the cap and was cut. */
  capped: boolean;
}

/**
 * Heals missed nights. `lastCompleteDate` is the ingest's watermark: every day up
 * to it is synced. When it is older than the day before the range's end, the
 * range starts the day after it instead, but never spans more than `maxDays`
 * (older gaps need a deliberate backfill). It only ever extends the range.
 */
export function applyCatchUp(range: DateRange, lastCompleteDate: string, maxDays: number): CatchUp {
  if (!isCalendarDate(lastCompleteDate)) return { range, addedDays: 0, capped: false };
  const firstMissing = addDays(lastCompleteDate, 1);
  const earliestAllowed = addDays(range.end, -(maxDays - 1));
  // ISO dates compare correctly as strings.
  const capped = firstMissing < earliestAllowed;
  const catchUpStart = capped ? earliestAllowed : firstMissing;
  if (catchUpStart >= range.start) return { range, addedDays: 0, capped: false };
  return {
    range: { start: catchUpStart, end: range.end },
    addedDays: daysBetween(catchUpStart, range.start),
    capped,
  };
}
