import { CloudWatchClient, PutMetricDataCommand } from "@aws-sdk/client-cloudwatch";
import { InvokeCommand, LambdaClient } from "@aws-sdk/client-lambda";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import type { Context, S3Event } from "aws-lambda";
import { mockClient } from "aws-sdk-client-mock";
import type { Document } from "mongodb";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  type ContinuationEvent,
  DEFAULT_CONTINUATION_MARGIN_MS,
} from "../../handlers/ingest/continuation";
import type { IngestResponse } from "../../handlers/ingest/response";
import { buildCsv, type CsvRowValues, csvRow } from "../helpers/ingest-csv";
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

/**
 * A body stream that breaks mid-file, through the real handler: the S3 stand-in cuts the
 * download after N bytes (as a reset connection does) and the ingest must end exactly as
 * if nothing had happened, or fail clearly.
 */

const cloudwatch = mockClient(CloudWatchClient);
const lambda = mockClient(LambdaClient);
const BATCH_SIZE = 5;

type Handler = (event: S3Event | ContinuationEvent, context: Context) => Promise<IngestResponse>;
let harness: IngestHarness;
let handler: Handler;

beforeAll(async () => {
  harness = await startIngestHarness();
  handler = (await harness.loadHandler({
    AWS_LAMBDA_FUNCTION_NAME: "tracking-sync-ingest",
    BATCH_SIZE: String(BATCH_SIZE),
    CONTINUATION_MARGIN_MS: undefined,
    // The default attempts; no backoff, so the tests do not wait.
    STREAM_RESUME_BACKOFF_MS: "0",
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
  harness.s3.server.faults.reset();
  await harness.clearDb();
  await seedLookups(harness.db, {
    orders: [order()],
    trackingScripts: [
      trackingScript(),
      trackingScript({ creativeId: "cr_spring-sale_728x90", creative: { name: "728x90" } }),
    ],
  });
});

/** A context whose time left drops below the margin after `batches` full batches. */
function shortDeadline(batches: number): Context {
  let asked = 0;
  return {
    ...lambdaContext,
    getRemainingTimeInMillis: () =>
      ++asked >= batches ? DEFAULT_CONTINUATION_MARGIN_MS - 1 : 300_000,
  } as Context;
}

/** 40 rows over many days: synced ones of two creatives, a skip, an error, a multi-line field. */
function rows(): CsvRowValues[] {
  return Array.from({ length: 40 }, (_, i) => {
    const day = `2025-11-${String((i % 28) + 1).padStart(2, "0")}`;
    if (i === 11) return csvRow({ report_date: day, publication_code: "nowhere" });
    if (i === 23) return csvRow({ report_date: day, impressions: "-5" });
    if (i === 17) return csvRow({ creative_id: "cr_multi\nline_1", clicks: "x" });
    if (i % 2 === 0) return csvRow({ report_date: day, impressions: 1000 + i });
    return csvRow({ report_date: day, creative_id: "cr_spring-sale_728x90", ad_size: "728x90" });
  });
}
const BODY = buildCsv(rows());
/** Inside the 21st line's record, so the cut splits a record, not a line ending. */
const MID_RECORD = BODY.split("\n").slice(0, 20).join("\n").length + 7;

const comparableEntries = () => sharedComparableEntries(harness.db);

type Report = Record<string, unknown>;
const reportOf = (key: string) => harness.readJson<Report>(`reports/${key}.json`);

/** The report without what differs between any two runs (key, clocks). */
function comparable(report: Report | undefined) {
  const { source, startedAt, finishedAt, duration, rejects, run, ...rest } = report ?? {};
  return { ...rest, rejectedRows: (rejects as { rows?: number } | undefined)?.rows };
}

/** An uncut run of BODY: its entries, report and rejects, then the entries are cleared. */
async function uncutRun(key: string) {
  await handler(await harness.putObject(key, BODY), lambdaContext);
  const uncut = {
    entries: await comparableEntries(),
    facts: await comparableFacts(harness.db),
    report: await reportOf(key),
    rejects: await harness.readText(`rejects/${key}`),
  };
  await clearEntriesAndLedger(harness.db);
  return uncut;
}

function resumeLogs(): Record<string, unknown>[] {
  return harness.logs
    .map((line) => JSON.parse(line))
    .filter((line) => line.message === "Source stream broke; resuming");
}

function payloadOf(index: number): ContinuationEvent {
  const call = lambda.commandCalls(InvokeCommand)[index];
  if (!call) throw new Error(`no InvokeCommand #${index}`);
  return JSON.parse(Buffer.from(call.args[0].input.Payload as Uint8Array).toString("utf-8"));
}

describe("ingestResults: a download that breaks mid-file", () => {
  it("resumes a download cut mid-record and ends exactly as an uncut run, with one resume in the report", async () => {
    const uncut = await uncutRun("reprocess/uncut.csv");
    const key = "reprocess/cut.csv";
    const event = await harness.putObject(key, BODY);
    harness.s3.server.faults.cutDownloads({ bucket: BUCKET, key, afterBytes: MID_RECORD });

    const response = await handler(event, lambdaContext);

    expect(response).toMatchObject({ success: true, stats: { rowsFromAthena: 40 } });
    expect(await comparableEntries()).toEqual(uncut.entries);
    expect(await comparableFacts(harness.db)).toEqual(uncut.facts);
    const report = await reportOf(key);
    expect(comparable(report)).toEqual({ ...comparable(uncut.report), streamResumes: 1 });
    expect(uncut.report?.streamResumes).toBe(0);
    expect(await harness.readText(`rejects/${key}`)).toBe(uncut.rejects);
    expect(resumeLogs()).toEqual([
      expect.objectContaining({
        level: "warn",
        key,
        byteOffset: MID_RECORD,
        attempt: 1,
        attempts: 3,
        error: expect.stringMatching(/aborted|socket hang up|ECONNRESET/),
      }),
    ]);
  });

  it("fails the file for Lambda's retry once the cuts outlast the attempts, and the retry ends as a clean run", async () => {
    const uncut = await uncutRun("reprocess/uncut-retried.csv");
    const key = "reprocess/cut-retried.csv";
    const event = await harness.putObject(key, BODY);
    // Each cut GET delivers 200 bytes of its range: the fourth break is at byte 800.
    harness.s3.server.faults.cutDownloads({ key, afterBytes: 200, count: 4 });

    await expect(handler(event, lambdaContext)).rejects.toThrow(
      /failed at byte 800 after 3 resume\(s\) of 3/,
    );

    expect(await reportOf(key)).toMatchObject({
      success: false,
      outcome: "failed",
      streamResumes: 3,
      error: expect.stringMatching(/^Reading s3:\/\/.*cut-retried\.csv failed at byte 800/),
    });
    expect(resumeLogs().map((line) => [line.byteOffset, line.attempt])).toEqual([
      [200, 1],
      [400, 2],
      [600, 3],
    ]);
    await handler(event, lambdaContext);
    expect(await comparableEntries()).toEqual(uncut.entries);
    expect(await comparableFacts(harness.db)).toEqual(uncut.facts);
    expect(await reportOf(key)).toMatchObject({ success: true, streamResumes: 0 });
  });

  it("fails clearly, reading nothing of the new object, when the object is replaced between the cut and the resume", async () => {
    const key = "reprocess/cut-replaced.csv";
    const event = await harness.putObject(key, BODY);
    harness.s3.server.faults.cutDownloads({
      key,
      afterBytes: MID_RECORD,
      beforeCut: async () => {
        await harness.s3.client.send(
          new PutObjectCommand({
            Bucket: BUCKET,
            Key: key,
            Body: buildCsv([csvRow({ report_date: "2025-10-01" })]),
          }),
        );
      },
    });

    const response = await handler(event, lambdaContext);

    expect(response.success).toBe(false);
    expect(await reportOf(key)).toMatchObject({
      success: false,
      outcome: "rejected",
      streamResumes: 1,
      error: expect.stringMatching(
        new RegExp(`changed while it was read .*from byte ${MID_RECORD} on were not read`),
      ),
    });
    const days = (await comparableEntries()).map((entry) => entry.dateStart.toISOString());
    expect(days.length).toBeGreaterThan(0);
    expect(days).not.toContain("2025-10-01T00:00:00.000Z");
  });

  it("resumes a cut in a continued invocation from the checkpoint's absolute offset, and counts every invocation's resumes", async () => {
    const uncut = await uncutRun("reprocess/uncut-continued.csv");
    const key = "reprocess/cut-continued.csv";
    const event = await harness.putObject(key, BODY);
    harness.s3.server.faults.cutDownloads({ key, afterBytes: 300 });
    await handler(event, shortDeadline(2));
    const continuation = payloadOf(0);
    const { checkpoint, tally } = continuation.trackingSyncContinuation;
    harness.s3.server.faults.cutDownloads({ key, afterBytes: 37 });
    harness.logs.length = 0;

    const response = await handler(continuation, shortDeadline(Number.MAX_SAFE_INTEGER));

    expect(tally.streamResumes).toBe(1);
    expect(checkpoint.byteOffset).toBeGreaterThan(300);
    expect(resumeLogs().map((line) => line.byteOffset)).toEqual([checkpoint.byteOffset + 37]);
    expect(response).toMatchObject({ success: true, stats: { rowsFromAthena: 40 } });
    expect(await comparableEntries()).toEqual(uncut.entries);
    expect(await comparableFacts(harness.db)).toEqual(uncut.facts);
    const report = await reportOf(key);
    expect(report).toMatchObject({ invocations: 2, streamResumes: 2, outcome: "synced" });
    expect(report?.stats).toEqual(uncut.report?.stats);
    expect(await harness.readText(`rejects/${key}`)).toBe(uncut.rejects);
  });
});
