import { spawn } from "node:child_process";
import { beforeAll, describe, expect, it } from "vitest";
import { addDays, daysBetween, toIsoDate } from "../../handlers/shared/dates";
import { type DemoResult, type DemoStep, type IngestOutcome, runDemo } from "../../local/demo";
import { createAsyncInvoker } from "../../local/lambda-runtime";
import {
  buildReprocessCsv,
  type DailyAggregateRow,
  generateSampleData,
  type IntendedOutcome,
  type InvalidField,
  isSelectedByQuery,
  type SampleData,
  upsertKeyOf,
} from "../../local/sample-data";

// The ingest's words for a row invalid in each column (handlers/ingest/validate-row.ts).
const ERROR_REASON: Record<InvalidField, string> = {
  report_date: "invalid-report-date",
  creative_id: "missing-creative-id",
  publication_code: "missing-publication-code",
  impressions: "invalid-impressions",
  clicks: "invalid-clicks",
  viewable_impressions: "invalid-viewable-impressions",
  unique_ips: "invalid-unique-ips",
};

interface DesignedRow {
  row: DailyAggregateRow;
  outcome: IntendedOutcome;
}

interface ExpectedEntry {
  orderId: string;
  itemPath: string;
  date: string;
  impressions: number;
  clicks: number;
  viewable: number;
  reach: number;
  creatives: number;
}

/** The entries the designed outcomes call for, each creative's numbers summed per upsert key. */
function expectedEntries(rows: DesignedRow[]): Map<string, ExpectedEntry> {
  const entries = new Map<string, ExpectedEntry>();
  for (const { row, outcome } of rows) {
    if (outcome.kind !== "synced") continue;
    const key = upsertKeyOf(outcome.orderId, outcome.itemPath, row.report_date);
    const entry = entries.get(key) ?? {
      orderId: outcome.orderId,
      itemPath: outcome.itemPath,
      date: row.report_date,
      impressions: 0,
      clicks: 0,
      viewable: 0,
      reach: 0,
      creatives: 0,
    };
    entry.impressions += row.impressions ?? 0;
    entry.clicks += row.clicks ?? 0;
    entry.viewable += row.viewable_impressions ?? 0;
    entry.reach += row.unique_ips ?? 0;
    entry.creatives += 1;
    entries.set(key, entry);
  }
  return entries;
}

/** Rows a run over `range` reads, with a reprocess file's corrections replacing their rows. */
function rowsAfter(
  sample: SampleData,
  range: { start: string; end: string },
  publicationCode: string | undefined,
  corrections: DesignedRow[] = [],
): DesignedRow[] {
  const identity = (row: DailyAggregateRow) =>
    JSON.stringify([
      row.report_date,
      row.creative_id,
      row.publication_code?.toLowerCase(),
      row.channel,
      row.ad_size,
    ]);
  const rows = new Map(
    sample.rows
      .filter((r) => isSelectedByQuery(r.row, range, publicationCode))
      .map((r) => [identity(r.row), r as DesignedRow]),
  );
  for (const correction of corrections) rows.set(identity(correction.row), correction);
  return [...rows.values()];
}

function countReasons(rows: DesignedRow[], kind: "skipped" | "error"): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const { outcome } of rows) {
    if (outcome.kind !== kind) continue;
    const reason = outcome.kind === "skipped" ? outcome.reason : ERROR_REASON[outcome.field];
    counts[reason] = (counts[reason] ?? 0) + 1;
  }
  return counts;
}

function expectEntriesToMatch(
  documents: Record<string, unknown>[],
  expected: Map<string, ExpectedEntry>,
): void {
  expect(documents).toHaveLength(expected.size);
  for (const entry of expected.values()) {
    const document = documents.find(
      (d) =>
        d.orderId === entry.orderId &&
        d.itemPath === entry.itemPath &&
        d.dateStart === `${entry.date}T00:00:00.000Z` &&
        d.source === "automated",
    );
    expect(document, `${entry.orderId} ${entry.itemPath} ${entry.date}`).toBeDefined();
    const metrics = document?.metrics as Record<string, number>;
    expect(metrics.impressions).toBe(entry.impressions);
    expect(metrics.clicks).toBe(entry.clicks);
    expect(metrics.reach).toBe(entry.reach);
    expect(metrics.ctr).toBeCloseTo((entry.clicks / entry.impressions) * 100, 9);
    expect(metrics.viewability).toBeCloseTo((entry.viewable / entry.impressions) * 100, 9);
    expect(document?.dateEnd).toBe(`${entry.date}T23:59:59.999Z`);
    expect(document?.enteredBy).toBe("lambda-tracking-sync");
  }
}

function step(result: DemoResult, name: DemoStep["name"]): DemoStep {
  const found = result.steps.find((s) => s.name === name);
  if (!found) throw new Error(`the demo has no ${name} step`);
  return found;
}

/**
 * Everything a demo run must show, checked against the sample data it was seeded
 * with, regenerated here from the range it reports.
 */
function ingestsOf(demoStep: DemoStep): IngestOutcome[] {
  return demoStep.days ?? (demoStep.ingest ? [demoStep.ingest] : []);
}

function planOf(demoStep: DemoStep): { planId: string } | undefined {
  return (demoStep.start as { plan?: { planId: string } } | undefined)?.plan;
}

function sumStats(ingests: IngestOutcome[]): Record<string, number> {
  const total: Record<string, number> = {};
  for (const ingest of ingests) {
    const stats = (ingest.report?.stats ?? {}) as Record<string, number>;
    for (const [name, value] of Object.entries(stats)) total[name] = (total[name] ?? 0) + value;
  }
  return total;
}

function sumReasons(ingests: IngestOutcome[], field: string): Record<string, number> {
  const total: Record<string, number> = {};
  for (const ingest of ingests) {
    const reasons = (ingest.report?.[field] ?? {}) as Record<string, number>;
    for (const [reason, count] of Object.entries(reasons)) {
      total[reason] = (total[reason] ?? 0) + count;
    }
  }
  return total;
}

function checkDemoResult(result: DemoResult, publicationCode?: string): void {
  const sample = generateSampleData({
    endDate: result.sample.end,
    days: daysBetween(result.sample.start, result.sample.end) + 1,
  });
  expect(sample.dateRange.start).toBe(result.sample.start);
  const first = result.steps[0] as DemoStep;
  const range = first.start?.dateRange as { start: string; end: string };
  const nightlyRows = rowsAfter(sample, range, publicationCode);

  // The first run: every expected entry with its creatives' combined numbers, every reason
  // counted (over each day's file when the range was fanned out into one query per day).
  const firstIngests = ingestsOf(first);
  const report = {
    stats: sumStats(firstIngests),
    skippedByReason: sumReasons(firstIngests, "skippedByReason"),
    errorsByReason: sumReasons(firstIngests, "errorsByReason"),
  };
  expect(report.stats).toEqual({
    rowsFromAthena: nightlyRows.length,
    synced: nightlyRows.filter((r) => r.outcome.kind === "synced").length,
    skipped: nightlyRows.filter((r) => r.outcome.kind === "skipped").length,
    errors: nightlyRows.filter((r) => r.outcome.kind === "error").length,
  });
  expect(report.skippedByReason).toEqual(countReasons(nightlyRows, "skipped"));
  expect(report.errorsByReason).toEqual(countReasons(nightlyRows, "error"));
  expectEntriesToMatch(first.entries, expectedEntries(nightlyRows));
  const synced = nightlyRows.filter((r) => r.outcome.kind === "synced").length;
  const rowsSynced = result.metrics
    .filter((metric) => metric.name === "RowsSynced")
    .slice(0, firstIngests.length)
    .reduce((sum, metric) => sum + (metric.value ?? 0), 0);
  expect(rowsSynced).toBe(synced);
  for (const ingest of firstIngests) {
    if (ingest.rejectsKey) expect(ingest.rejectsKey).toBe(`rejects/${ingest.key}`);
  }
  expect(firstIngests.some((ingest) => ingest.rejectsKey !== undefined)).toBe(true);

  // The same event again starts nothing new; a new event for the same night changes nothing.
  const redelivery = step(result, "redelivery");
  expect(redelivery.start?.queryExecutionId).toBe(first.start?.queryExecutionId);
  expect(planOf(redelivery)?.planId).toBe(planOf(first)?.planId);
  expect(ingestsOf(redelivery)).toEqual([]);
  const sameNight = step(result, "same-night");
  if (planOf(first)) expect(planOf(sameNight)?.planId).not.toBe(planOf(first)?.planId);
  else expect(sameNight.start?.queryExecutionId).not.toBe(first.start?.queryExecutionId);
  expect(sameNight.start?.dateRange).toEqual(range);
  expect(sumStats(ingestsOf(sameNight))).toEqual(report.stats);
  expect(sameNight.entries).toEqual(first.entries);

  // The backfill of every sample day: one query per day, each reconciled complete.
  const sampleDays = daysBetween(result.sample.start, result.sample.end) + 1;
  expect(result.backfill.days).toHaveLength(sampleDays);
  expect(new Set(result.backfill.days.map((day) => day.queryExecutionId)).size).toBe(sampleDays);
  for (const day of result.backfill.days) {
    expect(day).toMatchObject({ status: "succeeded", reconciliation: { status: "complete" } });
  }
  expect(result.backfill.maxQueriesInFlight).toBeLessThanOrEqual(5);
  expect(result.backfill.watermark).toBe(result.sample.end);

  // The dry-run drop writes nothing but says what the real drop then does.
  const corrections = buildReprocessCsv(sample, { date: range.end })
    .rows.filter((r) => r.row !== undefined && r.scenario === "late-correction")
    .map((r) => ({ row: r.row as DailyAggregateRow, outcome: r.outcome }));
  const touched = expectedEntries(corrections).size;
  const dryRun = step(result, "reprocess-dry-run");
  expect(dryRun.ingest?.report).toMatchObject({ dryRun: true, updated: touched, inserted: 0 });
  expect(dryRun.entries).toEqual(sameNight.entries);
  const reprocess = step(result, "reprocess");
  expect(reprocess.ingest?.report).toMatchObject({ dryRun: false, updated: touched, inserted: 0 });
  expect(reprocess.changes).toMatchObject({ updated: touched, inserted: 0, removed: 0 });
  expectEntriesToMatch(
    reprocess.entries,
    expectedEntries(rowsAfter(sample, range, publicationCode, corrections)),
  );

  expect(result.onFailure).toEqual([]);
  expect(result.checks.filter((check) => !check.ok)).toEqual([]);
  expect(result.success).toBe(true);
}

describe("runDemo (in process)", () => {
  let result: DemoResult;
  let finalEntries: Record<string, unknown>[] = [];

  beforeAll(async () => {
    result = await runDemo({
      inspect: async (pipeline) => {
        const documents = await pipeline.db.collection("performance_entries").find().toArray();
        finalEntries = JSON.parse(JSON.stringify(documents));
      },
    });
  }, 180_000);

  it("moves a re-mapped creative out of its old entry, keeps the day's total, and names where its numbers came from", () => {
    const remap = result.remap;
    expect(remap).toBeDefined();
    if (!remap) return;
    expect(remap.oldEntry.after).toBeLessThan(remap.oldEntry.before);
    expect(remap.oldEntry.after).toBeGreaterThan(0);
    expect(remap.dayTotal.after).toBe(remap.dayTotal.before);
    const step = result.steps.find((s) => s.name === "remap");
    expect(step?.ingest?.report).toMatchObject({ moved: 1, deleted: 0 });
    const own = remap.provenance.find((origin) => origin.creativeId === remap.creativeId);
    expect(own?.key).toBe(step?.ingest?.key);
    expect(own?.line).toBeGreaterThanOrEqual(2);
    // The moved creative is still held on its day (at the end of the demo, after the backfill).
    const holders = finalEntries.filter(
      (entry) =>
        String(entry.dateStart).startsWith(remap.date) &&
        (entry.contributions as { creativeId: string }[]).some(
          (c) => c.creativeId === remap.creativeId,
        ),
    );
    expect(holders.length).toBeGreaterThanOrEqual(1);
  });

  it("syncs yesterday from the schedule event and shows every other way in, as the sample data says", () => {
    expect(result.steps.map((s) => s.name)).toEqual([
      "nightly",
      "redelivery",
      "same-night",
      "reprocess-dry-run",
      "reprocess",
      "remap",
    ]);
    const yesterday = addDays(toIsoDate(new Date()), -1);
    expect([yesterday, addDays(yesterday, -1)]).toContain(result.steps[0]?.start?.dateRange?.end);
    checkDemoResult(result);
  });

  it("leaves in MongoDB what its last step reported", () => {
    const byKey = (entries: Record<string, unknown>[]) =>
      [...entries].sort((a, b) => String(a._id).localeCompare(String(b._id)));

    // The backfill of every sample day comes last; the reprocess drop is the last step before it.
    expect(byKey(finalEntries)).toEqual(byKey(result.backfill.entries));
  });
});

describe("npm run demo -- --json (spawned)", () => {
  it("prints one JSON document and nothing else on stdout, for a manual range", async () => {
    const date = addDays(toIsoDate(new Date()), -2);

    const { code, stdout } = await run("npm", [
      "run",
      "--silent",
      "demo",
      "--",
      "--json",
      "--date",
      date,
      "--days",
      "2",
    ]);

    expect(code).toBe(0);
    const result = JSON.parse(stdout) as DemoResult;
    expect(result.steps[0]?.name).toBe("manual");
    expect(result.steps[0]?.start?.dateRange).toEqual({ start: addDays(date, -1), end: date });
    checkDemoResult(result);
  }, 180_000);
});

describe("createAsyncInvoker", () => {
  it("retries a failing function twice with the same request id, then records an on-failure", async () => {
    const requestIds: string[] = [];
    const failures: unknown[] = [];
    const invoke = createAsyncInvoker<{ n: number }, string>({
      functionName: "f",
      retryDelaysMs: [0, 0],
      handler: async (_event, context) => {
        requestIds.push(context.awsRequestId);
        throw new Error("mongodb://user:secret@host/db is down");
      },
      onFailure: (record) => failures.push(record),
    });

    const invocation = invoke({ n: 1 });
    await invocation.done;

    expect(invocation.attempts).toHaveLength(3);
    expect(new Set(requestIds).size).toBe(1);
    expect(invocation.onFailure).toMatchObject({
      requestContext: { condition: "RetriesExhausted", approximateInvokeCount: 3 },
      requestPayload: { n: 1 },
      responsePayload: { errorType: "Error" },
    });
    expect(JSON.stringify(invocation.onFailure)).not.toContain("secret");
    expect(failures).toEqual([invocation.onFailure]);
  });

  it("stops retrying once an attempt succeeds", async () => {
    let calls = 0;
    const invoke = createAsyncInvoker<object, number>({
      functionName: "f",
      retryDelaysMs: [0, 0],
      handler: async () => {
        calls++;
        if (calls === 1) throw new Error("transient");
        return calls;
      },
    });

    const invocation = invoke({});
    await invocation.done;

    expect(invocation.result).toBe(2);
    expect(invocation.attempts.map((a) => a.error?.errorMessage)).toEqual(["transient", undefined]);
    expect(invocation.onFailure).toBeUndefined();
  });
});

function run(
  command: string,
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: process.cwd(), env: process.env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}
