import type { Context, S3Event } from "aws-lambda";
import { describe, expect, it } from "vitest";
import type { ContinuationEvent } from "../../../handlers/ingest/continuation";
import { IngestFailedError, MongoUnavailableError } from "../../../handlers/ingest/errors";
import { createIngestHandler } from "../../../handlers/ingest/ingest-event";
import type { ObjectReport } from "../../../handlers/ingest/report";
import type { IngestResponse } from "../../../handlers/ingest/response";
import {
  checkpointKey,
  rejectsKey,
  rejectsPartKey,
  reportKey,
} from "../../../handlers/shared/bucket-layout";
import { buildCsv, type CsvRowValues, csvRow } from "../../helpers/ingest-csv";
import { order, trackingScript } from "../../helpers/ingest-fixtures";
import { s3Event } from "../../helpers/s3-event";
import {
  BUCKET,
  createFakeIngest,
  type FakeIngest,
  type FakeIngestOptions,
  lambdaContext,
  objectRef,
} from "./fakes";

const LOOKUPS = {
  orders: [order()],
  trackingScripts: [
    trackingScript(),
    trackingScript({ creativeId: "cr_spring-sale_728x90", creative: { name: "728x90" } }),
  ],
};
const KEY = "reprocess/big.csv";
const MARGIN_MS = 1_000;
const BATCH_SIZE = 2;

/** Seven rows over four days, with a skip in the first batch and an error in the third. */
function sevenRows(): CsvRowValues[] {
  return [
    csvRow({ report_date: "2025-12-07" }),
    csvRow({ publication_code: "nowhere" }),
    csvRow({ report_date: "2025-12-08", impressions: 1200 }),
    csvRow({ creative_id: "cr_spring-sale_728x90", ad_size: "728x90" }),
    csvRow({ report_date: "2025-12-09", clicks: "x" }),
    csvRow({ report_date: "2025-12-07", creative_id: "cr_spring-sale_728x90", ad_size: "728x90" }),
    csvRow({ report_date: "2025-12-10", impressions: 900 }),
  ];
}

function fakeIngest(options: FakeIngestOptions = {}): FakeIngest {
  return createFakeIngest({ lookups: LOOKUPS, batchSize: BATCH_SIZE, ...options });
}

/** Time left is under the margin whenever the ingest asks: one batch per invocation. */
const alwaysShort = () => lambdaContext(() => MARGIN_MS - 1);
/** Time left is plenty: the file is read to its end. */
const plenty = () => lambdaContext(() => 300_000);

type Handler = (event: S3Event | ContinuationEvent, context: Context) => Promise<IngestResponse>;

/** Runs the event, then each recorded continuation in turn, as Lambda would. */
async function runToTheEnd(fake: FakeIngest, event: S3Event, context: () => Context) {
  const handler: Handler = createIngestHandler(fake.deps);
  const responses = [await handler(event, context())];
  for (let next = 0; next < fake.invoker.events.length; next++) {
    const continuation = fake.invoker.events[next] as ContinuationEvent;
    responses.push(await handler(continuation, context()));
  }
  return responses;
}

/** What must not depend on how many invocations the file took. */
function countsOf(report: ObjectReport | undefined) {
  if (!report) return undefined;
  const { stats, dateRange, inserted, updated, unchanged, warnings, outcome, success } = report;
  return {
    stats,
    dateRange,
    inserted,
    updated,
    unchanged,
    warnings,
    outcome,
    success,
    skippedByReason: report.skippedByReason,
    errorsByReason: report.errorsByReason,
    rejects: report.rejects,
    progress: report.progress,
    writeBatches: report.writeBatches,
  };
}

function reportOf(response: IngestResponse | undefined): ObjectReport | undefined {
  const outcome = response?.objects[0];
  return outcome && "report" in outcome ? outcome.report : undefined;
}

/** The same file read in one invocation, with the same batch size. */
async function oneInvocationRun(csv: string) {
  const fake = fakeIngest();
  await createIngestHandler(fake.deps)(fake.put(KEY, csv), plenty());
  const object = objectRef(KEY);
  return {
    report: fake.artifacts.report(object),
    rejects: fake.artifacts.rejects(object),
    entries: fake.entries.comparableEntries(),
  };
}

describe("createIngestHandler with an S3 event", () => {
  it("sums the objects' reports into the response", async () => {
    const fake = fakeIngest();
    const event = fake.put(KEY, buildCsv(sevenRows()));

    const response = await createIngestHandler(fake.deps)(event, plenty());

    expect(response).toMatchObject({
      success: true,
      stats: { rowsFromAthena: 7, synced: 5, skipped: 1, errors: 1 },
      dateRange: { start: "2025-12-07", end: "2025-12-10" },
      objects: [{ status: "ingested", bucket: BUCKET, key: KEY }],
    });
  });

  it("ignores records outside the ingest prefixes without reading them", async () => {
    const fake = fakeIngest();
    fake.put("reports/x.csv", buildCsv([csvRow()]));

    const response = await createIngestHandler(fake.deps)(
      s3Event(BUCKET, "reports/x.csv"),
      plenty(),
    );

    expect(response.objects).toEqual([
      {
        status: "ignored",
        bucket: BUCKET,
        key: "reports/x.csv",
        reason: "key is outside the ingest prefixes",
      },
    ]);
    expect(fake.source.tagReads).toEqual([]);
  });

  it("returns a rejected file's report without throwing", async () => {
    const fake = fakeIngest();
    const event = fake.put(KEY, buildCsv([csvRow()], { columns: ["report_date", "creative_id"] }));

    const response = await createIngestHandler(fake.deps)(event, plenty());

    expect(response.success).toBe(false);
    expect(response.objects[0]).toMatchObject({
      status: "rejected",
      report: { outcome: "rejected" },
    });
    expect(fake.artifacts.report(objectRef(KEY))?.missingColumns).toHaveLength(7);
  });

  it("throws IngestFailedError naming the object after a failed report when the source cannot be read", async () => {
    const fake = fakeIngest();
    const event = fake.put(KEY, buildCsv([csvRow()]));
    fake.source.failNextOpen();

    const handling = createIngestHandler(fake.deps)(event, plenty());

    await expect(handling).rejects.toBeInstanceOf(IngestFailedError);
    await expect(handling).rejects.toMatchObject({
      message: `Ingest failed for 1 object(s): ${KEY}: Could not read s3://${BUCKET}/${KEY}: Access Denied`,
      context: { keys: [KEY] },
    });
    expect(fake.artifacts.report(objectRef(KEY))).toMatchObject({
      success: false,
      outcome: "failed",
    });
  });

  it("does not attempt the rest of the event once MongoDB is found down, and reports each object failed", async () => {
    const fake = fakeIngest();
    const first = fake.put("reprocess/one.csv", buildCsv([csvRow()]));
    const second = fake.put("reprocess/two.csv", buildCsv([csvRow()]));
    const down = new MongoUnavailableError(
      "MongoDB failed while connecting: MongoServerSelectionError: connect ECONNREFUSED",
    );
    fake.entries.failWith(down);
    const event: S3Event = { Records: [...first.Records, ...second.Records] };

    const handling = createIngestHandler(fake.deps)(event, plenty());

    await expect(handling).rejects.toMatchObject({
      name: "IngestFailedError",
      context: { keys: ["reprocess/one.csv", "reprocess/two.csv"] },
    });
    expect(fake.source.tagReads).toEqual(["reprocess/one.csv"]);
    expect(fake.source.opens).toEqual([]);
    expect(fake.artifacts.report(objectRef("reprocess/one.csv"))).toMatchObject({
      outcome: "failed",
      error: down.message,
    });
    expect(fake.artifacts.report(objectRef("reprocess/two.csv"))).toMatchObject({
      success: false,
      outcome: "failed",
      error: down.message,
    });
  });

  it("goes on with the next object after one that failed for another reason", async () => {
    const fake = fakeIngest();
    const first = fake.put("reprocess/one.csv", buildCsv([csvRow()]));
    const second = fake.put("reprocess/two.csv", buildCsv([csvRow()]));
    fake.source.failNextOpen();
    const event: S3Event = { Records: [...first.Records, ...second.Records] };

    const handling = createIngestHandler(fake.deps)(event, plenty());

    await expect(handling).rejects.toMatchObject({ context: { keys: ["reprocess/one.csv"] } });
    expect(fake.artifacts.report(objectRef("reprocess/two.csv"))).toMatchObject({
      outcome: "synced",
      stats: { synced: 1 },
    });
  });
});

describe("createIngestHandler with a file beyond one invocation", () => {
  it("hands over after the first batch once the deadline passes: checkpoint written, event recorded, no report", async () => {
    const fake = fakeIngest({ handOverMarginMs: MARGIN_MS });
    const event = fake.put(KEY, buildCsv(sevenRows()));
    const object = objectRef(KEY);

    const response = await createIngestHandler(fake.deps)(event, alwaysShort());

    expect(reportOf(response)).toMatchObject({
      success: true,
      outcome: "continued",
      invocations: 1,
      stats: { rowsFromAthena: 2, synced: 1, skipped: 1 },
    });
    expect(fake.invoker.events).toHaveLength(1);
    const state = fake.invoker.events[0]?.trackingSyncContinuation;
    expect(state).toMatchObject({
      continuation: 1,
      checkpoint: { rows: 2, line: 4 },
      rejects: { rows: 1 },
    });
    expect(fake.artifacts.checkpoint(object)).toEqual(state);
    expect(fake.artifacts.report(object)).toBeUndefined();
    expect(fake.artifacts.keys(BUCKET)).toEqual([
      checkpointKey(KEY),
      rejectsPartKey(KEY, state?.rejects.names?.[0] ?? ""),
    ]);
    // Named for this hand-over alone: the chain, the invocation and a nonce.
    expect(state?.rejects.names).toEqual([
      expect.stringMatching(new RegExp(`^${state?.chain}-1-[0-9a-f]{12}$`)),
    ]);
    expect(fake.metrics.published).toHaveLength(1);
    expect(fake.metrics.files).toEqual([]);
  });

  it("finishes the file from the recorded event with the counts of a one-invocation run", async () => {
    const csv = buildCsv(sevenRows());
    const single = await oneInvocationRun(csv);
    const fake = fakeIngest({ handOverMarginMs: MARGIN_MS });
    const event = fake.put(KEY, csv);
    const handler = createIngestHandler(fake.deps);
    await handler(event, alwaysShort());
    const continuation = fake.invoker.events[0] as ContinuationEvent;

    const response = await handler(continuation, plenty());

    const object = objectRef(KEY);
    const report = fake.artifacts.report(object);
    expect(report).toMatchObject({ outcome: "synced", invocations: 2 });
    expect(reportOf(response)).toEqual(report);
    expect(countsOf(report)).toEqual(countsOf(single.report));
    expect(fake.artifacts.rejects(object)).toBe(single.rejects);
    expect(fake.entries.comparableEntries()).toEqual(single.entries);
    // Besides the rejects and the report only the rejects parts stay, until they expire.
    const keys = fake.artifacts.keys(BUCKET);
    expect(keys.filter((key) => !key.startsWith(`state/checkpoints/${KEY}.rejects-`))).toEqual([
      rejectsKey(KEY),
      reportKey(KEY),
    ]);
  });

  it("reads the rest of the object from the checkpoint, conditional on the ETag first read", async () => {
    const fake = fakeIngest({ handOverMarginMs: MARGIN_MS });
    const event = fake.put(KEY, buildCsv(sevenRows()));
    const handler = createIngestHandler(fake.deps);
    await handler(event, alwaysShort());
    const state = fake.invoker.events[0]?.trackingSyncContinuation;

    await handler(fake.invoker.events[0] as ContinuationEvent, plenty());

    expect(fake.source.opens).toEqual([
      { key: KEY, from: undefined },
      { key: KEY, from: { byteOffset: state?.checkpoint.byteOffset, eTag: state?.source.eTag } },
    ]);
  });

  it("publishes the file's counts once, from the invocation that finishes it", async () => {
    const fake = fakeIngest({ handOverMarginMs: MARGIN_MS });

    await runToTheEnd(fake, fake.put(KEY, buildCsv(sevenRows())), alwaysShort);

    expect(fake.metrics.published).toHaveLength(4);
    expect(fake.metrics.files).toEqual([
      expect.objectContaining({ synced: 5, skipped: 1, errors: 1, invocations: 4 }),
    ]);
  });

  it("ends a file that takes four invocations as a one-invocation run ends it", async () => {
    const csv = buildCsv(sevenRows());
    const single = await oneInvocationRun(csv);
    const fake = fakeIngest({ handOverMarginMs: MARGIN_MS });

    const responses = await runToTheEnd(fake, fake.put(KEY, csv), alwaysShort);

    const object = objectRef(KEY);
    expect(responses.map((response) => reportOf(response)?.outcome)).toEqual([
      "continued",
      "continued",
      "continued",
      "synced",
    ]);
    expect(fake.invoker.events.map((event) => event.trackingSyncContinuation.continuation)).toEqual(
      [1, 2, 3],
    );
    expect(
      new Set(fake.invoker.events.map((event) => event.trackingSyncContinuation.chain)).size,
    ).toBe(1);
    expect(countsOf(fake.artifacts.report(object))).toEqual(countsOf(single.report));
    expect(fake.artifacts.rejects(object)).toBe(single.rejects);
    expect(fake.entries.comparableEntries()).toEqual(single.entries);
    // Besides the rejects and the report only the rejects parts stay, until they expire.
    const keys = fake.artifacts.keys(BUCKET);
    expect(keys.filter((key) => !key.startsWith(`state/checkpoints/${KEY}.rejects-`))).toEqual([
      rejectsKey(KEY),
      reportKey(KEY),
    ]);
  });

  it("finishes instead of handing over when the deadline passes at the file's last batch", async () => {
    const fake = fakeIngest({ handOverMarginMs: MARGIN_MS });
    const event = fake.put(KEY, buildCsv(sevenRows().slice(0, 2)));

    const response = await createIngestHandler(fake.deps)(event, alwaysShort());

    expect(reportOf(response)).toMatchObject({ outcome: "synced", invocations: 1 });
    expect(fake.invoker.events).toEqual([]);
  });

  it("never hands over without a handOver dependency, whatever the time left", async () => {
    const fake = fakeIngest();

    const response = await createIngestHandler(fake.deps)(
      fake.put(KEY, buildCsv(sevenRows())),
      alwaysShort(),
    );

    expect(reportOf(response)).toMatchObject({ outcome: "synced", stats: { rowsFromAthena: 7 } });
  });

  it("rejects the rest with ObjectReplacedError's message when the object changed between invocations", async () => {
    const fake = fakeIngest({ handOverMarginMs: MARGIN_MS });
    const handler = createIngestHandler(fake.deps);
    await handler(fake.put(KEY, buildCsv(sevenRows())), alwaysShort());
    const state = fake.invoker.events[0]?.trackingSyncContinuation;
    fake.put(KEY, buildCsv([csvRow({ impressions: 5 })]));

    const response = await handler(fake.invoker.events[0] as ContinuationEvent, plenty());

    const expected =
      `s3://${BUCKET}/${KEY} changed since invocation 1 read it (ETag ${state?.source.eTag}); ` +
      "its rows after line 4 were not ingested. The new object's own event ingests it.";
    expect(response.objects[0]).toMatchObject({ status: "rejected" });
    expect(fake.artifacts.report(objectRef(KEY))).toMatchObject({
      success: false,
      outcome: "rejected",
      error: expected,
      invocations: 2,
      stats: { rowsFromAthena: 2 },
    });
    expect(fake.metrics.files).toEqual([]);
  });

  it("fails the invocation with ContinuationFailedError's message when the self-invoke fails", async () => {
    const fake = fakeIngest({ handOverMarginMs: MARGIN_MS });
    fake.invoker.failNext();

    const handling = createIngestHandler(fake.deps)(
      fake.put(KEY, buildCsv(sevenRows())),
      alwaysShort(),
    );

    await expect(handling).rejects.toThrow(
      `${KEY}: Could not continue ${KEY} in a fresh invocation: asynchronous invoke answered 500, not 202`,
    );
    expect(fake.artifacts.report(objectRef(KEY))?.outcome).toBe("failed");
  });

  it("throws IngestFailedError for a continuation that cannot finish, so Lambda retries it", async () => {
    const fake = fakeIngest({ handOverMarginMs: MARGIN_MS });
    const handler = createIngestHandler(fake.deps);
    await handler(fake.put(KEY, buildCsv(sevenRows())), alwaysShort());
    fake.source.failNextOpen();

    const handling = handler(fake.invoker.events[0] as ContinuationEvent, plenty());

    await expect(handling).rejects.toMatchObject({
      name: "IngestFailedError",
      message: `Ingest failed for ${KEY}: Could not read s3://${BUCKET}/${KEY}: Access Denied`,
    });
  });
});
