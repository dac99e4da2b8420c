import { describe, expect, it } from "vitest";
import { MongoUnavailableError, ObjectUnreadableError } from "../../../handlers/ingest/errors";
import { FileRun } from "../../../handlers/ingest/file-run";
import { type Invocation, ingestObject } from "../../../handlers/ingest/ingest-object";
import { InvocationLookups } from "../../../handlers/ingest/lookups";
import { rejectsKey, reportKey } from "../../../handlers/shared/bucket-layout";
import { startOfDay } from "../../../handlers/shared/dates";
import type { RunManifest } from "../../../handlers/shared/run-manifest";
import { buildCsv, csvRow, INGEST_COLUMNS } from "../../helpers/ingest-csv";
import { order, trackingScript } from "../../helpers/ingest-fixtures";
import { BUCKET, createFakeIngest, type FakeIngest, objectRef, upsertKeyOf } from "./fakes";

const ORDER = order();
const LOOKUPS = {
  orders: [ORDER],
  trackingScripts: [
    trackingScript(),
    trackingScript({ creativeId: "cr_spring-sale_728x90", creative: { name: "728x90" } }),
  ],
};
const QUERY_ID = "0f8b6a1e-2c3d-4e5f-8a9b-0c1d2e3f4a5b";
const ATHENA_KEY = `athena-results/${QUERY_ID}.csv`;
const MANUAL_KEY = "reprocess/manual.csv";

/** Three rows: two creatives on 2025-12-10 (one entry), one on 2025-12-09 (another). */
const THREE_ROWS = buildCsv([
  csvRow(),
  csvRow({ creative_id: "cr_spring-sale_728x90", ad_size: "728x90", impressions: 500 }),
  csvRow({ report_date: "2025-12-09", impressions: 200, clicks: 2 }),
]);

function manifest(overrides: Partial<RunManifest> = {}): RunManifest {
  return {
    version: 1,
    queryExecutionId: QUERY_ID,
    request: {},
    dateRange: { start: "2025-12-09", end: "2025-12-10" },
    dryRun: false,
    attempt: 1,
    trigger: { kind: "schedule", id: "nightly" },
    startedAt: "2025-12-11T05:00:00.000Z",
    ...overrides,
  };
}

function invocationOf(fake: FakeIngest): Invocation {
  return {
    startedAt: Date.now(),
    logger: fake.logger,
    lookups: new InvocationLookups(fake.entries, {}, fake.logger),
  };
}

/** Stores `body` under `key` and ingests it as a fresh run. */
async function ingest(fake: FakeIngest, key: string, body: string, tags?: Record<string, string>) {
  fake.put(key, body, tags);
  const object = objectRef(key);
  return {
    object,
    report: await ingestObject(FileRun.start(object), fake.deps, invocationOf(fake)),
  };
}

const entryKey = (reportDate: string) =>
  upsertKeyOf({
    orderId: String(ORDER._id),
    itemPath: "tracking-display",
    dateStart: startOfDay(reportDate),
    source: "automated",
  });

describe("ingestObject of a clean file", () => {
  it("writes one entry per order, item and day, with the rows' numbers", async () => {
    const fake = createFakeIngest({ lookups: LOOKUPS });

    const { report } = await ingest(fake, MANUAL_KEY, THREE_ROWS);

    expect(report).toMatchObject({
      success: true,
      outcome: "synced",
      stats: { rowsFromAthena: 3, synced: 3, skipped: 0, errors: 0 },
      dateRange: { start: "2025-12-09", end: "2025-12-10" },
      inserted: 2,
      updated: 0,
      unchanged: 0,
      invocations: 1,
    });
    expect([...fake.entries.entries.keys()].sort()).toEqual(
      [entryKey("2025-12-09"), entryKey("2025-12-10")].sort(),
    );
    expect(fake.entries.entries.get(entryKey("2025-12-10"))).toMatchObject({
      orderId: String(ORDER._id),
      publicationId: 1035,
      channel: "display",
      itemName: "728x90, Spring Sale 300x250",
      dimensions: "300x250, 728x90",
      metrics: { impressions: 1500, clicks: 20, reach: 1400 },
    });
    expect(fake.entries.indexEnsured).toBe(1);
  });

  it("writes the report beside the source and returns the same report", async () => {
    const fake = createFakeIngest({ lookups: LOOKUPS });

    const { object, report } = await ingest(fake, MANUAL_KEY, THREE_ROWS);

    expect(fake.artifacts.report(object)).toEqual(JSON.parse(JSON.stringify(report)));
    expect(fake.artifacts.keys(BUCKET)).toEqual([reportKey(MANUAL_KEY)]);
  });

  it("publishes the file's counts once, after the report", async () => {
    const fake = createFakeIngest({ lookups: LOOKUPS });

    await ingest(fake, MANUAL_KEY, THREE_ROWS);

    expect(fake.metrics.published).toHaveLength(1);
    expect(fake.metrics.files).toEqual([
      expect.objectContaining({
        synced: 3,
        skipped: 0,
        errors: 0,
        inserted: 2,
        updated: 0,
        unchanged: 0,
        invocations: 1,
      }),
    ]);
  });

  it("counts a second ingest of the same file as unchanged and leaves the entries as they were", async () => {
    const fake = createFakeIngest({ lookups: LOOKUPS });
    await ingest(fake, MANUAL_KEY, THREE_ROWS);
    const before = fake.entries.comparableEntries();

    const { report } = await ingest(fake, MANUAL_KEY, THREE_ROWS);

    expect(report).toMatchObject({ inserted: 0, updated: 0, unchanged: 2 });
    expect(fake.entries.comparableEntries()).toEqual(before);
  });

  it("writes the rows it could not sync to the rejects object and counts them by reason", async () => {
    const fake = createFakeIngest({ lookups: LOOKUPS });
    const csv = buildCsv([
      csvRow(),
      csvRow({ publication_code: "nowhere" }),
      csvRow({ creative_id: "cr_nobody_1" }),
      csvRow({ impressions: "-5" }),
    ]);

    const { object, report } = await ingest(fake, MANUAL_KEY, csv);

    expect(report).toMatchObject({
      stats: { rowsFromAthena: 4, synced: 1, skipped: 2, errors: 1 },
      skippedByReason: { "unknown-publication": 1, "order-not-found": 1 },
      errorsByReason: { "invalid-impressions": 1 },
      rejects: { bucket: BUCKET, key: rejectsKey(MANUAL_KEY), rows: 3 },
    });
    const lines = fake.artifacts.rejects(object)?.trimEnd().split("\n");
    expect(lines?.[0]).toBe(
      `${INGEST_COLUMNS.map((name) => `"${name}"`).join(",")},"line","last_line","reject_reason","raw_record"`,
    );
    expect(lines?.slice(1).map((line) => line.split(",").slice(-4).join(","))).toEqual([
      '3,3,"unknown-publication",',
      '4,4,"order-not-found",',
      '5,5,"invalid-impressions",',
    ]);
  });

  it("removes an earlier run's rejects once a run rejects nothing", async () => {
    const fake = createFakeIngest({ lookups: LOOKUPS });
    await ingest(fake, MANUAL_KEY, buildCsv([csvRow({ impressions: "-5" })]));

    const { object, report } = await ingest(fake, MANUAL_KEY, THREE_ROWS);

    expect(report.rejects).toBeUndefined();
    expect(fake.artifacts.rejects(object)).toBeUndefined();
  });

  it("still finishes the file when publishing metrics fails", async () => {
    const fake = createFakeIngest({ lookups: LOOKUPS });
    fake.metrics.failPublishing();

    const { report } = await ingest(fake, MANUAL_KEY, THREE_ROWS);

    expect(report.outcome).toBe("synced");
    expect(fake.logs.map((line) => line.message)).toContain(
      "Publishing metrics failed; the sync itself is unaffected",
    );
  });
});

describe("ingestObject counts the lines of the file", () => {
  const header = INGEST_COLUMNS.map((name) => `"${name}"`).join(",");
  const good = (day: string) =>
    `"${day}","cr_spring-sale_300x250","chireader","website","300x250","1000","10","800","700"`;

  it("gives every line to the header, a record's bucket or the blank lines, a swallowed line too", async () => {
    const fake = createFakeIngest({ lookups: LOOKUPS });
    const csv = [
      header,
      good("2025-12-10"),
      "",
      // The closing quote of the last field is missing: the next line becomes part of it.
      '"2025-12-10","cr_spring-sale_300x250","chireader","website","300x250","1","1","1","1',
      good("2025-12-09"),
      '"2025-12-08","cr_spring-sale_300x250","nowhere","website","300x250","1","1","1","1"',
      good("2025-12-07"),
      "",
      "",
    ].join("\n");

    const { object, report } = await ingest(fake, MANUAL_KEY, csv);

    expect(report.stats).toEqual({ rowsFromAthena: 4, synced: 2, skipped: 1, errors: 1 });
    // Eight lines as `wc -l` counts them: the file ends in a blank line and its line feed.
    expect(report.lines).toEqual({
      read: 8,
      header: 1,
      synced: 2,
      skipped: 1,
      errors: 2,
      blank: 2,
      accounted: 8,
    });
    const rejects = fake.artifacts.rejects(object) ?? "";
    expect(rejects).toContain(
      `,4,5,"wrong-field-count","""2025-12-10"",""cr_spring-sale_300x250"",""chireader"",""website"",""300x250"",""1"",""1"",""1"",""1\n${good("2025-12-09").replaceAll('"', '""')}"\n`,
    );
    expect(rejects).toContain(',6,6,"unknown-publication",\n');
  });

  it("counts the lines of rows whose write failed for good as errors", async () => {
    const fake = createFakeIngest({ lookups: LOOKUPS });
    fake.entries.refuseUpdates(
      (update) => update.key.dateStart.getTime() === Date.parse("2025-12-09"),
    );
    const csv = buildCsv([
      csvRow(),
      csvRow({ report_date: "2025-12-09", creative_id: "cr_spring-sale_300x250" }),
    ]);

    const { object, report } = await ingest(fake, MANUAL_KEY, csv);

    expect(report.stats).toMatchObject({ synced: 1, errors: 1 });
    expect(report.errorsByReason).toEqual({ "write-failed": 1 });
    expect(report.lines).toMatchObject({ read: 3, header: 1, synced: 1, errors: 1, accounted: 3 });
    expect(fake.artifacts.rejects(object)).toContain(',3,3,"write-failed",\n');
  });
});

describe("ingestObject and the watermark", () => {
  it("moves the watermark to the manifest's last day after a real run of every publication", async () => {
    const fake = createFakeIngest({ lookups: LOOKUPS });
    // Athena's count of the three rows, recorded when the query SUCCEEDED.
    fake.source.putManifest(BUCKET, QUERY_ID, manifest({ outputRows: 3 }));

    const { report } = await ingest(fake, ATHENA_KEY, THREE_ROWS);

    expect(report.queryExecutionId).toBe(QUERY_ID);
    expect(fake.watermarks.get(BUCKET)).toMatchObject({
      lastCompleteDate: "2025-12-10",
      queryExecutionId: QUERY_ID,
      sourceKey: ATHENA_KEY,
    });
  });

  it("keeps the watermark after a run narrowed to one publicationCode", async () => {
    const fake = createFakeIngest({ lookups: LOOKUPS });
    fake.source.putManifest(BUCKET, QUERY_ID, manifest({ publicationCode: "chireader" }));

    const { report } = await ingest(fake, ATHENA_KEY, THREE_ROWS);

    expect(report.outcome).toBe("synced");
    expect(fake.watermarks.advances).toEqual([]);
    expect(fake.watermarks.get(BUCKET)).toBeUndefined();
  });

  it("keeps the watermark after a dry run, and says the manifest made it one", async () => {
    const fake = createFakeIngest({ lookups: LOOKUPS });
    fake.source.putManifest(BUCKET, QUERY_ID, manifest({ dryRun: true }));

    const { report } = await ingest(fake, ATHENA_KEY, THREE_ROWS);

    expect(report).toMatchObject({ dryRun: true, dryRunSource: "manifest" });
    expect(fake.watermarks.advances).toEqual([]);
  });

  it("never moves a watermark that is already past the run's days back", async () => {
    const fake = createFakeIngest({ lookups: LOOKUPS });
    fake.source.putManifest(BUCKET, QUERY_ID, manifest());
    const later = {
      lastCompleteDate: "2025-12-20",
      queryExecutionId: "later",
      sourceKey: "athena-results/later.csv",
      updatedAt: "2025-12-21T06:00:00.000Z",
    };
    fake.watermarks.set(BUCKET, later);

    await ingest(fake, ATHENA_KEY, THREE_ROWS);

    expect(fake.watermarks.get(BUCKET)).toEqual(later);
  });

  it("keeps the watermark of a manual drop, which has no manifest", async () => {
    const fake = createFakeIngest({ lookups: LOOKUPS });

    await ingest(fake, MANUAL_KEY, THREE_ROWS);

    expect(fake.watermarks.advances).toEqual([]);
  });
});

describe("ingestObject of a dry run", () => {
  it("writes no entry and no index, publishes no metrics, and reports what would change", async () => {
    const fake = createFakeIngest({ lookups: LOOKUPS });

    const { object, report } = await ingest(fake, MANUAL_KEY, THREE_ROWS, { dryRun: "true" });

    expect(report).toMatchObject({
      dryRun: true,
      dryRunSource: "tag",
      inserted: 2,
      stats: { synced: 3 },
      fieldChanges: {},
    });
    expect(fake.entries.entries.size).toBe(0);
    expect(fake.entries.indexEnsured).toBe(0);
    expect(fake.entries.writersOpened).toEqual([true]);
    expect(fake.metrics.published).toEqual([]);
    expect(fake.artifacts.report(object)?.dryRun).toBe(true);
  });

  it("counts the fields a real run would change in the stored entries", async () => {
    const fake = createFakeIngest({ lookups: LOOKUPS });
    await ingest(fake, MANUAL_KEY, THREE_ROWS);
    const stored = fake.entries.comparableEntries();
    const changed = buildCsv([
      csvRow({ impressions: 1200 }),
      csvRow({ creative_id: "cr_spring-sale_728x90", ad_size: "728x90", impressions: 500 }),
      csvRow({ report_date: "2025-12-09", impressions: 200, clicks: 2 }),
    ]);

    const { report } = await ingest(fake, MANUAL_KEY, changed, { DryRun: "yes" });

    expect(report).toMatchObject({ dryRun: true, inserted: 0, updated: 1, unchanged: 1 });
    expect(report.fieldChanges).toMatchObject({
      contributions: 1,
      "metrics.impressions": 1,
      "metrics.ctr": 1,
      "metrics.viewability": 1,
    });
    expect(fake.entries.comparableEntries()).toEqual(stored);
  });
});

describe("ingestObject of a file it cannot ingest", () => {
  it("rejects a file that lacks required columns, without throwing or writing", async () => {
    const fake = createFakeIngest({ lookups: LOOKUPS });
    const columns = INGEST_COLUMNS.filter((name) => name !== "clicks" && name !== "unique_ips");

    const { object, report } = await ingest(fake, MANUAL_KEY, buildCsv([csvRow()], { columns }));

    expect(report).toMatchObject({
      success: false,
      outcome: "rejected",
      missingColumns: ["clicks", "unique_ips"],
      error: "CSV header lacks required column(s): clicks, unique_ips",
    });
    expect(fake.artifacts.report(object)?.outcome).toBe("rejected");
    expect(fake.entries.writes).toEqual([]);
  });

  it("rejects a file whose run manifest is not valid, before reading it", async () => {
    const fake = createFakeIngest({ lookups: LOOKUPS });
    fake.source.putManifest(BUCKET, QUERY_ID, { version: 1, queryExecutionId: QUERY_ID });

    const { report } = await ingest(fake, ATHENA_KEY, THREE_ROWS);

    expect(report).toMatchObject({ outcome: "rejected", error: "run manifest has no dryRun flag" });
    expect(fake.source.opens).toEqual([]);
    expect(fake.entries.writes).toEqual([]);
  });

  it("throws ObjectUnreadableError after writing a failed report when the object cannot be read", async () => {
    const fake = createFakeIngest({ lookups: LOOKUPS });
    fake.put(MANUAL_KEY, THREE_ROWS);
    fake.source.failNextOpen();
    const object = objectRef(MANUAL_KEY);

    const ingesting = ingestObject(FileRun.start(object), fake.deps, invocationOf(fake));

    await expect(ingesting).rejects.toBeInstanceOf(ObjectUnreadableError);
    expect(fake.artifacts.report(object)).toMatchObject({
      success: false,
      outcome: "failed",
      error: `Could not read s3://${BUCKET}/${MANUAL_KEY}: Access Denied`,
    });
    expect(fake.metrics.published).toHaveLength(1);
    expect(fake.metrics.files).toEqual([]);
  });

  it("throws MongoUnavailableError when a write fails mid-file, and writes no rejects", async () => {
    const fake = createFakeIngest({ lookups: LOOKUPS, batchSize: 1 });
    fake.put(MANUAL_KEY, buildCsv([csvRow({ impressions: "-5" }), csvRow()]));
    const object = objectRef(MANUAL_KEY);
    fake.entries.failWritesAfter(0, new MongoUnavailableError("MongoDB failed while writing"));

    const ingesting = ingestObject(FileRun.start(object), fake.deps, invocationOf(fake));

    await expect(ingesting).rejects.toThrow("MongoDB failed while writing");
    expect(fake.artifacts.report(object)?.outcome).toBe("failed");
    expect(fake.artifacts.rejects(object)).toBeUndefined();
  });

  it("fails the object for a retry, publishing no file counts, when the report cannot be written", async () => {
    const fake = createFakeIngest({ lookups: LOOKUPS });
    fake.put(MANUAL_KEY, THREE_ROWS);
    fake.artifacts.failNext("writeReport", new Error("InternalError"));
    const object = objectRef(MANUAL_KEY);

    const ingesting = ingestObject(FileRun.start(object), fake.deps, invocationOf(fake));

    await expect(ingesting).rejects.toThrow(/InternalError/);
    expect(fake.artifacts.report(object)?.outcome).toBe("failed");
    expect(fake.metrics.files).toEqual([]);
  });
});

describe("ingestObject reconciles with Athena's row count", () => {
  it("records a complete verdict when the records read equal the manifest's outputRows", async () => {
    const fake = createFakeIngest({ lookups: LOOKUPS });
    fake.source.putManifest(BUCKET, QUERY_ID, manifest({ outputRows: 3 }));

    const { report } = await ingest(fake, ATHENA_KEY, THREE_ROWS);

    expect(report).toMatchObject({
      success: true,
      outcome: "synced",
      reconciliation: { status: "complete", expected: 3, read: 3, recordedBy: "ingest" },
    });
    expect(fake.artifacts.report(objectRef(ATHENA_KEY))?.reconciliation).toEqual(
      report.reconciliation,
    );
    expect(fake.metrics.files[0]?.incomplete).toBe(false);
  });

  it("fails the run, keeps the watermark and counts IncompleteResults when the counts differ", async () => {
    const fake = createFakeIngest({ lookups: LOOKUPS });
    fake.source.putManifest(BUCKET, QUERY_ID, manifest({ outputRows: 5 }));

    const { report } = await ingest(fake, ATHENA_KEY, THREE_ROWS);

    expect(report).toMatchObject({
      success: false,
      outcome: "incomplete",
      error: "Incomplete result: read 3 records, Athena returned 5 rows",
      reconciliation: { status: "incomplete", expected: 5, read: 3, recordedBy: "ingest" },
    });
    expect(fake.watermarks.get(BUCKET)).toBeUndefined();
    expect(fake.metrics.files[0]?.incomplete).toBe(true);
    expect(fake.logs.some((line) => String(line.message).startsWith("Incomplete result"))).toBe(
      true,
    );
  });

  it("leaves the verdict pending, and the watermark where it was, while Athena's count is unknown", async () => {
    const fake = createFakeIngest({ lookups: LOOKUPS });
    fake.source.putManifest(BUCKET, QUERY_ID, manifest());

    const { report } = await ingest(fake, ATHENA_KEY, THREE_ROWS);

    expect(report).toMatchObject({
      success: true,
      outcome: "synced",
      reconciliation: { status: "pending", read: 3 },
    });
    expect(fake.watermarks.get(BUCKET)).toBeUndefined();
  });

  it("records the verdict itself when Athena's count arrives while the report is being written", async () => {
    const fake = createFakeIngest({ lookups: LOOKUPS });
    fake.source.putManifest(BUCKET, QUERY_ID, manifest());
    // The start function records OutputRows after the ingest's first look, before its second.
    const readManifest = fake.source.readManifest.bind(fake.source);
    let reads = 0;
    fake.source.readManifest = async (bucket, queryExecutionId) => {
      const raw = await readManifest(bucket, queryExecutionId);
      reads++;
      // Reads: the run options, the verdict before the report, then the second look.
      return reads < 3 ? raw : { ...(raw as RunManifest), outputRows: 3 };
    };

    const { report } = await ingest(fake, ATHENA_KEY, THREE_ROWS);

    expect(reads).toBe(3);
    expect(report.reconciliation).toEqual({
      status: "complete",
      expected: 3,
      read: 3,
      recordedBy: "ingest",
    });
    expect(fake.artifacts.report(objectRef(ATHENA_KEY))?.reconciliation?.status).toBe("complete");
    expect(fake.watermarks.get(BUCKET)).toMatchObject({ lastCompleteDate: "2025-12-10" });
  });

  it("does not reconcile a copy of the result under another prefix, such as a re-dropped rejects file", async () => {
    const fake = createFakeIngest({ lookups: LOOKUPS });
    fake.source.putManifest(BUCKET, QUERY_ID, manifest({ outputRows: 42 }));

    const { report } = await ingest(fake, `reprocess/${QUERY_ID}.csv`, THREE_ROWS);

    expect(report).toMatchObject({
      success: true,
      outcome: "synced",
      reconciliation: { status: "not-reconciled" },
    });
    expect(fake.metrics.files[0]?.incomplete).toBe(false);
  });

  it("keeps the written report when the second look at the manifest fails", async () => {
    const fake = createFakeIngest({ lookups: LOOKUPS });
    fake.source.putManifest(BUCKET, QUERY_ID, manifest());
    const readManifest = fake.source.readManifest.bind(fake.source);
    let reads = 0;
    // Reads: the run options, the verdict before the report, then the second look.
    fake.source.readManifest = async (bucket, queryExecutionId) => {
      if (++reads === 3) throw new Error("SlowDown");
      return readManifest(bucket, queryExecutionId);
    };

    const { report } = await ingest(fake, ATHENA_KEY, THREE_ROWS);

    expect(report).toMatchObject({ success: true, reconciliation: { status: "pending" } });
    expect(fake.artifacts.report(objectRef(ATHENA_KEY))).toMatchObject({ outcome: "synced" });
  });

  it("says a manual drop is not reconciled, and why", async () => {
    const fake = createFakeIngest({ lookups: LOOKUPS });

    const { report } = await ingest(fake, MANUAL_KEY, THREE_ROWS);

    expect(report.reconciliation).toEqual({
      status: "not-reconciled",
      reason: "manual drop: no run manifest, so no Athena row count to compare with",
    });
  });
});

describe("ingestObject of a body that breaks mid-file", () => {
  it("resumes a body that breaks mid-file and ends as an unbroken run, counting and logging the resume", async () => {
    const days = Array.from({ length: 28 }, (_, i) => `2025-11-${String(i + 1).padStart(2, "0")}`);
    const body = buildCsv(
      days.map((day, i) => csvRow({ report_date: day, impressions: 1000 + i })),
    );
    const unbroken = createFakeIngest({ lookups: LOOKUPS, batchSize: 7, chunkSize: 100 });
    const broken = createFakeIngest({ lookups: LOOKUPS, batchSize: 7, chunkSize: 100 });
    broken.source.breakBodies({ afterBytes: 1_234 });

    const expected = await ingest(unbroken, MANUAL_KEY, body);
    const { report } = await ingest(broken, MANUAL_KEY, body);

    const { startedAt, finishedAt, duration, streamResumes, ...counts } = report;
    const {
      startedAt: _s,
      finishedAt: _f,
      duration: _d,
      streamResumes: _r,
      ...expectedCounts
    } = expected.report;
    expect(counts).toEqual(expectedCounts);
    expect(streamResumes).toBe(1);
    expect(expected.report.streamResumes).toBe(0);
    expect(broken.entries.comparableEntries()).toEqual(unbroken.entries.comparableEntries());
    expect(broken.logs.filter((line) => line.message === "Source stream broke; resuming")).toEqual([
      expect.objectContaining({
        level: "warn",
        key: MANUAL_KEY,
        byteOffset: 1_234,
        attempt: 1,
        attempts: 3,
        error: "socket hang up",
      }),
    ]);
  });

  it("fails the object for a retry, with the resumes in the report, when the body keeps breaking", async () => {
    const fake = createFakeIngest({ lookups: LOOKUPS });
    fake.put(MANUAL_KEY, THREE_ROWS);
    fake.source.breakBodies({ afterBytes: 50, count: 4 });
    const object = objectRef(MANUAL_KEY);

    const ingesting = ingestObject(FileRun.start(object), fake.deps, invocationOf(fake));

    await expect(ingesting).rejects.toBeInstanceOf(ObjectUnreadableError);
    expect(fake.artifacts.report(object)).toMatchObject({
      outcome: "failed",
      streamResumes: 3,
      error: `Reading s3://${BUCKET}/${MANUAL_KEY} failed at byte 200 after 3 resume(s) of 3: socket hang up`,
    });
  });
});
