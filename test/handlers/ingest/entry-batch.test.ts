import { describe, expect, it } from "vitest";
import { groupIntoUpdates, type PlacedRow, UNPLACED } from "../../../handlers/ingest/entry-batch";
import type { EntryTarget } from "../../../handlers/ingest/order-resolver";
import type { ValidRow } from "../../../handlers/ingest/validate-row";

function target(overrides: Partial<EntryTarget> = {}): EntryTarget {
  return {
    orderId: "order-1",
    campaignId: "spring-sale",
    publicationId: 1035,
    publicationName: "Chicago Reader",
    itemPath: "tracking-display",
    itemName: "Spring Sale",
    channel: "display",
    strategy: 1,
    ...overrides,
  };
}

let nextLine = 2;
function resolved(row: Partial<ValidRow>, to: EntryTarget = target()): PlacedRow {
  const line = nextLine;
  return {
    provenance: { rev: 1, run: "run-1", line },
    row: {
      line: nextLine++,
      reportDate: "2025-12-10",
      creativeId: "cr_spring-sale_300x250",
      publicationCode: "chireader",
      channel: "website",
      adSize: "300x250",
      impressions: 100,
      clicks: 1,
      viewableImpressions: 80,
      uniqueIps: 70,
      ...row,
    },
    target: to,
  };
}

describe("groupIntoUpdates", () => {
  it("puts the creatives of one order, item path and day into one update, contributions sorted by key", () => {
    const shared = target();
    const grouped = groupIntoUpdates([
      resolved({ creativeId: "cr_spring-sale_728x90", adSize: "728x90", impressions: 300 }, shared),
      resolved({ creativeId: "cr_spring-sale_300x250", impressions: 100 }, shared),
    ]);

    expect(grouped.updates).toHaveLength(1);
    const [update] = grouped.updates;
    expect(update?.key).toEqual({
      orderId: "order-1",
      itemPath: "tracking-display",
      dateStart: new Date("2025-12-10T00:00:00.000Z"),
      source: "automated",
    });
    expect(update?.fields.dateEnd).toEqual(new Date("2025-12-10T23:59:59.999Z"));
    expect(update?.contributions.map((c) => [c.creativeId, c.impressions])).toEqual([
      ["cr_spring-sale_300x250", 100],
      ["cr_spring-sale_728x90", 300],
    ]);
    expect(grouped.rowCounts).toEqual([2]);
    expect(grouped.superseded).toBe(0);
  });

  it("matches entries by order id and item path, not by which target object a row resolved to", () => {
    const grouped = groupIntoUpdates([
      resolved({ creativeId: "cr_a_1" }, target()),
      resolved({ creativeId: "cr_b_1" }, target()),
      resolved({ creativeId: "cr_c_1" }, target({ itemPath: "tracking-newsletter" })),
    ]);

    expect(grouped.updates.map((update) => update.key.itemPath)).toEqual([
      "tracking-display",
      "tracking-newsletter",
    ]);
    expect(grouped.rowCounts).toEqual([2, 1]);
  });

  it("keeps one update per day, in the order entries first appear", () => {
    const shared = target();
    const grouped = groupIntoUpdates([
      resolved({ reportDate: "2025-12-11" }, shared),
      resolved({ reportDate: "2025-12-10" }, target({ orderId: "order-2" })),
      resolved({ reportDate: "2025-12-10" }, shared),
    ]);

    expect(grouped.updates.map((update) => [update.key.orderId, update.key.dateStart])).toEqual([
      ["order-1", new Date("2025-12-11T00:00:00.000Z")],
      ["order-2", new Date("2025-12-10T00:00:00.000Z")],
      ["order-1", new Date("2025-12-10T00:00:00.000Z")],
    ]);
  });

  it("lets a later row with the same identity replace the earlier one, and counts both rows", () => {
    const shared = target();
    const first = resolved({ impressions: 100, publicationCode: "ChiReader" }, shared);
    const second = resolved({ impressions: 250 }, shared);
    const grouped = groupIntoUpdates([first, second]);

    expect(grouped.superseded).toBe(1);
    expect(grouped.updates[0]?.contributions).toHaveLength(1);
    expect(grouped.updates[0]?.contributions[0]).toMatchObject({
      publicationCode: "chireader",
      impressions: 250,
    });
    expect(grouped.rowCounts).toEqual([2]);
    expect(grouped.rowsOf[0]).toEqual([first, second]);
  });

  it("replaces by key in an entry of many contributions too (past the scan, by index)", () => {
    const shared = target();
    const rows = Array.from({ length: 12 }, (_, i) =>
      resolved({ creativeId: `cr_spring-sale_${i}`, impressions: i }, shared),
    );
    rows.push(resolved({ creativeId: "cr_spring-sale_1", impressions: 1000 }, shared));
    rows.push(resolved({ creativeId: "cr_spring-sale_11", impressions: 1100 }, shared));
    const grouped = groupIntoUpdates(rows);

    expect(grouped.superseded).toBe(2);
    const contributions = grouped.updates[0]?.contributions ?? [];
    expect(contributions).toHaveLength(12);
    expect(new Set(contributions.map((c) => c.key)).size).toBe(12);
    const byCreative = Object.fromEntries(contributions.map((c) => [c.creativeId, c.impressions]));
    expect(byCreative["cr_spring-sale_1"]).toBe(1000);
    expect(byCreative["cr_spring-sale_11"]).toBe(1100);
    expect(byCreative["cr_spring-sale_5"]).toBe(5);
    expect(contributions.map((c) => c.key)).toEqual(contributions.map((c) => c.key).sort());
    expect(grouped.rowCounts).toEqual([14]);
  });

  it("refuses a row the ledger has not placed, instead of writing it without provenance", () => {
    const row = { ...resolved({}), provenance: UNPLACED };

    expect(() => groupIntoUpdates([row])).toThrow(/without the ledger placing it/);
  });
});
