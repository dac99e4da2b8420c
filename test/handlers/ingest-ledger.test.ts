import { CloudWatchClient, PutMetricDataCommand } from "@aws-sdk/client-cloudwatch";
import { mockClient } from "aws-sdk-client-mock";
import type { Document } from "mongodb";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { factIdentity, provenancePipeline } from "../../handlers/ingest/ledger";
import { upgradeLedger } from "../../handlers/ingest/ledger-upgrade";
import { createRandom } from "../../local/random";
import { asLedgerReadsIt } from "../helpers/facts";
import { buildCsv, type CsvRowValues, csvRow } from "../helpers/ingest-csv";
import { order, seedLookups, trackingScript } from "../helpers/ingest-fixtures";
import { type IngestHarness, lambdaContext, startIngestHarness } from "../helpers/ingest-harness";

/**
 * The facts ledger through the real handler on the stand-ins: re-mapped creatives move
 * without double counting (within a file's day, between files, under concurrent
 * deliveries, and back), provenance names the run and line, and duplicates across
 * batches are counted once.
 */
const cloudwatch = mockClient(CloudWatchClient);
let harness: IngestHarness;
let handler: Awaited<ReturnType<IngestHarness["loadHandler"]>>;

beforeAll(async () => {
  harness = await startIngestHarness();
  handler = await harness.loadHandler({ BATCH_SIZE: "2" });
});
afterAll(async () => {
  await harness?.stop();
});
beforeEach(async () => {
  cloudwatch.reset();
  cloudwatch.on(PutMetricDataCommand).resolves({});
  await harness.clearDb();
});

const DAY = "2025-12-10";
const X = "cr_spring-sale_300x250";
const Y = "cr_spring-sale_728x90";

/** Two campaigns of one publication; X and Y are tracked for spring-sale. */
async function seedTwoCampaigns() {
  const spring = order();
  const summer = order({ campaignId: "summer-fest" });
  await seedLookups(harness.db, {
    orders: [spring, summer],
    trackingScripts: [
      trackingScript({ creativeId: X }),
      trackingScript({ creativeId: Y, creative: { name: "Spring Sale 728x90" } }),
    ],
  });
  return { spring: spring._id.toString(), summer: summer._id.toString() };
}

/** X's tracking script corrected to another campaign (or back). */
async function remap(creativeId: string, campaignId: string): Promise<void> {
  await harness.db
    .collection("tracking_scripts")
    .updateOne({ creativeId }, { $set: { campaignId } });
}

const rowX = (overrides: CsvRowValues = {}) =>
  csvRow({ creative_id: X, impressions: 1000, ...overrides });
const rowY = (overrides: CsvRowValues = {}) =>
  csvRow({ creative_id: Y, ad_size: "728x90", impressions: 2000, ...overrides });

async function ingest(key: string, rows: CsvRowValues[], run = handler) {
  await run(await harness.putObject(key, buildCsv(rows)), lambdaContext);
  return (await harness.readJson(`reports/${key}.json`)) as Document;
}

/** orderId → [creative ids, impressions] of the day's automated entries. */
async function dayEntries(day = DAY): Promise<Record<string, [string[], number]>> {
  const stored = await harness.db
    .collection("performance_entries")
    .find({ source: "automated", dateStart: new Date(`${day}T00:00:00.000Z`) })
    .toArray();
  return Object.fromEntries(
    stored.map((entry) => [
      entry.orderId,
      [entry.contributions.map((c: Document) => c.creativeId), entry.metrics.impressions],
    ]),
  );
}

async function dayTotal(day = DAY): Promise<number> {
  return Object.values(await dayEntries(day)).reduce(
    (sum, [, impressions]) => sum + impressions,
    0,
  );
}

/** The creative's one fact of the day (its identity is in `_id`). */
async function fact(creativeId: string, day = DAY): Promise<Document | null> {
  const facts = await harness.db
    .collection<{ _id: string }>("tracking_sync_facts")
    .find({ day: new Date(`${day}T00:00:00.000Z`) })
    .toArray();
  const matching = facts.filter(({ _id }) => factIdentity(_id).creativeId === creativeId);
  if (matching.length > 1) throw new Error(`${matching.length} facts of ${creativeId} on ${day}`);
  return asLedgerReadsIt(matching[0] ?? null);
}

describe("ingestResults: the facts ledger", () => {
  it("moves a re-mapped creative out of its old entry when the same file is dropped again", async () => {
    const { spring, summer } = await seedTwoCampaigns();
    await ingest("reprocess/day.csv", [rowX(), rowY()]);
    expect(await dayEntries()).toEqual({ [spring]: [[X, Y], 3000] });

    await remap(X, "summer-fest");
    const report = await ingest("reprocess/day.csv", [rowX(), rowY()]);

    expect(await dayEntries()).toEqual({ [spring]: [[Y], 2000], [summer]: [[X], 1000] });
    expect(await dayTotal()).toBe(3000);
    expect(report).toMatchObject({ moved: 1, inserted: 1, updated: 1, deleted: 0 });
    expect(await fact(X)).toMatchObject({
      orderId: summer,
      itemPath: "tracking-display",
      rev: 2,
      replaced: { orderId: spring, impressions: 1000 },
      stale: [],
    });
  });

  it("stores only what a fact needs: a first value has no stale, replaced or seen; a settled move drops its list", async () => {
    await seedTwoCampaigns();
    const raw = () =>
      harness.db.collection("tracking_sync_facts").findOne({}, { projection: { _id: 0 } });
    await ingest("reprocess/day.csv", [rowX()]);
    const first = await raw();
    expect(first).toMatchObject({ rev: 1, impressions: 1000, line: 2 });
    expect(first).not.toHaveProperty("stale");
    expect(first).not.toHaveProperty("replaced");
    expect(first).not.toHaveProperty("seen");

    // The same value read again by another run, twice: who saw it last is no longer implied.
    await ingest("reprocess/day.csv", [rowX(), rowX()]);
    const again = await raw();
    expect(again).toMatchObject({ rev: 1, run: first?.run, line: 2 });
    expect(again?.seen).toMatchObject({ line: 3, first: 2 });
    expect(again?.seen?.run).not.toBe(first?.run);

    await remap(X, "summer-fest");
    expect(await ingest("reprocess/day.csv", [rowX()])).toMatchObject({ moved: 1 });
    const moved = await raw();
    expect(moved).toMatchObject({ rev: 2, replaced: { impressions: 1000 } });
    expect(moved).not.toHaveProperty("stale");
    // The move's new value is this run's own: the seen the re-drop stored is implied again.
    expect(moved).not.toHaveProperty("seen");
  });

  it("moves a creative between two files of one day, and back, deleting the entry it leaves empty", async () => {
    const { spring, summer } = await seedTwoCampaigns();
    await ingest("reprocess/both.csv", [rowX(), rowY()]);

    await remap(X, "summer-fest");
    await ingest("reprocess/only-x.csv", [rowX({ impressions: 1100 })]);
    expect(await dayEntries()).toEqual({ [spring]: [[Y], 2000], [summer]: [[X], 1100] });

    await remap(X, "spring-sale");
    const back = await ingest("reprocess/only-x-again.csv", [rowX({ impressions: 1200 })]);
    expect(await dayEntries()).toEqual({ [spring]: [[X, Y], 3200] });
    expect(back).toMatchObject({ moved: 1, deleted: 1 });
    expect(await fact(X)).toMatchObject({ orderId: spring, rev: 3, stale: [] });
  });

  it("holds each row identity once when deliveries of re-mapped rows run concurrently", async () => {
    const { spring, summer } = await seedTwoCampaigns();
    const days = ["2025-12-10", "2025-12-11", "2025-12-12"];
    const rows = days.flatMap((day) => [rowX({ report_date: day }), rowY({ report_date: day })]);
    await ingest("reprocess/week.csv", rows);
    await remap(X, "summer-fest");

    const handlers = await Promise.all(
      [1, 2, 3].map(() => harness.loadHandler({ BATCH_SIZE: "1" })),
    );
    const events = await Promise.all([
      harness.putObject("reprocess/week-again.csv", buildCsv(rows)),
      harness.putObject("reprocess/week-x.csv", buildCsv(rows.filter((_, i) => i % 2 === 0))),
    ]);
    // The same event twice (a redelivery) and another file with the same rows, all at once.
    await Promise.all([
      handlers[0]?.(events[0], lambdaContext),
      handlers[1]?.(events[0], lambdaContext),
      handlers[2]?.(events[1], lambdaContext),
    ]);

    for (const day of days) {
      expect(await dayEntries(day)).toEqual({ [spring]: [[Y], 2000], [summer]: [[X], 1000] });
      expect(await fact(X, day)).toMatchObject({ orderId: summer, stale: [] });
    }
  });

  it("names the run and line of every contribution, and a reprocess with new numbers names the new run", async () => {
    await seedTwoCampaigns();
    const first = await ingest("reprocess/day.csv", [rowY(), rowX()]);
    const again = await ingest("reprocess/day-same.csv", [rowX(), rowY()]);
    const changed = await ingest("reprocess/day-fixed.csv", [rowX({ impressions: 999 })]);

    expect(first.run).toEqual(expect.any(String));
    expect(new Set([first.run, again.run, changed.run]).size).toBe(3);
    expect(again).toMatchObject({ unchanged: 1, updated: 0 });
    // The query the README gives: where did this entry's numbers come from.
    const [entry] = await harness.db.collection("performance_entries").find().toArray();
    const origins = await harness.db
      .collection("performance_entries")
      .aggregate(provenancePipeline({ _id: entry?._id }))
      .toArray();
    expect(origins).toEqual([
      {
        creativeId: X,
        impressions: 999,
        line: 2,
        file: expect.objectContaining({
          bucket: "tracking-sync-results",
          key: "reprocess/day-fixed.csv",
          eTag: expect.any(String),
        }),
        runStartedAt: expect.any(Date),
      },
      {
        creativeId: Y,
        impressions: 2000,
        line: 2,
        file: expect.objectContaining({ key: "reprocess/day.csv" }),
        runStartedAt: expect.any(Date),
      },
    ]);
    expect(
      await harness.db.collection("tracking_sync_runs").findOne({ _id: changed.run }),
    ).toMatchObject({
      outcome: "synced",
      finishedAt: expect.any(Date),
      counts: { rows: 1, synced: 1, updated: 1 },
    });
  });

  it("counts a duplicate row in two batches once, and the later row wins", async () => {
    const { spring } = await seedTwoCampaigns();
    // Batches of two: the duplicate of X (line 2) arrives in the second batch (line 4).
    const report = await ingest("reprocess/dup.csv", [
      rowX({ impressions: 1100 }),
      rowY(),
      rowX({ impressions: 1500 }),
    ]);

    expect(report.warnings).toEqual({ "duplicate-row-superseded": 1 });
    expect(report.stats).toMatchObject({ synced: 3 });
    expect(await dayEntries()).toEqual({ [spring]: [[X, Y], 3500] });
    // Replaced within one run: what it replaced is still the value before the run (none).
    expect(await fact(X)).toMatchObject({
      line: 4,
      impressions: 1500,
      replaced: null,
    });

    const rerun = await ingest("reprocess/dup.csv", [
      rowX({ impressions: 1100 }),
      rowY(),
      rowX({ impressions: 1500 }),
    ]);
    expect(rerun.warnings).toEqual({ "duplicate-row-superseded": 1 });

    // Another file with the same duplicate, other numbers: it replaced the first file's value.
    await ingest("reprocess/dup-fixed.csv", [
      rowX({ impressions: 1200 }),
      rowY(),
      rowX({ impressions: 1300 }),
    ]);
    expect(await fact(X)).toMatchObject({
      impressions: 1300,
      replaced: { impressions: 1500, line: 4 },
    });
  });

  it("leaves entries that are not automated alone", async () => {
    const { spring } = await seedTwoCampaigns();
    await harness.db.collection("performance_entries").insertOne({
      orderId: spring,
      itemPath: "tracking-display",
      dateStart: new Date(`${DAY}T00:00:00.000Z`),
      source: "manual",
      metrics: { impressions: 5 },
    });
    await ingest("reprocess/day.csv", [rowX()]);
    await remap(X, "summer-fest");
    await ingest("reprocess/day.csv", [rowX()]);

    expect(
      await harness.db.collection("performance_entries").findOne({ source: "manual" }),
    ).toMatchObject({ metrics: { impressions: 5 } });
    expect(await harness.db.collection("tracking_sync_facts").countDocuments()).toBe(1);
  });
});

describe("ingestResults: exact dry runs", () => {
  /** A campaign per order; two creatives per campaign, so an entry holds two rows a day. */
  async function seedCampaigns(count: number): Promise<void> {
    const orders = [];
    const scripts = [];
    for (let c = 0; c < count; c++) {
      orders.push(order({ campaignId: `camp-${c}` }));
      for (const size of ["300x250", "728x90"]) {
        scripts.push(
          trackingScript({ creativeId: `cr_camp-${c}_${size}`, campaignId: `camp-${c}` }),
        );
      }
    }
    await seedLookups(harness.db, { orders, trackingScripts: scripts });
  }

  const day = (d: number) => new Date(Date.UTC(2025, 0, 1 + d)).toISOString().slice(0, 10);
  const row = (c: number, d: number, size: string, impressions: number) =>
    csvRow({
      report_date: day(d),
      creative_id: `cr_camp-${c}_${size}`,
      ad_size: size,
      impressions,
    });

  /** A seeded shuffle (local/random.ts), so a failure reproduces. */
  function shuffled<T>(items: T[]): T[] {
    const random = createRandom(12345);
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [out[i], out[j]] = [out[j] as T, out[i] as T];
    }
    return out;
  }

  const counts = (report: Document) => ({
    inserted: report.inserted,
    updated: report.updated,
    unchanged: report.unchanged,
    moved: report.moved,
    deleted: report.deleted,
    warnings: report.warnings,
    stats: report.stats,
  });

  it("counts what the real run then does for a shuffled file of 25,000 entries, and writes nothing", {
    timeout: 240_000,
  }, async () => {
    const run = await harness.loadHandler();
    await seedCampaigns(100);
    // 100 campaigns × 250 days = 25,000 entries; half of them exist with one of their rows.
    const existing: CsvRowValues[] = [];
    const file: CsvRowValues[] = [];
    for (let c = 0; c < 100; c++) {
      for (let d = 0; d < 250; d++) {
        if ((c + d) % 2 === 0) existing.push(row(c, d, "300x250", 1000));
        file.push(row(c, d, "300x250", 1000), row(c, d, "728x90", 2000));
      }
    }
    // A few rows of the file are repeated (with other numbers) far from their first row.
    for (let c = 0; c < 100; c += 10) file.push(row(c, 0, "728x90", 2500));
    await ingest("reprocess/existing.csv", existing, run);
    const before = {
      entries: await harness.db.collection("performance_entries").countDocuments(),
      facts: await harness.db.collection("tracking_sync_facts").countDocuments(),
      runs: await harness.db.collection("tracking_sync_runs").countDocuments(),
    };
    const body = buildCsv(shuffled(file));

    await run(
      await harness.putObject("reprocess/dry.csv", body, { tagging: "dryRun=true" }),
      lambdaContext,
    );
    const dry = (await harness.readJson("reports/reprocess/dry.csv.json")) as Document;
    expect({
      entries: await harness.db.collection("performance_entries").countDocuments(),
      facts: await harness.db.collection("tracking_sync_facts").countDocuments(),
      runs: await harness.db.collection("tracking_sync_runs").countDocuments(),
    }).toEqual(before);

    await run(await harness.putObject("reprocess/real.csv", body), lambdaContext);
    const real = (await harness.readJson("reports/reprocess/real.csv.json")) as Document;

    expect(dry.dryRun).toBe(true);
    expect(counts(dry)).toEqual(counts(real));
    expect(real.stats.synced).toBe(50_010);
    expect(real.warnings).toEqual({ "duplicate-row-superseded": 10 });
    // The sum of both kinds of entry update is one per entry per batch that holds it.
    expect(real.inserted).toBeGreaterThanOrEqual(12_500);
  });
});

describe("ledger:upgrade: entries written before the ledger", () => {
  /** An entry as the ingest wrote it before the ledger: contributions without rev, run or line. */
  async function preLedgerEntry(orderId: string, creatives: [string, string, number][]) {
    await harness.db.collection("performance_entries").insertOne({
      orderId,
      itemPath: "tracking-display",
      dateStart: new Date(`${DAY}T00:00:00.000Z`),
      source: "automated",
      contributions: creatives.map(([creativeId, adSize, impressions]) => ({
        key: JSON.stringify([creativeId, "chireader", "website", adSize]),
        creativeId,
        publicationCode: "chireader",
        channel: "website",
        adSize,
        itemName: creativeId,
        impressions,
        clicks: 10,
        viewableImpressions: 800,
        uniqueIps: 700,
      })),
      metrics: { impressions: creatives.reduce((sum, [, , n]) => sum + n, 0) },
      updatedAt: new Date(),
    });
  }

  it("records facts from old contributions, so a move of one is caught and a double count is undone", async () => {
    const { spring, summer } = await seedTwoCampaigns();
    await preLedgerEntry(spring, [
      [X, "300x250", 1000],
      [Y, "728x90", 2000],
    ]);
    // A pre-ledger double count: Y also sits, older, in another automated entry of the day.
    await preLedgerEntry(summer, [[Y, "728x90", 2000]]);
    await harness.db
      .collection("performance_entries")
      .updateOne({ orderId: summer }, { $set: { updatedAt: new Date(0) } });
    await harness.db.collection("performance_entries").insertOne({
      orderId: spring,
      itemPath: "hand-entered",
      dateStart: new Date(`${DAY}T00:00:00.000Z`),
      source: "manual",
      contributions: [{ key: "k", creativeId: "manual" }],
    });

    const result = await upgradeLedger(harness.db);

    expect(result).toEqual({ entries: 2, factsCreated: 2, alreadyRecorded: 0, duplicates: 1 });
    expect(await fact(Y)).toMatchObject({
      orderId: spring,
      rev: 1,
      run: "pre-ledger",
      stale: [{ orderId: summer }],
    });
    expect(await upgradeLedger(harness.db)).toEqual({
      entries: 2,
      factsCreated: 0,
      alreadyRecorded: 2,
      duplicates: 1,
    });

    await remap(X, "summer-fest");
    await ingest("reprocess/day.csv", [rowX(), rowY()]);

    expect(await dayEntries()).toEqual({ [spring]: [[Y], 2000], [summer]: [[X], 1000] });
    expect(await fact(Y)).toMatchObject({ stale: [] });
    expect(
      await harness.db.collection("performance_entries").countDocuments({ source: "manual" }),
    ).toBe(1);
  });
});
