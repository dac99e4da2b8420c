import type { DateRange } from "../shared/sync-request";
import type { ObjectReport, SyncStats } from "./report";

export type ObjectOutcome =
  | { status: "ingested" | "rejected"; bucket: string; key: string; report: ObjectReport }
  | { status: "ignored" | "refused"; bucket: string; key: string; reason: string }
  | { status: "failed"; bucket: string; key: string; error: string };

/** The spec's SyncResponse (§5) summed over an event's objects, plus per-object detail. */
export interface IngestResponse {
  success: boolean;
  dateRange: DateRange;
  stats: SyncStats;
  duration: number;
  error?: string;
  objects: ObjectOutcome[];
}

export function summarize(outcomes: ObjectOutcome[], duration: number): IngestResponse {
  const stats: SyncStats = { rowsFromAthena: 0, synced: 0, skipped: 0, errors: 0 };
  let start = "";
  let end = "";
  const problems: string[] = [];
  for (const outcome of outcomes) {
    if (outcome.status === "failed") problems.push(`${outcome.key}: ${outcome.error}`);
    if (outcome.status === "refused") problems.push(`${outcome.key}: ${outcome.reason}`);
    if (outcome.status !== "ingested" && outcome.status !== "rejected") continue;
    const { report } = outcome;
    if (!report.success) problems.push(`${outcome.key}: ${report.error ?? "failed"}`);
    stats.rowsFromAthena += report.stats.rowsFromAthena;
    stats.synced += report.stats.synced;
    stats.skipped += report.stats.skipped;
    stats.errors += report.stats.errors;
    const range = report.dateRange;
    if (range.start && (start === "" || range.start < start)) start = range.start;
    if (range.end && (end === "" || range.end > end)) end = range.end;
  }
  return {
    success: problems.length === 0,
    dateRange: { start, end },
    stats,
    duration,
    ...(problems.length > 0 ? { error: problems.join("; ") } : {}),
    objects: outcomes,
  };
}
