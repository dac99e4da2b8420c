import { DuckDBInstance } from "@duckdb/node-api";
import { MongoClient } from "mongodb";
import { describe, expect, it } from "vitest";
import { addDays } from "../../handlers/shared/dates";
import {
  buildReprocessCsv,
  DAILY_AGGREGATE_COLUMNS,
  generateSampleData,
  type IntendedOutcome,
  isSelectedByQuery,
  type SampleData,
  SCENARIOS,
  SPEC_PUBLICATION_CODES,
  upsertKeyOf,
} from "../../local/sample-data";
import { seedDuckDb, seedMongo } from "../../local/seed";
import { startTestMongo } from "../helpers/mongo";

const END = "2025-12-10";

function synced(outcome: IntendedOutcome) {
  return outcome.kind === "synced" ? outcome : undefined;
}

function publicationIdOf(data: SampleData, code: string | null): number | undefined {
  if (code === null) return undefined;
  const lower = code.toLowerCase();
  return (
    SPEC_PUBLICATION_CODES[lower] ??
    data.fixtures.publications.find((p) => p.publicationCode?.toLowerCase() === lower)
      ?.publicationId
  );
}

describe("generateSampleData", () => {
  it("gives the same data for the same options and different numbers for another seed", () => {
    const first = generateSampleData({ endDate: END, seed: 7 });
    const second = generateSampleData({ endDate: END, seed: 7 });
    const other = generateSampleData({ endDate: END, seed: 8 });

    expect(second).toEqual(first);
    expect(other.rows.map((r) => r.row.impressions)).not.toEqual(
      first.rows.map((r) => r.row.impressions),
    );
  });

  it("covers the requested days ending on the end date", () => {
    const data = generateSampleData({ endDate: END, days: 7 });

    const dates = [...new Set(data.rows.map((r) => r.row.report_date))].sort();

    expect(data.dateRange).toEqual({ start: "2025-12-04", end: END });
    expect(dates).toEqual(Array.from({ length: 7 }, (_, i) => addDays("2025-12-04", i)));
  });

  it("meets every designed scenario on the end date, so a one-day run sees them all", () => {
    const data = generateSampleData({ endDate: END });

    const onEnd = new Set(
      data.rows.filter((r) => r.row.report_date === END).map((r) => r.scenario),
    );

    expect([...SCENARIOS].filter((s) => !onEnd.has(s))).toEqual([]);
  });

  it("syncs rows for every publication of the spec's map and one known only by its publicationCode field", () => {
    const data = generateSampleData({ endDate: END });

    const syncedCodes = new Set(
      data.rows
        .filter((r) => r.outcome.kind === "synced")
        .map((r) => r.row.publication_code?.toLowerCase()),
    );

    for (const code of Object.keys(SPEC_PUBLICATION_CODES)) expect(syncedCodes).toContain(code);
    const fromCollection = data.fixtures.publications.filter(
      (p) => p.publicationCode && !(p.publicationCode in SPEC_PUBLICATION_CODES),
    );
    expect(fromCollection.length).toBeGreaterThan(0);
    for (const pub of fromCollection) expect(syncedCodes).toContain(pub.publicationCode);
  });

  it("resolves every synced row to a live order of the row's publication", () => {
    const data = generateSampleData({ endDate: END });
    const orders = new Map(
      data.fixtures.publication_insertion_orders.map((o) => [o._id.toHexString(), o]),
    );

    for (const { row, outcome } of data.rows) {
      const hit = synced(outcome);
      if (!hit) continue;
      const order = orders.get(hit.orderId);
      expect(order, `${row.creative_id}@${row.publication_code}`).toBeDefined();
      expect(order?.deletedAt).toBeUndefined();
      expect(order?.publicationId).toBe(publicationIdOf(data, row.publication_code));
      expect(order?.campaignId).toBe(hit.campaignId);
    }
  });

  it("builds tracking-script outcomes from a script for that creative and publication", () => {
    const data = generateSampleData({ endDate: END });

    const viaScripts = data.rows.filter((r) => synced(r.outcome)?.strategy === "tracking-script");

    expect(viaScripts.length).toBeGreaterThan(0);
    for (const { row, outcome } of viaScripts) {
      const script = data.fixtures.tracking_scripts.find(
        (s) =>
          s.creativeId === row.creative_id &&
          s.publicationId === publicationIdOf(data, row.publication_code),
      );
      expect(script?.campaignId).toBe(synced(outcome)?.campaignId);
      expect(synced(outcome)?.itemPath).toBe(`tracking-${script?.channel}`);
    }
  });

  it("has creatives in both id formats and opaque ids only tracking_scripts resolves", () => {
    const data = generateSampleData({ endDate: END });
    const ids = data.rows.filter((r) => r.outcome.kind === "synced").map((r) => r.row.creative_id);

    expect(ids.some((id) => id?.startsWith("cr_"))).toBe(true);
    expect(ids.some((id) => id?.startsWith("creative_"))).toBe(true);
    const opaque = data.rows.filter((r) => r.scenario === "tracking-script-only");
    expect(opaque.length).toBeGreaterThan(0);
    for (const { row } of opaque) expect(row.creative_id).not.toContain("_");
  });

  it("puts several creatives on one upsert key on one day", () => {
    const data = generateSampleData({ endDate: END });
    const creativesByKey = new Map<string, Set<string | null>>();

    for (const { row, outcome } of data.rows) {
      const hit = synced(outcome);
      if (!hit) continue;
      const key = upsertKeyOf(hit.orderId, hit.itemPath, row.report_date);
      creativesByKey.set(key, (creativesByKey.get(key) ?? new Set()).add(row.creative_id));
    }

    const shared = [...creativesByKey.values()].filter((creatives) => creatives.size > 1);
    expect(shared.length).toBeGreaterThanOrEqual(3);
    expect(Math.max(...shared.map((s) => s.size))).toBeGreaterThanOrEqual(3);
  });

  it("keeps one row per creative, publication and day, so each creative's share is well defined", () => {
    const data = generateSampleData({ endDate: END });

    const keys = data.rows
      .filter((r) => r.outcome.kind === "synced")
      .map((r) => `${r.row.report_date}|${r.row.creative_id}|${r.row.publication_code}`);

    expect(new Set(keys).size).toBe(keys.length);
  });

  it("has soft-deleted orders, one campaign with two live orders, and campaign ids inside others", () => {
    const data = generateSampleData({ endDate: END });
    const orders = data.fixtures.publication_insertion_orders;

    expect(orders.filter((o) => o.deletedAt).length).toBeGreaterThanOrEqual(2);
    const ambiguous = data.rows.find((r) => r.scenario === "ambiguous-campaign");
    const campaign = ambiguous?.row.creative_id?.split("_")[1];
    const live = orders.filter(
      (o) =>
        o.campaignId === campaign &&
        o.publicationId === publicationIdOf(data, ambiguous?.row.publication_code ?? null) &&
        !o.deletedAt,
    );
    expect(live).toHaveLength(2);
    expect(ambiguous?.outcome).toEqual({ kind: "skipped", reason: "ambiguous-order" });
    const campaignIds = orders.map((o) => o.campaignId);
    expect(
      campaignIds.some((id) => campaignIds.some((other) => other !== id && other.includes(id))),
    ).toBe(true);
  });

  it("includes NULLs where Athena would show them, and rows the query's impressions > 0 drops", () => {
    const data = generateSampleData({ endDate: END });
    const range = { start: END, end: END };

    const nullCreative = data.rows.find((r) => r.scenario === "null-creative-id");
    const nullImpressions = data.rows.find((r) => r.scenario === "null-impressions");
    const zero = data.rows.find((r) => r.scenario === "zero-impressions");

    expect(nullCreative?.row.creative_id).toBeNull();
    expect(nullCreative?.outcome).toEqual({ kind: "error", field: "creative_id" });
    expect(nullImpressions && isSelectedByQuery(nullImpressions.row, range)).toBe(false);
    expect(zero && isSelectedByQuery(zero.row, range)).toBe(false);
    expect(data.rows.filter((r) => isSelectedByQuery(r.row, range)).length).toBeGreaterThan(30);
  });

  it("filters by publication code case-insensitively, like the query", () => {
    const data = generateSampleData({ endDate: END });
    const range = { start: END, end: END };

    const selected = data.rows.filter((r) => isSelectedByQuery(r.row, range, "wbez"));

    expect(selected.map((r) => r.row.publication_code)).toEqual(["WBEZ"]);
  });

  it("refuses an end date that is not a calendar date", () => {
    expect(() => generateSampleData({ endDate: "2025-02-30" })).toThrow(/calendar date/);
  });
});

describe("buildReprocessCsv", () => {
  const data = generateSampleData({ endDate: END });

  it("writes unquoted CRLF lines with reordered columns and an extra one", () => {
    const file = buildReprocessCsv(data, { date: END });

    const lines = file.csv.split("\r\n");

    expect(file.csv).not.toContain('"');
    expect(lines.at(-1)).toBe("");
    expect(lines[0]?.split(",")).toEqual(
      expect.arrayContaining([...DAILY_AGGREGATE_COLUMNS, "note"]),
    );
    expect(lines[0]?.split(",")).not.toEqual([...DAILY_AGGREGATE_COLUMNS]);
    expect(lines.length - 2).toBe(file.rows.length);
  });

  it("corrects part of a shared entry and carries invalid values", () => {
    const file = buildReprocessCsv(data, { date: END });

    const corrections = file.rows.filter((r) => r.scenario === "late-correction");
    const original = data.rows.find(
      (r) =>
        r.row.report_date === END &&
        r.row.creative_id === "cr_lyric-opera-fall_728x90" &&
        r.row.publication_code === "chireader",
    );
    const sibling = data.rows.filter((r) => {
      const a = synced(r.outcome);
      const b = original && synced(original.outcome);
      return (
        a && b && r.row.report_date === END && a.itemPath === b.itemPath && a.orderId === b.orderId
      );
    });

    expect(corrections.length).toBeGreaterThan(0);
    expect(sibling.length).toBeGreaterThan(1);
    const corrected = corrections.find((r) => r.row?.creative_id === "cr_lyric-opera-fall_728x90");
    expect(corrected?.row?.impressions).toBeGreaterThan(original?.row.impressions ?? Infinity);
    expect(corrected?.outcome).toEqual(original?.outcome);
    expect(file.rows.map((r) => r.values.report_date)).toContain("2025-02-30");
    expect(file.rows.map((r) => r.values.impressions)).toContain("abc");
  });

  it("numbers lines as a reader of the file would, header first", () => {
    const file = buildReprocessCsv(data, { date: END, lineEnding: "\n" });

    const lines = file.csv.split("\n");

    for (const row of file.rows) expect(lines[row.line - 1]).toContain(row.values.note);
  });
});

describe("seedDuckDb", () => {
  it("loads every row with Athena's column types and NULLs intact", async () => {
    const data = generateSampleData({ endDate: END, days: 2 });
    const instance = await DuckDBInstance.create(":memory:");
    const connection = await instance.connect();
    try {
      await seedDuckDb(
        connection,
        data.rows.map((r) => r.row),
      );

      const types = await connection.runAndReadAll(
        `SELECT column_name, data_type FROM information_schema.columns
         WHERE table_schema = 'ad_tracking' AND table_name = 'daily_aggregates' ORDER BY ordinal_position`,
      );
      const totals = await connection.runAndReadAll(
        `SELECT count(*)::INTEGER AS n, sum(impressions)::DOUBLE AS impressions,
                count(*) FILTER (WHERE creative_id IS NULL)::INTEGER AS null_creatives,
                strftime(min(report_date), '%Y-%m-%d') AS first_day
         FROM ad_tracking.daily_aggregates`,
      );

      expect(types.getRowObjectsJS()).toEqual([
        { column_name: "report_date", data_type: "DATE" },
        { column_name: "creative_id", data_type: "VARCHAR" },
        { column_name: "publication_code", data_type: "VARCHAR" },
        { column_name: "channel", data_type: "VARCHAR" },
        { column_name: "ad_size", data_type: "VARCHAR" },
        { column_name: "impressions", data_type: "BIGINT" },
        { column_name: "clicks", data_type: "BIGINT" },
        { column_name: "viewable_impressions", data_type: "BIGINT" },
        { column_name: "unique_ips", data_type: "BIGINT" },
      ]);
      expect(totals.getRowObjectsJS()[0]).toEqual({
        n: data.rows.length,
        impressions: data.rows.reduce((sum, r) => sum + (r.row.impressions ?? 0), 0),
        null_creatives: data.rows.filter((r) => r.row.creative_id === null).length,
        first_day: data.dateRange.start,
      });
    } finally {
      connection.closeSync();
      instance.closeSync();
    }
  });
});

describe("seedMongo", () => {
  it("loads the Hub collections and gives the same contents when run twice", async () => {
    const data = generateSampleData({ endDate: END });
    const mongo = await startTestMongo();
    const client = new MongoClient(mongo.uri, { serverSelectionTimeoutMS: 5_000 });
    try {
      const db = client.db(mongo.freshDbName("seed"));

      await seedMongo(db, data.fixtures);
      await seedMongo(db, data.fixtures);

      const orders = await db.collection("publication_insertion_orders").find().toArray();
      expect(orders).toHaveLength(data.fixtures.publication_insertion_orders.length);
      expect(await db.collection("tracking_scripts").countDocuments()).toBe(
        data.fixtures.tracking_scripts.length,
      );
      expect(
        await db.collection("publications").countDocuments({ publicationCode: { $exists: true } }),
      ).toBe(data.fixtures.publications.filter((p) => p.publicationCode).length);
      const deleted = orders.filter((o) => o.deletedAt instanceof Date);
      expect(deleted.map((o) => o._id.toHexString()).sort()).toEqual(
        data.fixtures.publication_insertion_orders
          .filter((o) => o.deletedAt)
          .map((o) => o._id.toHexString())
          .sort(),
      );
    } finally {
      await client.close();
      await mongo.stop();
    }
  });
});
