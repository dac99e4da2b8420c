import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "csv-parse/sync";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  athenaField,
  athenaLine,
  benchLines,
  buildUniverse,
  CSV_HEADER,
  createRandom,
  emptyTally,
  writeBenchCsv,
} from "../../bench/lib/bench-data";
import { BUILT_IN_PUBLICATION_CODES } from "../../handlers/ingest/publications";

// A small universe keeps the tests fast; the structure is the same as the bench's.
const universe = buildUniverse({ campaigns: 40 });

describe("Athena dialect", () => {
  it("quotes every value and doubles embedded quotes", () => {
    expect(athenaField("cr_a_300x250")).toBe('"cr_a_300x250"');
    expect(athenaField(12)).toBe('"12"');
    expect(athenaField('say "hi"')).toBe('"say ""hi"""');
  });

  it("writes NULL as an unquoted empty field and the empty string as a quoted one", () => {
    expect(athenaLine(["a", null, ""])).toBe('"a",,""\n');
  });

  it("writes the header Athena gives the result columns", () => {
    expect(CSV_HEADER).toBe(
      '"report_date","creative_id","publication_code","channel","ad_size","impressions","clicks","viewable_impressions","unique_ips"\n',
    );
  });
});

describe("buildUniverse", () => {
  it("gives the same lookup data and combinations for the same seed", () => {
    const again = buildUniverse({ campaigns: 40 });
    expect(again.combinations).toEqual(universe.combinations);
    expect(JSON.stringify(again.fixtures)).toBe(JSON.stringify(universe.fixtures));
  });

  it("gives different data for another seed", () => {
    const other = buildUniverse({ campaigns: 40, seed: 7 });
    expect(other.combinations).not.toEqual(universe.combinations);
  });

  it("never repeats a (creative, publication, channel, ad size) combination within a day", () => {
    const keys = universe.combinations.map((c) =>
      JSON.stringify([c.creativeId, c.publicationCode, c.channel, c.adSize]),
    );
    expect(new Set(keys).size).toBe(keys.length);
  });

  it("orders each day's combinations as the start function's query does", () => {
    // ORDER BY publication_code, creative_id within a day; the ids are ASCII.
    const codes = universe.combinations.map((c) => `${c.publicationCode}\u0000${c.creativeId}`);
    const sorted = [...codes].sort();
    expect(universe.order).toBe("query");
    expect(codes).toEqual(sorted);
  });

  it("leaves a shuffled universe unsorted, with the same combinations", () => {
    const shuffled = buildUniverse({ campaigns: 40, order: "shuffled" });
    const key = (c: {
      creativeId: string;
      publicationCode: string;
      channel: string;
      adSize: string;
    }) => [c.publicationCode, c.creativeId, c.channel, c.adSize].join("|");
    expect(shuffled.combinations.map(key)).not.toEqual(universe.combinations.map(key));
    expect(shuffled.combinations.map(key).sort()).toEqual(universe.combinations.map(key).sort());
  });

  it("builds rows for every outcome, mostly resolvable", () => {
    const designed = new Map<string, number>();
    for (const combination of buildUniverse().combinations) {
      designed.set(combination.designed, (designed.get(combination.designed) ?? 0) + 1);
    }
    const total = [...designed.values()].reduce((a, b) => a + b, 0);
    expect((designed.get("synced") ?? 0) / total).toBeGreaterThan(0.85);
    expect(designed.get("unknown-publication")).toBeGreaterThan(0);
    expect(designed.get("order-not-found")).toBeGreaterThan(0);
  });

  it("designs synced rows only for mapped publications with a live order for the campaign", () => {
    const liveOrders = new Set(
      universe.fixtures.publication_insertion_orders
        .filter((order) => order.deletedAt === undefined)
        .map((order) => `${order.campaignId}|${order.publicationId}`),
    );
    for (const combination of universe.combinations) {
      const publicationId = BUILT_IN_PUBLICATION_CODES[combination.publicationCode];
      const campaignId = /^(?:cr_|creative_)([a-z0-9-]+)_/.exec(combination.creativeId)?.[1];
      const live = liveOrders.has(`${campaignId}|${publicationId}`);
      if (combination.designed === "synced") expect(live).toBe(true);
      if (combination.designed === "unknown-publication") expect(publicationId).toBeUndefined();
      if (combination.designed === "order-not-found") expect(live).toBe(false);
    }
  });
});

describe("benchLines", () => {
  it("writes each combination once a day, day after day", () => {
    const tally = emptyTally();
    const rows = universe.combinations.length * 2 + 5;
    const records = parse([...benchLines(universe, rows, 1, tally)].join("")) as string[][];
    expect(records).toHaveLength(rows);
    expect(tally).toMatchObject({ rows, days: 3, firstDate: "2025-09-01", lastDate: "2025-09-03" });
    const firstDay = records.filter((record) => record[0] === "2025-09-01");
    expect(firstDay).toHaveLength(universe.combinations.length);
    expect(new Set(firstDay.map((record) => record.slice(1, 5).join("|"))).size).toBe(
      universe.combinations.length,
    );
  });

  it("counts every row in exactly one designed outcome", () => {
    const tally = emptyTally();
    for (const _line of benchLines(universe, 5_000, 1, tally));
    const { synced, error } = tally.designed;
    expect(
      synced + error + tally.designed["unknown-publication"] + tally.designed["order-not-found"],
    ).toBe(5_000);
  });

  it("gives valid counts: non-negative integers, clicks and viewable within impressions", () => {
    const records = parse([...benchLines(universe, 3_000)].join("")) as string[][];
    for (const record of records) {
      const [impressions, clicks, viewable, uniqueIps] = record.slice(5).map(Number);
      expect(Number.isInteger(impressions) && (impressions as number) >= 0).toBe(true);
      if (record[6] !== "") expect(clicks).toBeLessThanOrEqual(impressions as number);
      expect(viewable).toBeLessThanOrEqual(impressions as number);
      expect(uniqueIps).toBeLessThanOrEqual(impressions as number);
    }
  });
});

describe("writeBenchCsv", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "bench-data-test-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("writes the same bytes for the same seed and reports their size", async () => {
    const first = await writeBenchCsv(join(dir, "a.csv"), universe, 12_345);
    const second = await writeBenchCsv(join(dir, "b.csv"), universe, 12_345);
    const bytes = await readFile(join(dir, "a.csv"));
    expect(bytes.equals(await readFile(join(dir, "b.csv")))).toBe(true);
    expect(first.bytes).toBe(bytes.length);
    expect(second.rows).toBe(12_345);
  });

  it("writes a header and exactly the requested rows, every field quoted unless NULL", async () => {
    await writeBenchCsv(join(dir, "c.csv"), universe, 4_000);
    const text = await readFile(join(dir, "c.csv"), "utf8");
    const lines = text.trimEnd().split("\n");
    expect(lines[0]).toBe(CSV_HEADER.trimEnd());
    expect(lines).toHaveLength(4_001);
    for (const line of lines.slice(1, 200)) {
      expect(line).toMatch(/^("[^"]*"|)(,("[^"]*"|)){8}$/);
    }
  });
});

describe("createRandom", () => {
  it("repeats its sequence for a seed and stays within [0, 1)", () => {
    const a = createRandom(42);
    const b = createRandom(42);
    for (let i = 0; i < 1_000; i++) {
      const value = a();
      expect(value).toBe(b());
      expect(value).toBeGreaterThanOrEqual(0);
      expect(value).toBeLessThan(1);
    }
  });
});
