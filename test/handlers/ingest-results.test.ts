import { CloudWatchClient, PutMetricDataCommand } from "@aws-sdk/client-cloudwatch";
import { DeleteObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import type { S3Event } from "aws-lambda";
import { mockClient } from "aws-sdk-client-mock";
import { parse } from "csv-parse/sync";
import type { Document } from "mongodb";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { MAX_RECORD_BYTES } from "../../handlers/ingest/csv-rows";
import { buildCsv, csvRow, INGEST_COLUMNS } from "../helpers/ingest-csv";
import { order, seedLookups, trackingScript } from "../helpers/ingest-fixtures";
import {
  BUCKET,
  type IngestHarness,
  lambdaContext,
  startIngestHarness,
} from "../helpers/ingest-harness";
import { s3Event, s3TestEvent } from "../helpers/s3-event";

const cloudwatch = mockClient(CloudWatchClient);
let harness: IngestHarness;
let handler: Awaited<ReturnType<IngestHarness["loadHandler"]>>;

const QUERY_ID = "0b6f1a2c-3d4e-4f50-8a6b-7c8d9e0f1a2b";

beforeAll(async () => {
  harness = await startIngestHarness();
  handler = await harness.loadHandler();
});
afterAll(async () => {
  await harness?.stop();
});
beforeEach(async () => {
  cloudwatch.reset();
  cloudwatch.on(PutMetricDataCommand).resolves({});
  harness.logs.length = 0;
  await harness.clearDb();
  await harness.s3.client.send(
    new DeleteObjectCommand({ Bucket: BUCKET, Key: "state/watermark.json" }),
  );
});

async function entries(): Promise<Document[]> {
  return harness.db
    .collection("performance_entries")
    .find({}, { projection: { _id: 0 } })
    .sort({ orderId: 1, itemPath: 1, dateStart: 1 })
    .toArray();
}

type Report = Record<string, unknown> & { stats: Record<string, number> };
const report = (key: string) => harness.readJson<Report>(`reports/${key}.json`);

/** One order reached through a tracking script, so rows of `cr_spring-sale_*` resolve. */
async function seedSpringSale() {
  const springSale = order();
  await seedLookups(harness.db, {
    orders: [springSale],
    trackingScripts: [
      trackingScript(),
      trackingScript({
        creativeId: "cr_spring-sale_728x90",
        creative: { name: "Spring Sale 728x90" },
      }),
    ],
  });
  return springSale;
}

describe("ingestResults: writing entries", () => {
  it("upserts a resolved row with the spec's fields, reports it and publishes one metrics call", async () => {
    const springSale = await seedSpringSale();
    const event = await harness.putObject("reprocess/day.csv", buildCsv([csvRow()]));

    const response = await handler(event, lambdaContext);

    expect(response).toMatchObject({
      success: true,
      dateRange: { start: "2025-12-10", end: "2025-12-10" },
      stats: { rowsFromAthena: 1, synced: 1, skipped: 0, errors: 0 },
      objects: [{ status: "ingested", key: "reprocess/day.csv" }],
    });
    const [entry, ...others] = await entries();
    expect(others).toEqual([]);
    expect(entry).toEqual({
      orderId: springSale._id.toString(),
      itemPath: "tracking-display",
      dateStart: new Date("2025-12-10T00:00:00.000Z"),
      source: "automated",
      contributions: [
        {
          key: '["cr_spring-sale_300x250","chireader","website","300x250"]',
          creativeId: "cr_spring-sale_300x250",
          publicationCode: "chireader",
          channel: "website",
          adSize: "300x250",
          itemName: "Spring Sale 300x250",
          impressions: 1000,
          clicks: 10,
          viewableImpressions: 800,
          uniqueIps: 700,
          rev: 1,
          run: expect.any(String),
          line: 2,
        },
      ],
      metrics: { impressions: 1000, clicks: 10, ctr: 1, viewability: 80, reach: 700 },
      itemName: "Spring Sale 300x250",
      dimensions: "300x250",
      dateEnd: new Date("2025-12-10T23:59:59.999Z"),
      campaignId: "spring-sale",
      publicationId: 1035,
      publicationName: "Chicago Reader",
      channel: "display",
      enteredBy: "lambda-tracking-sync",
      enteredAt: expect.any(Date),
      createdAt: expect.any(Date),
      updatedAt: expect.any(Date),
    });
    expect(await report("reprocess/day.csv")).toMatchObject({
      success: true,
      outcome: "synced",
      dryRun: false,
      stats: { rowsFromAthena: 1, synced: 1, skipped: 0, errors: 0 },
      inserted: 1,
      updated: 0,
      unchanged: 0,
      source: { bucket: BUCKET, key: "reprocess/day.csv", eTag: expect.any(String) },
      progress: { rows: 1, line: 3 },
    });
    expect(await harness.readText("rejects/reprocess/day.csv")).toBeUndefined();
    expect(cloudwatch).toHaveReceivedCommandTimes(PutMetricDataCommand, 1);
    expect(cloudwatch).toHaveReceivedCommandWith(PutMetricDataCommand, {
      Namespace: "EmpowerLocal/TrackingSync",
      MetricData: expect.arrayContaining([
        expect.objectContaining({ MetricName: "RowsSynced", Value: 1 }),
        expect.objectContaining({ MetricName: "RowsSkipped", Value: 0 }),
        expect.objectContaining({ MetricName: "Errors", Value: 0 }),
        expect.objectContaining({ MetricName: "Duration", Unit: "Milliseconds" }),
        expect.objectContaining({ MetricName: "RowsInserted", Value: 1 }),
        expect.objectContaining({ MetricName: "RowsUpdated", Value: 0 }),
        expect.objectContaining({ MetricName: "RowsUnchanged", Value: 0 }),
      ]),
    });
  });

  it("combines several creatives on one entry and keeps the others when a file holds only some", async () => {
    await seedSpringSale();
    const both = await harness.putObject(
      "reprocess/both.csv",
      buildCsv([
        csvRow({ impressions: 1000, clicks: 10, viewable_impressions: 800, unique_ips: 700 }),
        csvRow({
          creative_id: "cr_spring-sale_728x90",
          ad_size: "728x90",
          impressions: 3000,
          clicks: 50,
          viewable_impressions: 1200,
          unique_ips: 900,
        }),
      ]),
    );
    await handler(both, lambdaContext);

    const onlyFirst = await harness.putObject(
      "reprocess/only-300.csv",
      buildCsv([
        csvRow({ impressions: 2000, clicks: 30, viewable_impressions: 1000, unique_ips: 1100 }),
      ]),
    );
    await handler(onlyFirst, lambdaContext);

    const [entry, ...others] = await entries();
    expect(others).toEqual([]);
    expect(entry?.contributions.map((c: Document) => [c.creativeId, c.impressions])).toEqual([
      ["cr_spring-sale_300x250", 2000],
      ["cr_spring-sale_728x90", 3000],
    ]);
    expect(entry?.metrics).toEqual({
      impressions: 5000,
      clicks: 80,
      ctr: 1.6,
      viewability: 44,
      reach: 2000,
    });
    expect(entry?.itemName).toBe("Spring Sale 300x250, Spring Sale 728x90");
    expect(entry?.dimensions).toBe("300x250, 728x90");
  });

  it("changes nothing, updatedAt included, when the same event is delivered again", async () => {
    await seedSpringSale();
    const event = await harness.putObject(
      "reprocess/twice.csv",
      buildCsv([csvRow(), csvRow({ report_date: "2025-12-11" })]),
    );
    await handler(event, lambdaContext);
    const first = await entries();

    await handler(event, lambdaContext);

    expect(await entries()).toEqual(first);
    expect(await report("reprocess/twice.csv")).toMatchObject({
      inserted: 0,
      updated: 0,
      unchanged: 2,
    });
  });

  it("ends with the same entries and no duplicates when two deliveries run concurrently", async () => {
    await seedSpringSale();
    const rows = ["2025-12-10", "2025-12-11", "2025-12-12"].flatMap((day) => [
      csvRow({ report_date: day }),
      csvRow({
        report_date: day,
        creative_id: "cr_spring-sale_728x90",
        ad_size: "728x90",
        impressions: 5,
      }),
    ]);
    const event = await harness.putObject("reprocess/concurrent.csv", buildCsv(rows));

    await Promise.all([handler(event, lambdaContext), handler(event, lambdaContext)]);

    const stored = await entries();
    expect(stored).toHaveLength(3);
    expect(stored.map((entry) => entry.metrics.impressions)).toEqual([1005, 1005, 1005]);
    expect(stored.map((entry) => entry.contributions.length)).toEqual([2, 2, 2]);
  });

  it("keeps creative ids like $x and a.b as data", async () => {
    await seedLookups(harness.db, {
      orders: [order({ campaignId: "camp" })],
      trackingScripts: [
        trackingScript({ creativeId: "$x", campaignId: "camp", channel: "display" }),
        trackingScript({ creativeId: "a.b", campaignId: "camp", channel: "display", creative: {} }),
      ],
    });
    const event = await harness.putObject(
      "reprocess/odd-ids.csv",
      buildCsv([csvRow({ creative_id: "$x" }), csvRow({ creative_id: "a.b", impressions: 5 })]),
    );

    await handler(event, lambdaContext);

    const [entry] = await entries();
    expect(entry?.contributions.map((c: Document) => c.creativeId)).toEqual(["$x", "a.b"]);
    expect(entry?.metrics.impressions).toBe(1005);
    expect(entry?.itemName).toBe("Spring Sale 300x250, a.b");
  });

  it("resolves a publication code from the publications collection", async () => {
    const target = order({
      campaignId: "local",
      publicationId: 4242,
      publicationName: "Local News",
    });
    await seedLookups(harness.db, {
      orders: [target],
      publications: [{ publicationId: 4242, publicationCode: "LocalNews" }],
    });
    const event = await harness.putObject(
      "reprocess/collection-code.csv",
      buildCsv([csvRow({ creative_id: "cr_local_1", publication_code: "localnews" })]),
    );

    await handler(event, lambdaContext);

    expect(await entries()).toMatchObject([
      { orderId: target._id.toString(), publicationId: 4242, itemPath: "digital-cr_local_1" },
    ]);
  });
});

describe("ingestResults: the CSV", () => {
  it("accepts a BOM, CRLF, unquoted fields, reordered and extra columns", async () => {
    await seedSpringSale();
    const columns = ["note", ...[...INGEST_COLUMNS].reverse()];
    const text = buildCsv([{ ...csvRow(), note: "hand made" }], {
      columns,
      headerNames: columns.map((name) => ` ${name.toUpperCase()} `),
      quoteAll: false,
      lineEnding: "\r\n",
      bom: true,
    });
    const event = await harness.putObject("reprocess/hand-made.csv", text);

    await handler(event, lambdaContext);

    expect(await entries()).toMatchObject([
      { metrics: { impressions: 1000, reach: 700 }, dimensions: "300x250" },
    ]);
  });

  it("succeeds with zero rows on a header-only file", async () => {
    const event = await harness.putObject("reprocess/empty.csv", buildCsv([]));

    const response = await handler(event, lambdaContext);

    expect(response).toMatchObject({ success: true, stats: { rowsFromAthena: 0, synced: 0 } });
    expect(await report("reprocess/empty.csv")).toMatchObject({
      success: true,
      stats: { rowsFromAthena: 0 },
    });
  });

  it("fails a file missing required columns as a whole, names them, writes nothing and does not throw", async () => {
    await seedSpringSale();
    const columns = INGEST_COLUMNS.filter((name) => name !== "clicks" && name !== "unique_ips");
    const event = await harness.putObject(
      "reprocess/missing.csv",
      buildCsv([csvRow()], { columns }),
    );

    const response = await handler(event, lambdaContext);

    expect(response).toMatchObject({ success: false, objects: [{ status: "rejected" }] });
    expect(await report("reprocess/missing.csv")).toMatchObject({
      success: false,
      outcome: "rejected",
      missingColumns: ["clicks", "unique_ips"],
      error: expect.stringContaining("clicks, unique_ips"),
    });
    expect(await entries()).toEqual([]);
  });

  it("turns malformed rows into per-row errors with reasons and line numbers in the rejects", async () => {
    await seedSpringSale();
    const good = buildCsv([csvRow()]);
    const text = [
      good.trimEnd(),
      '"2025-12-10","cr_spring-sale_300x250","chireader","website"',
      '"2025-12-10","cr_spring-sale_300x250","chireader","website","300x250","1.5","1","1","1"',
      '"2025-02-30","cr_spring-sale_300x250","chireader","website","300x250","1","1","1","1"',
      '"2025-12-10","","chireader",,"","1","1","1","1"',
      '"2025-12-11","cr_spring-sale_300x250","chireader","website","300x250","10","1","1","1"',
      '"2025-12-10","cr_spring-sale_300x250","chireader","website","300x250","1","1","1","1',
      "",
    ].join("\n");
    const event = await harness.putObject("reprocess/malformed.csv", text);

    const response = await handler(event, lambdaContext);

    expect(response).toMatchObject({
      success: true,
      stats: { rowsFromAthena: 7, synced: 2, errors: 5 },
    });
    expect(await report("reprocess/malformed.csv")).toMatchObject({
      errorsByReason: {
        "wrong-field-count": 1,
        "invalid-impressions": 1,
        "invalid-report-date": 1,
        "missing-creative-id": 1,
        "unclosed-quote": 1,
      },
      rejects: { key: "rejects/reprocess/malformed.csv", rows: 5 },
    });
    expect(await harness.readText("rejects/reprocess/malformed.csv")).toBe(
      [
        '"report_date","creative_id","publication_code","channel","ad_size","impressions","clicks","viewable_impressions","unique_ips","line","last_line","reject_reason","raw_record"',
        '"2025-12-10","cr_spring-sale_300x250","chireader","website",,,,,,3,3,"wrong-field-count","""2025-12-10"",""cr_spring-sale_300x250"",""chireader"",""website"""',
        '"2025-12-10","cr_spring-sale_300x250","chireader","website","300x250","1.5","1","1","1",4,4,"invalid-impressions",',
        '"2025-02-30","cr_spring-sale_300x250","chireader","website","300x250","1","1","1","1",5,5,"invalid-report-date",',
        '"2025-12-10","","chireader",,"","1","1","1","1",6,6,"missing-creative-id",',
        ',,,,,,,,,8,8,"unclosed-quote","""2025-12-10"",""cr_spring-sale_300x250"",""chireader"",""website"",""300x250"",""1"",""1"",""1"",""1"',
        "",
      ].join("\n"),
    );
  });
});

describe("ingestResults: a quote missing its closing quote", () => {
  it("keeps the whole text of the record that swallowed the next line, and accounts for every line", async () => {
    await seedSpringSale();
    const [header, first, broken, swallowed, last] = buildCsv([
      csvRow(),
      csvRow({ impressions: 5 }),
      csvRow({ report_date: "2025-12-09" }),
      csvRow({ report_date: "2025-12-08" }),
    ]).split("\n");
    // Athena's dialect with the last field's closing quote missing: the line after it
    // becomes part of that field, and the record has more fields than the header.
    const open = broken?.slice(0, -1);
    const text = [header, first, open, swallowed, last, ""].join("\n");
    const event = await harness.putObject("reprocess/swallowed.csv", text);

    const response = await handler(event, lambdaContext);

    expect(response).toMatchObject({
      success: true,
      stats: { rowsFromAthena: 3, synced: 2, skipped: 0, errors: 1 },
    });
    expect(await report("reprocess/swallowed.csv")).toMatchObject({
      errorsByReason: { "wrong-field-count": 1 },
      // Five lines, three records: the error record takes two of them.
      lines: { read: 5, header: 1, synced: 2, skipped: 0, errors: 2, blank: 0, accounted: 5 },
      rejects: { key: "rejects/reprocess/swallowed.csv", rows: 1 },
    });
    const rejects = parse((await harness.readText("rejects/reprocess/swallowed.csv")) ?? "", {
      columns: true,
    }) as Record<string, string>[];
    expect(rejects).toHaveLength(1);
    expect(rejects[0]).toMatchObject({
      report_date: "2025-12-10",
      line: "3",
      last_line: "4",
      reject_reason: "wrong-field-count",
      raw_record: `${open}\n${swallowed}`,
    });
    // The swallowed row's values are in the rejects file, and its day was not synced.
    expect(rejects[0]?.raw_record).toContain('"2025-12-09"');
    expect((await entries()).map((entry) => entry.dateStart.toISOString().slice(0, 10))).toEqual([
      "2025-12-08",
      "2025-12-10",
    ]);
  });
});

describe("ingestResults: a record too large to hold", () => {
  it("ends the file at a quote that never closes within MAX_RECORD_BYTES, as one error row", async () => {
    await seedSpringSale();
    const good = buildCsv([csvRow()]).trimEnd();
    // Unquoted lines cannot close the open quote: the rest of the file is one record.
    const rest = "2025-12-10,cr_spring-sale_300x250,chireader,website,300x250,1,1,1,1\n";
    const repeats = Math.ceil((2 * MAX_RECORD_BYTES) / rest.length);
    const text = `${good}\n"2025-12-10,cr_open\n${rest.repeat(repeats)}`;
    const event = await harness.putObject("reprocess/open-quote.csv", text);

    const response = await handler(event, lambdaContext);

    expect(response).toMatchObject({
      success: true,
      stats: { rowsFromAthena: 2, synced: 1, errors: 1 },
    });
    expect(await report("reprocess/open-quote.csv")).toMatchObject({
      errorsByReason: { "record-too-large": 1 },
      rejects: { key: "rejects/reprocess/open-quote.csv", rows: 1 },
    });
    const rejects = (await harness.readText("rejects/reprocess/open-quote.csv")) ?? "";
    // Its text runs on over the lines it swallowed, up to MAX_RECORD_BYTES and no further.
    expect(rejects.split("\n").at(1)).toBe(
      `,,,,,,,,,3,${3 + repeats},"record-too-large","""2025-12-10,cr_open`,
    );
    const raw = text.slice(good.length + 1, good.length + 1 + MAX_RECORD_BYTES);
    expect(rejects.endsWith(`${raw.replaceAll('"', '""')}"\n`)).toBe(true);
    expect(Buffer.byteLength(rejects)).toBeLessThan(MAX_RECORD_BYTES + 1024);
  });
});

describe("ingestResults: skipped rows, rejects and reprocess", () => {
  it("skips unresolvable rows with reasons, and a fixed rejects file re-dropped into reprocess/ syncs", async () => {
    await seedSpringSale();
    await seedLookups(harness.db, {
      orders: [
        order({ campaignId: "twice" }),
        order({ campaignId: "TWICE" }),
        order({ campaignId: "xabcx" }),
      ],
    });
    const event = await harness.putObject(
      "athena-results/nightly.csv",
      buildCsv([
        csvRow(),
        csvRow({ publication_code: "nowhere" }),
        csvRow({ creative_id: "cr_abc_1" }),
        csvRow({ creative_id: "cr_twice_1", channel: null, ad_size: "" }),
      ]),
    );

    const response = await handler(event, lambdaContext);

    expect(response).toMatchObject({
      stats: { rowsFromAthena: 4, synced: 1, skipped: 3, errors: 0 },
    });
    expect(await report("athena-results/nightly.csv")).toMatchObject({
      skippedByReason: { "unknown-publication": 1, "order-not-found": 1, "ambiguous-order": 1 },
    });
    const rejects = await harness.readText("rejects/athena-results/nightly.csv");
    expect(rejects?.split("\n").slice(1)).toEqual([
      '"2025-12-10","cr_spring-sale_300x250","nowhere","website","300x250","1000","10","800","700",3,3,"unknown-publication",',
      '"2025-12-10","cr_abc_1","chireader","website","300x250","1000","10","800","700",4,4,"order-not-found",',
      '"2025-12-10","cr_twice_1","chireader",,"","1000","10","800","700",5,5,"ambiguous-order",',
      "",
    ]);

    // Fix the data the rows pointed at, then drop the rejects file as is into reprocess/.
    await harness.db.collection("publication_insertion_orders").deleteMany({ campaignId: "TWICE" });
    await harness.db
      .collection("publication_insertion_orders")
      .updateOne({ campaignId: "xabcx" }, { $set: { campaignId: "abc" } });
    const fixed = (rejects ?? "").replace('"nowhere"', '"chireader"');
    const again = await harness.putObject("reprocess/nightly-fixed.csv", fixed);

    const second = await handler(again, lambdaContext);

    expect(second).toMatchObject({
      stats: { rowsFromAthena: 3, synced: 3, skipped: 0, errors: 0 },
    });
    const stored = await entries();
    expect(stored).toHaveLength(3);
    const twice = stored.find((entry) => entry.campaignId === "twice");
    // NULL channel and "" ad size survived the round trip as null and "".
    expect(twice?.contributions[0]).toMatchObject({ channel: null, adSize: "" });
    expect(twice?.dimensions).toBeUndefined();
    expect(await harness.readText("rejects/reprocess/nightly-fixed.csv")).toBeUndefined();
  });

  it("writes nothing under an ingest prefix", async () => {
    await seedSpringSale();
    const event = await harness.putObject(
      "reprocess/outputs.csv",
      buildCsv([csvRow(), csvRow({ publication_code: "nowhere" })]),
    );

    await handler(event, lambdaContext);

    const { ListObjectsV2Command } = await import("@aws-sdk/client-s3");
    const listed = await harness.s3.client.send(new ListObjectsV2Command({ Bucket: BUCKET }));
    const keys = (listed.Contents ?? []).map((object) => object.Key ?? "");
    expect(keys.filter((key) => key.includes("outputs")).sort()).toEqual([
      "rejects/reprocess/outputs.csv",
      "reports/reprocess/outputs.csv.json",
      "reprocess/outputs.csv",
    ]);
  });
});

describe("ingestResults: events", () => {
  it("handles every record of an event and sums the response", async () => {
    await seedSpringSale();
    const first = await harness.putObject("reprocess/a.csv", buildCsv([csvRow()]));
    const second = await harness.putObject(
      "reprocess/b.csv",
      buildCsv([csvRow({ report_date: "2025-12-12" }), csvRow({ publication_code: "nowhere" })]),
    );
    const event: S3Event = { Records: [...first.Records, ...second.Records] };

    const response = await handler(event, lambdaContext);

    expect(response).toMatchObject({
      success: true,
      dateRange: { start: "2025-12-10", end: "2025-12-12" },
      stats: { rowsFromAthena: 3, synced: 2, skipped: 1, errors: 0 },
      objects: [
        { key: "reprocess/a.csv", status: "ingested" },
        { key: "reprocess/b.csv", status: "ingested" },
      ],
    });
    expect(await entries()).toHaveLength(2);
  });

  it("ignores metadata files, keys outside the prefixes, test events and empty events", async () => {
    const metadata = s3Event(BUCKET, `athena-results/${QUERY_ID}.csv.metadata`);
    const outside = s3Event(BUCKET, "reports/reprocess/a.csv.json");

    const response = await handler(
      { Records: [...metadata.Records, ...outside.Records] },
      lambdaContext,
    );
    await handler(s3TestEvent(BUCKET) as unknown as S3Event, lambdaContext);
    await handler({ Records: [] }, lambdaContext);

    expect(response).toMatchObject({
      success: true,
      stats: { rowsFromAthena: 0 },
      objects: [{ status: "ignored" }, { status: "ignored" }],
    });
    const ignoredLines = harness.logs.filter((line) => line.includes("Object ignored"));
    expect(ignoredLines).toHaveLength(2);
    expect(cloudwatch).toHaveReceivedCommandTimes(PutMetricDataCommand, 0);
  });

  it("decodes keys with spaces and plus signs as S3 encodes them", async () => {
    await seedSpringSale();
    const event = await harness.putObject("reprocess/red flower+1.csv", buildCsv([csvRow()]));
    expect(event.Records[0]?.s3.object.key).toBe("reprocess/red+flower%2B1.csv");

    await handler(event, lambdaContext);

    expect(await report("reprocess/red flower+1.csv")).toMatchObject({
      success: true,
      source: { key: "reprocess/red flower+1.csv" },
    });
  });

  it("puts the key (and query id) on every log line and caps per-row warnings", async () => {
    await seedSpringSale();
    const rows = Array.from({ length: 30 }, () => csvRow({ publication_code: "nowhere" }));
    await harness.s3.client.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: `runs/${QUERY_ID}.json`,
        Body: JSON.stringify(manifest({ dryRun: false, end: "2025-12-10" })),
      }),
    );
    const event = await harness.putObject(`athena-results/${QUERY_ID}.csv`, buildCsv(rows));

    await handler(event, lambdaContext);

    const lines = harness.logs.map((line) => JSON.parse(line));
    const objectLines = lines.filter((line) => line.key !== undefined);
    expect(objectLines.length).toBeGreaterThan(2);
    for (const line of objectLines) {
      expect(line).toMatchObject({ bucket: BUCKET, key: `athena-results/${QUERY_ID}.csv` });
    }
    expect(lines.filter((line) => line.message === "Row skipped")).toHaveLength(20);
    expect(lines.find((line) => line.message === "Ingest finished")).toMatchObject({
      queryExecutionId: QUERY_ID,
      stats: { rowsFromAthena: 30, skipped: 30 },
    });
  });
});

function manifest({ dryRun, end, qid = QUERY_ID }: { dryRun: boolean; end: string; qid?: string }) {
  return {
    version: 1,
    queryExecutionId: qid,
    request: {},
    dateRange: { start: end, end },
    dryRun,
    attempt: 1,
    trigger: { kind: "schedule", id: "event-1" },
    startedAt: "2025-12-11T06:00:00.000Z",
  };
}

/** `outputRows`: Athena's row count, as the start function records it once the query SUCCEEDED. */
async function putManifest(qid: string, dryRun: boolean, end: string, outputRows?: number) {
  await harness.s3.client.send(
    new PutObjectCommand({
      Bucket: BUCKET,
      Key: `runs/${qid}.json`,
      Body: JSON.stringify({
        ...manifest({ dryRun, end, qid }),
        ...(outputRows !== undefined ? { outputRows } : {}),
      }),
    }),
  );
}

describe("ingestResults: dry runs", () => {
  it("writes nothing to MongoDB when the object is tagged dryRun, and reports what would change", async () => {
    await seedSpringSale();
    const real = await harness.putObject("reprocess/base.csv", buildCsv([csvRow()]));
    await handler(real, lambdaContext);
    const before = await entries();
    cloudwatch.resetHistory();

    const event = await harness.putObject(
      "reprocess/preview.csv",
      buildCsv([
        csvRow(),
        csvRow({ report_date: "2025-12-11" }),
        csvRow({ creative_id: "cr_spring-sale_728x90", ad_size: "728x90", impressions: 5 }),
      ]),
      { tagging: "DryRun=YES" },
    );

    const response = await handler(event, lambdaContext);

    expect(await entries()).toEqual(before);
    expect(response).toMatchObject({ success: true, stats: { synced: 3 } });
    expect(await report("reprocess/preview.csv")).toMatchObject({
      dryRun: true,
      dryRunSource: "tag",
      inserted: 1,
      updated: 1,
      unchanged: 0,
      fieldChanges: {
        contributions: 1,
        "metrics.impressions": 1,
        "metrics.ctr": 1,
        "metrics.viewability": 1,
        itemName: 1,
        dimensions: 1,
      },
    });
    expect(cloudwatch).toHaveReceivedCommandTimes(PutMetricDataCommand, 0);
  });

  it("counts an identical file as unchanged in a dry run", async () => {
    await seedSpringSale();
    const body = buildCsv([csvRow(), csvRow({ report_date: "2025-12-11" })]);
    await handler(await harness.putObject("reprocess/same.csv", body), lambdaContext);

    await handler(
      await harness.putObject("reprocess/same-dry.csv", body, { tagging: "dryrun=1" }),
      lambdaContext,
    );

    expect(await report("reprocess/same-dry.csv")).toMatchObject({
      inserted: 0,
      updated: 0,
      unchanged: 2,
    });
  });

  it("is a dry run when the run manifest says so, and does not move the watermark", async () => {
    await seedSpringSale();
    const qid = "11111111-2222-4333-8444-555555555555";
    await putManifest(qid, true, "2025-12-10");
    const event = await harness.putObject(`athena-results/${qid}.csv`, buildCsv([csvRow()]));

    await handler(event, lambdaContext);

    expect(await entries()).toEqual([]);
    expect(await report(`athena-results/${qid}.csv`)).toMatchObject({
      dryRun: true,
      dryRunSource: "manifest",
      queryExecutionId: qid,
      inserted: 1,
    });
    expect(await harness.readJson("state/watermark.json")).toBeUndefined();
  });
});

describe("ingestResults: watermark", () => {
  it("advances to the manifest's range end after a real run and never moves backwards", async () => {
    await seedSpringSale();
    const later = "22222222-2222-4333-8444-555555555555";
    const earlier = "33333333-2222-4333-8444-555555555555";
    await putManifest(later, false, "2025-12-10", 1);
    await putManifest(earlier, false, "2025-12-08", 1);

    await handler(
      await harness.putObject(`athena-results/${later}.csv`, buildCsv([csvRow()])),
      lambdaContext,
    );
    await handler(
      await harness.putObject(`athena-results/${earlier}.csv`, buildCsv([csvRow()])),
      lambdaContext,
    );
    // A manual drop has no manifest and leaves the watermark alone.
    await handler(
      await harness.putObject("reprocess/manual.csv", buildCsv([csvRow()])),
      lambdaContext,
    );

    expect(await harness.readJson("state/watermark.json")).toMatchObject({
      lastCompleteDate: "2025-12-10",
      queryExecutionId: later,
      sourceKey: `athena-results/${later}.csv`,
    });
  });
});

describe("ingestResults: watermark of a one-publication run", () => {
  it("does not advance the watermark for a run narrowed to one publicationCode", async () => {
    await seedSpringSale();
    const qid = "44444444-2222-4333-8444-555555555555";
    await harness.s3.client.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: `runs/${qid}.json`,
        Body: JSON.stringify({
          ...manifest({ dryRun: false, end: "2025-12-10", qid }),
          publicationCode: "chireader",
        }),
      }),
    );

    await handler(
      await harness.putObject(`athena-results/${qid}.csv`, buildCsv([csvRow()])),
      lambdaContext,
    );

    expect(await entries()).toHaveLength(1);
    expect(await report(`athena-results/${qid}.csv`)).toMatchObject({ success: true });
    expect(await harness.readJson("state/watermark.json")).toBeUndefined();
  });
});

describe("ingestResults: metrics", () => {
  it("logs a metrics failure and still syncs", async () => {
    await seedSpringSale();
    cloudwatch.on(PutMetricDataCommand).rejects(new Error("throttled"));
    const event = await harness.putObject("reprocess/metrics.csv", buildCsv([csvRow()]));

    const response = await handler(event, lambdaContext);

    expect(response).toMatchObject({ success: true, stats: { synced: 1 } });
    expect(await entries()).toHaveLength(1);
    expect(harness.logs.some((line) => line.includes("Publishing metrics failed"))).toBe(true);
  });
});
