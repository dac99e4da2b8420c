import { CloudWatchClient, PutMetricDataCommand } from "@aws-sdk/client-cloudwatch";
import { InvokeCommand, LambdaClient } from "@aws-sdk/client-lambda";
import { ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import type { Context, S3Event } from "aws-lambda";
import { mockClient } from "aws-sdk-client-mock";
import type { Document } from "mongodb";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import {
  type ContinuationEvent,
  DEFAULT_CONTINUATION_MARGIN_MS,
} from "../../handlers/ingest/continuation";
import type { IngestResponse } from "../../handlers/ingest/response";
import { DURATION_ALARM_THRESHOLD_MS, INGEST_TIMEOUT_MS } from "../../infra/ingest-budget";
import { buildCsv, type CsvOptions, type CsvRowValues, csvRow } from "../helpers/ingest-csv";
import { order, seedLookups, trackingScript } from "../helpers/ingest-fixtures";
import {
  BUCKET,
  clearEntriesAndLedger,
  comparableFacts,
  type IngestHarness,
  lambdaContext,
  comparableEntries as sharedComparableEntries,
  startIngestHarness,
} from "../helpers/ingest-harness";

const cloudwatch = mockClient(CloudWatchClient);
const lambda = mockClient(LambdaClient);
const FUNCTION_NAME = "tracking-sync-ingest";
const BATCH_SIZE = 5;
/** The handler runs with the default margin, the one the stack derives with the alarm. */
const MARGIN_MS = DEFAULT_CONTINUATION_MARGIN_MS;

type Handler = (event: S3Event | ContinuationEvent, context: Context) => Promise<IngestResponse>;
let harness: IngestHarness;
let handler: Handler;

beforeAll(async () => {
  harness = await startIngestHarness();
  handler = (await harness.loadHandler({
    AWS_LAMBDA_FUNCTION_NAME: FUNCTION_NAME,
    BATCH_SIZE: String(BATCH_SIZE),
    CONTINUATION_MARGIN_MS: undefined,
  })) as Handler;
});
afterAll(async () => {
  await harness?.stop();
});
beforeEach(async () => {
  cloudwatch.reset();
  cloudwatch.on(PutMetricDataCommand).resolves({});
  lambda.reset();
  lambda.on(InvokeCommand).resolves({ StatusCode: 202 });
  harness.logs.length = 0;
  await harness.clearDb();
  await seedLookups(harness.db, {
    orders: [order()],
    trackingScripts: [
      trackingScript(),
      trackingScript({ creativeId: "cr_spring-sale_728x90", creative: { name: "728x90" } }),
    ],
  });
});

/**
 * A Lambda context whose remaining time drops below the margin once `batches` full
 * batches were submitted (the ingest asks once per full batch): a short deadline.
 */
function shortDeadline(batches: number): Context {
  let asked = 0;
  return {
    ...lambdaContext,
    getRemainingTimeInMillis: () => (++asked >= batches ? MARGIN_MS - 1 : 300_000),
  } as Context;
}

/**
 * A Lambda context with a real deadline on a fake clock (Date only, see `useFakeDate`):
 * `timeoutMs` from now, and each full batch takes `batchMs` (the ingest asks the time left
 * once per full batch, so the clock moves there).
 */
function timedDeadline(batchMs: number, timeoutMs = INGEST_TIMEOUT_MS): Context {
  const deadline = Date.now() + timeoutMs;
  return {
    ...lambdaContext,
    getRemainingTimeInMillis: () => {
      vi.setSystemTime(Date.now() + batchMs);
      return deadline - Date.now();
    },
  } as Context;
}

/** Freezes the wall clock (Date only; timers stay real) so durations are exact. */
function useFakeDate() {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(new Date("2025-12-11T06:00:00.000Z"));
  });
  afterEach(() => {
    vi.useRealTimers();
  });
}

/** 42 data rows (or `count`): synced ones over many days, and skips, errors and a multi-line field among them. */
function mixedRows(count = 42): CsvRowValues[] {
  const rows: CsvRowValues[] = [];
  for (let i = 0; i < count; i++) {
    const day = `2025-11-${String((i % 28) + 1).padStart(2, "0")}`;
    if (i % 7 === 3) rows.push(csvRow({ report_date: day, publication_code: "nowhere" }));
    else if (i % 9 === 4) rows.push(csvRow({ report_date: day, impressions: "-5" }));
    else if (i === 17) rows.push(csvRow({ creative_id: "cr_multi\nline_1", clicks: "x" }));
    else if (i === 30) rows.push(csvRow({ report_date: day, creative_id: "cr_nobody_1" }));
    else if (i % 2 === 0) rows.push(csvRow({ report_date: day, impressions: 1000 + i }));
    else {
      rows.push(
        csvRow({ report_date: day, creative_id: "cr_spring-sale_728x90", ad_size: "728x90" }),
      );
    }
  }
  return rows;
}

const comparableEntries = () => sharedComparableEntries(harness.db);

type Report = Record<string, unknown> & { stats: Record<string, number> };
const reportOf = (key: string) => harness.readJson<Report>(`reports/${key}.json`);

/** The row counts of a report: they must not depend on how many invocations the file took. */
function rowCountsOf(report: Report | undefined) {
  const { stats, lines, dateRange, warnings, skippedByReason, errorsByReason, success, outcome } =
    report ?? ({} as Report);
  const rejectedRows = (report?.rejects as { rows?: number } | undefined)?.rows;
  return {
    stats,
    lines,
    dateRange,
    warnings,
    skippedByReason,
    errorsByReason,
    success,
    outcome,
    rejectedRows,
  };
}

/**
 * Entry updates as counted: equal to a single run's on a first ingest; after a re-delivered
 * invocation some inserts are seen again as unchanged, but their sum stays the same.
 */
function entryCountsOf(report: Report | undefined) {
  const { inserted, updated, unchanged } = (report ?? {}) as Record<string, number>;
  return { inserted, updated, unchanged };
}
const entryUpdates = (report: Report | undefined) =>
  Object.values(entryCountsOf(report)).reduce((sum: number, count) => sum + (count ?? 0), 0);

/** What a run did or would do to the entries, warnings and rows: a dry run's must equal the real run's. */
function entryOutcomeOf(report: Report | undefined) {
  const { inserted, updated, unchanged, moved, deleted, warnings, stats } = (report ??
    {}) as Record<string, unknown>;
  return { inserted, updated, unchanged, moved, deleted, warnings, stats };
}

function payloadOf(index: number): ContinuationEvent {
  const call = lambda.commandCalls(InvokeCommand)[index];
  if (!call) throw new Error(`no InvokeCommand #${index}`);
  return JSON.parse(Buffer.from(call.args[0].input.Payload as Uint8Array).toString("utf-8"));
}

/**
 * Runs the event, then feeds each captured self-invocation back into the handler as
 * Lambda would, until an invocation finishes without handing over. Before each
 * continuation, checks that no report exists yet. Each invocation gets
 * `shortDeadline(deadline)`, or the context `deadline()` makes; `queuedMs` is the time a
 * continuation waits in Lambda's queue (on the fake clock).
 */
async function runToTheEnd(
  event: S3Event,
  deadline: number | (() => Context),
  { queuedMs = 0 }: { queuedMs?: number } = {},
) {
  const contextOf = typeof deadline === "number" ? () => shortDeadline(deadline) : deadline;
  const key = decodeURIComponent(event.Records[0]?.s3.object.key.replace(/\+/g, " ") ?? "");
  const payloads: ContinuationEvent[] = [];
  let response = await handler(event, contextOf());
  while (lambda.commandCalls(InvokeCommand).length > payloads.length) {
    expect(await reportOf(key)).toBeUndefined();
    const payload = payloadOf(payloads.length);
    payloads.push(payload);
    if (queuedMs > 0) vi.setSystemTime(Date.now() + queuedMs);
    response = await handler(payload, contextOf());
  }
  return { response, payloads, invocations: payloads.length + 1 };
}

/** What each PutMetricData carried, in call order: metric name → value. */
function publishedMetrics(): Record<string, number | undefined>[] {
  return cloudwatch
    .commandCalls(PutMetricDataCommand)
    .map((call) =>
      Object.fromEntries(
        (call.args[0].input.MetricData ?? []).map((datum) => [datum.MetricName, datum.Value]),
      ),
    );
}

async function listKeys(prefix: string): Promise<string[]> {
  const listed = await harness.s3.client.send(
    new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }),
  );
  return (listed.Contents ?? []).map((object) => object.Key ?? "");
}

/** The single-invocation run of the same bytes: entries, report and rejects to compare with. */
async function singleRun(key: string, body: string) {
  await handler(await harness.putObject(key, body), lambdaContext);
  const single = {
    entries: await comparableEntries(),
    facts: await comparableFacts(harness.db),
    report: await reportOf(key),
    rejects: await harness.readText(`rejects/${key}`),
  };
  await clearEntriesAndLedger(harness.db);
  cloudwatch.resetHistory();
  return single;
}

describe("ingestResults: files beyond one invocation", () => {
  const dialects: [string, CsvOptions][] = [
    ["Athena's dialect", {}],
    [
      "a hand-made file with BOM, CRLF and unquoted fields",
      { bom: true, lineEnding: "\r\n", quoteAll: false },
    ],
  ];

  it.each(dialects)(
    "continues %s across invocations and ends exactly as one invocation would",
    async (_, dialect) => {
      const body = buildCsv(mixedRows(), dialect);
      const tag = dialect.bom ? "hand" : "athena";
      const key = `reprocess/continued-${tag}.csv`;
      const single = await singleRun(`reprocess/whole-${tag}.csv`, body);

      const { response, payloads, invocations } = await runToTheEnd(
        await harness.putObject(key, body),
        2,
      );

      // 42 rows in batches of 5, two batches per invocation: 10 + 10 + 10 + 10 + 2.
      expect(invocations).toBe(5);
      expect(payloads.map((p) => p.trackingSyncContinuation.checkpoint.rows)).toEqual([
        10, 20, 30, 40,
      ]);
      expect(response).toMatchObject({ success: true, stats: { rowsFromAthena: 42 } });
      expect(await comparableEntries()).toEqual(single.entries);
      expect(await comparableFacts(harness.db)).toEqual(single.facts);
      const report = await reportOf(key);
      expect(rowCountsOf(report)).toEqual(rowCountsOf(single.report));
      expect(entryCountsOf(report)).toEqual(entryCountsOf(single.report));
      expect(report).toMatchObject({
        invocations: 5,
        outcome: "synced",
        progress: { rows: 42, byteOffset: Buffer.byteLength(body) },
      });
      const stats = report?.stats ?? {};
      expect((stats.synced ?? 0) + (stats.skipped ?? 0) + (stats.errors ?? 0)).toBe(42);
      // Every line of the file once, across the five invocations.
      const lineCount = body.split("\n").length - 1;
      expect(report?.lines).toMatchObject({ read: lineCount, header: 1, accounted: lineCount });
      expect(single.rejects).toContain("reject_reason");
      expect(await harness.readText(`rejects/${key}`)).toBe(single.rejects);
      expect(await listKeys(`rejects/${key}.`)).toEqual([]);
      // Only the rejects parts stay under state/checkpoints/, until they expire.
      const left = await listKeys(`state/checkpoints/${key}.`);
      expect(left.length).toBeGreaterThan(0);
      expect(
        left.filter((leftover) => !leftover.startsWith(`state/checkpoints/${key}.rejects-`)),
      ).toEqual([]);
      // Every invocation publishes its own Duration; the file's counts come once, from the last.
      const published = publishedMetrics();
      expect(published.map((metrics) => Object.keys(metrics).sort())).toEqual([
        ["Duration"],
        ["Duration"],
        ["Duration"],
        ["Duration"],
        [
          "Duration",
          "Errors",
          "FileDuration",
          "FileInvocations",
          "RowsInserted",
          "RowsSkipped",
          "RowsSynced",
          "RowsUnchanged",
          "RowsUpdated",
        ],
      ]);
      expect(published[4]).toMatchObject({
        RowsSynced: stats.synced,
        RowsSkipped: stats.skipped,
        Errors: stats.errors,
        RowsInserted: report?.inserted,
        RowsUpdated: report?.updated,
        RowsUnchanged: report?.unchanged,
        FileInvocations: 5,
        FileDuration: report?.duration,
      });
    },
  );

  it("counts a dry run continued across invocations exactly as the real run then does, and leaves no memory behind", async () => {
    // Entries met again in later invocations (days repeat every 28 rows), rows repeated
    // across invocations (a later value wins), some entries stored already.
    const rows = mixedRows();
    const repeated = [rows[0], rows[2], rows[5]].map((row) => ({ ...row, impressions: 777 }));
    const body = buildCsv([...rows, ...(repeated as CsvRowValues[])]);
    const prior = buildCsv(
      mixedRows(20).map((row, i) => (i % 4 === 0 ? row : { ...row, clicks: 3 })),
    );
    await handler(await harness.putObject("reprocess/prior.csv", prior), lambdaContext);
    const stored = { entries: await comparableEntries(), facts: await comparableFacts(harness.db) };

    const dryKey = "reprocess/dry-continued-exact.csv";
    const { invocations, payloads } = await runToTheEnd(
      await harness.putObject(dryKey, body, { tagging: "dryRun=true" }),
      2,
    );
    const dry = await reportOf(dryKey);
    expect(invocations).toBe(5);
    // Each hand-over names its own memory and the line of earlier ones.
    const memories = payloads.map((p) => p.trackingSyncContinuation.dryRunMemory);
    expect(memories.map((memory) => memory?.name.split("-").at(-2))).toEqual(["1", "2", "3", "4"]);
    expect(memories.map((memory) => memory?.earlier)).toEqual([
      [],
      [memories[0]?.name],
      [memories[0]?.name, memories[1]?.name],
      [memories[0]?.name, memories[1]?.name, memories[2]?.name],
    ]);
    // Nothing written to MongoDB, and the handed-over memories are gone once the file is done.
    expect(await comparableEntries()).toEqual(stored.entries);
    expect(await comparableFacts(harness.db)).toEqual(stored.facts);
    expect(
      (await listKeys("state/checkpoints/")).filter((leftover) => !leftover.includes(".rejects-")),
    ).toEqual([]);

    await handler(await harness.putObject("reprocess/real-exact.csv", body), lambdaContext);
    const real = await reportOf("reprocess/real-exact.csv");
    const outcome = entryOutcomeOf;
    expect(dry).toMatchObject({ dryRun: true, invocations: 5 });
    expect(outcome(real).inserted).toBeGreaterThan(0);
    expect(outcome(real).updated).toBeGreaterThan(0);
    // mixedRows repeats its 728x90 rows on one day (8), and the three repeated at the end.
    expect(outcome(real).warnings).toMatchObject({ "duplicate-row-superseded": 11 });
    expect(outcome(dry)).toEqual(outcome(real));
  });

  it("accounts for every line across invocations: a swallowed line, blank lines, and trailing blank lines read alone", async () => {
    const [header, ...rows] = buildCsv(
      Array.from({ length: 11 }, (_, i) =>
        csvRow({ report_date: `2025-11-${String(i + 1).padStart(2, "0")}` }),
      ),
    )
      .trimEnd()
      .split("\n");
    // Row 3 lost its closing quote and swallows row 4: 10 records on 11 lines, two full
    // batches. The invocation that reads them stops at their end, so the next one reads
    // only the two trailing blank lines.
    rows[2] = rows[2]?.slice(0, -1) ?? "";
    const body = [header, ...rows.slice(0, 6), "", ...rows.slice(6), "", "", ""].join("\n");
    const key = "reprocess/continued-lines.csv";
    const single = await singleRun("reprocess/whole-lines.csv", body);

    const { invocations } = await runToTheEnd(await harness.putObject(key, body), 2);

    expect(invocations).toBe(2);
    const report = await reportOf(key);
    expect(report).toMatchObject({
      stats: { rowsFromAthena: 10, synced: 9, errors: 1 },
      lines: { read: 15, header: 1, synced: 9, skipped: 0, errors: 2, blank: 3, accounted: 15 },
    });
    expect(rowCountsOf(report)).toEqual(rowCountsOf(single.report));
    expect(await harness.readText(`rejects/${key}`)).toBe(single.rejects);
    expect(single.rejects).toContain(`,4,5,"wrong-field-count",`);
  });

  it("invokes itself asynchronously by name with a small payload, and logs each hand-over", async () => {
    const body = buildCsv(mixedRows());

    const { payloads } = await runToTheEnd(await harness.putObject("reprocess/calls.csv", body), 3);

    expect(lambda).toHaveReceivedCommandWith(InvokeCommand, {
      FunctionName: FUNCTION_NAME,
      InvocationType: "Event",
    });
    for (const call of lambda.commandCalls(InvokeCommand)) {
      expect((call.args[0].input.Payload as Uint8Array).byteLength).toBeLessThan(8_000);
    }
    const first = payloads[0]?.trackingSyncContinuation;
    expect(first).toMatchObject({
      version: 1,
      object: { bucket: BUCKET, key: "reprocess/calls.csv" },
      source: { size: Buffer.byteLength(body) },
      continuation: 1,
      checkpoint: { rows: 15 },
      run: { dryRun: false },
      header: expect.arrayContaining(["report_date", "unique_ips"]),
    });
    const handOvers = harness.logs
      .map((line) => JSON.parse(line))
      .filter((line) => line.message === "Continuing in a fresh invocation");
    expect(handOvers.map((line) => line.checkpoint.rows)).toEqual([15, 30]);
  });

  it("ends in the same state when a continuation whose self-invoke failed is retried by Lambda", async () => {
    const body = buildCsv(mixedRows());
    const single = await singleRun("reprocess/retry-whole.csv", body);
    const event = await harness.putObject("reprocess/retried.csv", body);
    await handler(event, shortDeadline(2));
    const second = payloadOf(0);
    lambda.reset();
    lambda.on(InvokeCommand).rejectsOnce(new Error("Rate exceeded")).resolves({ StatusCode: 202 });

    await expect(handler(second, shortDeadline(2))).rejects.toThrow(/fresh invocation/);
    // Lambda retries the same payload; from then on the chain runs to the end.
    let response = await handler(second, shortDeadline(2));
    for (let next = 1; lambda.commandCalls(InvokeCommand).length > next; next++) {
      response = await handler(payloadOf(next), shortDeadline(2));
    }

    expect(response).toMatchObject({ success: true });
    // The failed invocation published its Duration only: the counts still come once.
    const published = publishedMetrics();
    expect(published).toHaveLength(lambda.commandCalls(InvokeCommand).length + 2);
    expect(published[1]).toEqual({ Duration: expect.any(Number) });
    expect(published.filter((metrics) => "RowsSynced" in metrics)).toHaveLength(1);
    expect(await comparableEntries()).toEqual(single.entries);
    expect(await comparableFacts(harness.db)).toEqual(single.facts);
    const report = await reportOf("reprocess/retried.csv");
    expect(rowCountsOf(report)).toEqual(rowCountsOf(single.report));
    expect(entryUpdates(report)).toBe(entryUpdates(single.report));
    expect(await harness.readText("rejects/reprocess/retried.csv")).toBe(single.rejects);
    expect(await listKeys("rejects/reprocess/retried.csv.")).toEqual([]);
  });

  it("ends in the same state when the same continuation is delivered twice in a row", async () => {
    const body = buildCsv(mixedRows());
    const single = await singleRun("reprocess/twice-whole.csv", body);
    await handler(await harness.putObject("reprocess/twice.csv", body), shortDeadline(2));
    const second = payloadOf(0);

    await handler(second, shortDeadline(2));
    // The first delivery's hand-over is dropped; the second delivery's chain goes on.
    await handler(second, shortDeadline(2));
    let next = 2;
    while (lambda.commandCalls(InvokeCommand).length > next) {
      await handler(payloadOf(next), shortDeadline(2));
      next++;
    }

    expect(await comparableEntries()).toEqual(single.entries);
    expect(await comparableFacts(harness.db)).toEqual(single.facts);
    const report = await reportOf("reprocess/twice.csv");
    expect(rowCountsOf(report)).toEqual(rowCountsOf(single.report));
    expect(entryUpdates(report)).toBe(entryUpdates(single.report));
    expect(await harness.readText("rejects/reprocess/twice.csv")).toBe(single.rejects);
  });

  it("counts a dry run exactly when two copies of one continuation stop at different rows", async () => {
    // Valid rows only (no rejects parts to share), entries met again every 14 rows.
    const rows = Array.from({ length: 42 }, (_, i) =>
      csvRow({
        report_date: `2025-11-${String((i % 14) + 1).padStart(2, "0")}`,
        ...(i % 2 === 0
          ? { impressions: 1000 + i }
          : { creative_id: "cr_spring-sale_728x90", ad_size: "728x90", impressions: 2000 + i }),
      }),
    );
    const body = buildCsv(rows);
    const key = "reprocess/dry-twice.csv";
    await handler(await harness.putObject(key, body, { tagging: "dryRun=true" }), shortDeadline(2));
    const delivered = payloadOf(0);
    // Two copies of one continuation (Lambda delivers an async event at least once): the
    // first stops after two batches, the second after three, and hands over last.
    await handler(delivered, shortDeadline(2));
    await handler(delivered, shortDeadline(3));
    const [first, second] = [payloadOf(1), payloadOf(2)];
    expect(first.trackingSyncContinuation.checkpoint.rows).toBe(20);
    expect(second.trackingSyncContinuation.checkpoint.rows).toBe(25);
    expect(first.trackingSyncContinuation.dryRunMemory?.name).not.toBe(
      second.trackingSyncContinuation.dryRunMemory?.name,
    );

    // The first copy's line goes on (the second's is dropped): it reads its own memory,
    // not the one the second copy wrote after it.
    for (let next: ContinuationEvent | undefined = first; next; ) {
      const before = lambda.commandCalls(InvokeCommand).length;
      await handler(next, shortDeadline(2));
      const after = lambda.commandCalls(InvokeCommand).length;
      next = after > before ? payloadOf(after - 1) : undefined;
    }
    const dry = await reportOf(key);

    await handler(await harness.putObject("reprocess/dry-twice-real.csv", body), lambdaContext);
    const real = await reportOf("reprocess/dry-twice-real.csv");
    expect(dry).toMatchObject({ dryRun: true, success: true });
    expect(entryOutcomeOf(real).inserted).toBe(14);
    expect(entryOutcomeOf(dry)).toEqual(entryOutcomeOf(real));
  });

  it("ends as one invocation would when two copies of one continuation stopped at different rows and both lines run to the end", async () => {
    const key = "reprocess/twice-apart.csv";
    const body = buildCsv(mixedRows());
    const single = await singleRun("reprocess/twice-apart-whole.csv", body);
    await handler(await harness.putObject(key, body), shortDeadline(2));
    const delivered = payloadOf(0);
    await handler(delivered, shortDeadline(2));
    // The second copy reads further: before, it overwrote the first copy's part 2.
    await handler(delivered, shortDeadline(3));
    const [first, second] = [payloadOf(1), payloadOf(2)];
    expect(first.trackingSyncContinuation.checkpoint.rows).not.toBe(
      second.trackingSyncContinuation.checkpoint.rows,
    );
    expect(first.trackingSyncContinuation.rejects.names?.[1]).not.toBe(
      second.trackingSyncContinuation.rejects.names?.[1],
    );

    // Both lines run to the end, one after the other, each joining its own parts (and
    // the part both share, which the line finishing first leaves in place).
    const runLine = async (start: ContinuationEvent) => {
      let response: IngestResponse | undefined;
      for (let next: ContinuationEvent | undefined = start; next; ) {
        const before = lambda.commandCalls(InvokeCommand).length;
        response = await handler(next, shortDeadline(2));
        const after = lambda.commandCalls(InvokeCommand).length;
        next = after > before ? payloadOf(after - 1) : undefined;
      }
      return response;
    };
    for (const line of [first, second]) {
      expect(await runLine(line)).toMatchObject({ success: true });
      expect(await comparableEntries()).toEqual(single.entries);
      expect(await comparableFacts(harness.db)).toEqual(single.facts);
      const report = await reportOf(key);
      expect(report).toMatchObject({ success: true });
      expect(rowCountsOf(report)).toEqual(rowCountsOf(single.report));
      expect(await harness.readText(`rejects/${key}`)).toBe(single.rejects);
    }
  });

  it("fails clearly, without mixing the objects, when the object is replaced between invocations", async () => {
    const body = buildCsv(mixedRows());
    await handler(await harness.putObject("reprocess/replaced.csv", body), shortDeadline(2));
    const before = await comparableEntries();
    await harness.s3.client.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: "reprocess/replaced.csv",
        Body: buildCsv([csvRow({ report_date: "2025-10-01" })]),
      }),
    );

    const response = await handler(payloadOf(0), shortDeadline(2));

    expect(response.success).toBe(false);
    expect(await comparableEntries()).toEqual(before);
    expect(lambda).toHaveReceivedCommandTimes(InvokeCommand, 1);
    // Both invocations publish their Duration; a rejected file publishes no counts.
    expect(publishedMetrics()).toEqual([
      { Duration: expect.any(Number) },
      { Duration: expect.any(Number) },
    ]);
    expect(await reportOf("reprocess/replaced.csv")).toMatchObject({
      success: false,
      outcome: "rejected",
      error: expect.stringMatching(/changed since invocation 1 read it/),
      stats: { rowsFromAthena: 10 },
    });
  });

  it("does not continue an invocation that has time left, or outside Lambda", async () => {
    const event = await harness.putObject("reprocess/plenty.csv", buildCsv(mixedRows()));

    await handler(event, shortDeadline(Number.MAX_SAFE_INTEGER));
    await handler(event, lambdaContext);

    expect(lambda).toHaveReceivedCommandTimes(InvokeCommand, 0);
    expect(await reportOf("reprocess/plenty.csv")).toMatchObject({
      invocations: 1,
      stats: { rowsFromAthena: 42 },
    });
    const published = publishedMetrics();
    expect(published).toHaveLength(2);
    for (const metrics of published) {
      expect(metrics).toMatchObject({ FileInvocations: 1, RowsSynced: expect.any(Number) });
    }
  });

  it("refuses a continuation event that is not one this function sent", async () => {
    await expect(
      handler(
        { trackingSyncContinuation: { version: 1 } } as unknown as ContinuationEvent,
        lambdaContext,
      ),
    ).rejects.toThrow(/Invalid continuation event/);
  });
});

describe("ingestResults: metrics of a file across invocations", () => {
  useFakeDate();

  it("publishes each invocation's own Duration, under the alarm by design, and the file's time and counts once", async () => {
    // 300 rows in batches of 5 at 10 s a batch: the default margin stops an invocation
    // after 23 batches (230 s); the last one reads the remaining 70 rows in 140 s.
    const event = await harness.putObject("reprocess/timed.csv", buildCsv(mixedRows(300)));

    const { invocations } = await runToTheEnd(event, () => timedDeadline(10_000), {
      queuedMs: 1_000,
    });

    expect(invocations).toBe(3);
    const report = await reportOf("reprocess/timed.csv");
    const stats = report?.stats ?? {};
    const published = publishedMetrics();
    expect(published.map((metrics) => metrics.Duration)).toEqual([230_000, 230_000, 140_000]);
    for (const metrics of published) {
      expect(metrics.Duration).toBeLessThanOrEqual(DURATION_ALARM_THRESHOLD_MS);
    }
    expect(published.slice(0, 2)).toEqual([{ Duration: 230_000 }, { Duration: 230_000 }]);
    expect(published[2]).toMatchObject({
      FileDuration: 230_000 + 1_000 + 230_000 + 1_000 + 140_000,
      FileInvocations: 3,
      RowsSynced: stats.synced,
      RowsSkipped: stats.skipped,
      Errors: stats.errors,
    });
    expect(report).toMatchObject({ invocations: 3, duration: 602_000 });
  });

  it("stops an invocation early enough that only a slow hand-over crosses the alarm", () => {
    // The first check below the margin comes after at most one more batch; what follows
    // (in-flight writes, rejects chunk, checkpoint, self-invoke) must fit before the alarm.
    const stopsReadingAfter = INGEST_TIMEOUT_MS - DEFAULT_CONTINUATION_MARGIN_MS;

    expect(stopsReadingAfter).toBe(225_000);
    expect(DURATION_ALARM_THRESHOLD_MS - stopsReadingAfter).toBe(15_000);
  });

  it("publishes nothing for a dry run, in any invocation", async () => {
    const event = await harness.putObject("reprocess/dry-continued.csv", buildCsv(mixedRows()), {
      tagging: "dryRun=true",
    });

    const { invocations } = await runToTheEnd(event, 2);

    expect(invocations).toBe(5);
    expect(await reportOf("reprocess/dry-continued.csv")).toMatchObject({
      dryRun: true,
      invocations: 5,
    });
    expect(cloudwatch).toHaveReceivedCommandTimes(PutMetricDataCommand, 0);
  });
});
