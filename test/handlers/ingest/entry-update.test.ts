import { type Collection, type Document, MongoClient } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  applyEntryUpdate,
  bsonEqual,
  type Contribution,
  compareUtf8,
  contributionKey,
  type EntryUpdate,
  metricsOf,
} from "../../../handlers/ingest/entry-update";
import { MongoEntryWriter } from "../../../handlers/ingest/writer";
import { startTestMongo, type TestMongo } from "../../helpers/mongo";

function contribution(overrides: Partial<Contribution> = {}): Contribution {
  const base = {
    creativeId: "cr_a_1",
    publicationCode: "chireader",
    channel: "website",
    adSize: "300x250",
    itemName: "Creative A",
    impressions: 100,
    clicks: 3,
    viewableImpressions: 60,
    uniqueIps: 50,
    rev: 1,
    run: "run-1",
    line: 2,
    ...overrides,
  };
  return {
    key: contributionKey(base.creativeId, base.publicationCode, base.channel, base.adSize),
    ...base,
    ...(overrides.key ? { key: overrides.key } : {}),
  };
}

function update(
  contributions: Contribution[],
  overrides: Partial<EntryUpdate["fields"]> = {},
): EntryUpdate {
  return {
    key: {
      orderId: "order-1",
      itemPath: "tracking-display",
      dateStart: new Date("2025-12-10T00:00:00.000Z"),
      source: "automated",
    },
    fields: {
      dateEnd: new Date("2025-12-10T23:59:59.999Z"),
      campaignId: "spring-sale",
      publicationId: 1035,
      publicationName: "Chicago Reader",
      channel: "display",
      ...overrides,
    },
    contributions: [...contributions].sort((a, b) => compareUtf8(a.key, b.key)),
  };
}

const NOW = new Date("2026-01-01T00:00:00.000Z");
const LATER = new Date("2026-01-02T00:00:00.000Z");

describe("metricsOf", () => {
  it("sums contributions and derives ctr and viewability as percentages", () => {
    expect(
      metricsOf([
        contribution({ impressions: 300, clicks: 6, viewableImpressions: 150, uniqueIps: 90 }),
        contribution({ impressions: 100, clicks: 2, viewableImpressions: 50, uniqueIps: 30 }),
      ]),
    ).toEqual({ impressions: 400, clicks: 8, ctr: 2, viewability: 50, reach: 120 });
  });

  it("gives 0, never NaN or Infinity, when there are no impressions", () => {
    expect(
      metricsOf([contribution({ impressions: 0, clicks: 4, viewableImpressions: 1 })]),
    ).toEqual({
      impressions: 0,
      clicks: 4,
      ctr: 0,
      viewability: 0,
      reach: 50,
    });
  });

  it("lets ctr exceed 100 when clicks exceed impressions (kept as measured)", () => {
    expect(metricsOf([contribution({ impressions: 10, clicks: 15 })]).ctr).toBe(150);
  });
});

describe("contributionKey", () => {
  it("keeps NULL and empty apart and cannot be confused by separators in ids", () => {
    expect(contributionKey("a", "P", null, "x")).not.toBe(contributionKey("a", "p", "", "x"));
    expect(contributionKey("a|b", "c", null, null)).not.toBe(
      contributionKey("a", "b|c", null, null),
    );
    expect(contributionKey("a", "CHIREADER", null, null)).toBe(
      contributionKey("a", "chireader", null, null),
    );
  });
});

describe("applyEntryUpdate (the dry-run twin)", () => {
  it("inserts a new entry with createdAt, updatedAt and enteredAt at now", () => {
    const applied = applyEntryUpdate(null, update([contribution()]), NOW);

    expect(applied.kind).toBe("insert");
    expect(applied.document).toMatchObject({
      orderId: "order-1",
      metrics: { impressions: 100, clicks: 3, ctr: 3, viewability: 60, reach: 50 },
      itemName: "Creative A",
      dimensions: "300x250",
      createdAt: NOW,
      updatedAt: NOW,
      enteredAt: NOW,
    });
  });

  it("leaves an identical entry unchanged, timestamps included", () => {
    const first = applyEntryUpdate(null, update([contribution()]), NOW).document;
    const again = applyEntryUpdate(first, update([contribution()]), LATER);

    expect(again.kind).toBe("unchanged");
    expect(again.changedFields).toEqual([]);
    expect(again.document.updatedAt).toEqual(NOW);
  });

  it("keeps other creatives' contributions and reports which fields change", () => {
    const a = contribution();
    const b = contribution({
      creativeId: "cr_a_2",
      adSize: "728x90",
      itemName: "Creative B",
      impressions: 300,
    });
    const stored = applyEntryUpdate(null, update([a, b]), NOW).document;

    const applied = applyEntryUpdate(
      stored,
      update([{ ...a, impressions: 200, key: a.key }]),
      LATER,
    );

    expect(applied.kind).toBe("update");
    expect(applied.document.metrics.impressions).toBe(500);
    expect(applied.document.itemName).toBe("Creative A, Creative B");
    expect(applied.document.dimensions).toBe("300x250, 728x90");
    expect(applied.changedFields).toEqual([
      "contributions",
      "metrics.impressions",
      "metrics.ctr",
      "metrics.viewability",
    ]);
    expect(applied.document.createdAt).toEqual(NOW);
    expect(applied.document.updatedAt).toEqual(LATER);
  });
});

describe("bsonEqual", () => {
  it("compares like MongoDB's $eq on stored values", () => {
    expect(bsonEqual({ a: 1, b: [new Date(0)] }, { a: 1, b: [new Date(0)] })).toBe(true);
    expect(bsonEqual({ a: 1, b: 2 }, { b: 2, a: 1 })).toBe(false);
    expect(bsonEqual(null, undefined)).toBe(false);
  });
});

describe("buildUpdatePipeline upserts through MongoEntryWriter against MongoDB", () => {
  let mongo: TestMongo;
  let client: MongoClient;
  let entries: Collection;
  let writer: MongoEntryWriter;

  beforeAll(async () => {
    mongo = await startTestMongo();
    client = await new MongoClient(mongo.uri).connect();
    entries = client.db(mongo.freshDbName("pipeline")).collection("performance_entries");
    await entries.createIndex(
      { orderId: 1, itemPath: 1, dateStart: 1, source: 1 },
      { unique: true },
    );
    writer = new MongoEntryWriter(entries);
  });
  afterAll(async () => {
    await client?.close();
    await mongo?.stop();
  });

  async function stored(entryUpdate: EntryUpdate): Promise<Document> {
    const document = await entries.findOne(entryUpdate.key, { projection: { _id: 0 } });
    if (!document) throw new Error("entry not stored");
    return document;
  }

  const onPath = (entryUpdate: EntryUpdate, itemPath: string): EntryUpdate => ({
    ...entryUpdate,
    key: { ...entryUpdate.key, itemPath },
  });

  it("leaves the same document as the JavaScript twin, step after step", async () => {
    const a = contribution({ creativeId: "$x", itemName: "$x" });
    const b = contribution({ creativeId: "a.b", adSize: null, itemName: "Dotted", impressions: 0 });
    const c = contribution({ creativeId: "cr_c", adSize: "728x90", clicks: 500 });
    const steps = [
      update([a]),
      update([b, c]),
      update([{ ...a, impressions: 7, key: a.key }]),
      update([b, c]),
      // Order fields from the database are data too, even when they look like operators.
      update([b], { campaignId: "$camp", publicationName: "a.b", channel: "$$NOW" }),
    ];
    let previous: Document | null = null;

    for (const step of steps) {
      await writer.write([step]);
      const real = await stored(step);
      const applied = applyEntryUpdate(previous, step, real.updatedAt);
      // createdAt comes from the first step's clock; compare everything else exactly.
      expect({ ...real, createdAt: undefined, enteredAt: undefined }).toEqual({
        ...applied.document,
        createdAt: undefined,
        enteredAt: undefined,
      });
      expect(Object.keys(real)).toEqual(Object.keys(applied.document));
      previous = real;
    }
  });

  it("updates many existing entries in one batch, each with its own data", async () => {
    const steps = ["multi-1", "multi-2", "multi-3"].map((path, index) =>
      onPath(
        update([contribution({ creativeId: `cr_${index}`, impressions: 10 * (index + 1) })]),
        path,
      ),
    );
    await writer.write(steps);
    const before = await Promise.all(steps.map(stored));
    const changed = steps.map((step, index) =>
      onPath(
        update([contribution({ creativeId: `cr_x${index}`, impressions: index })]),
        step.key.itemPath,
      ),
    );

    const result = await writer.write(changed);

    expect(result).toMatchObject({ inserted: 0, updated: 3, unchanged: 0 });
    for (const [index, step] of changed.entries()) {
      const real = await stored(step);
      expect(real.metrics.impressions).toBe(10 * (index + 1) + index);
      expect(real).toEqual(applyEntryUpdate(before[index] ?? null, step, real.updatedAt).document);
    }
  });

  it("changes nothing, updatedAt included, when the same batch is written again", async () => {
    const steps = [
      onPath(update([contribution({ creativeId: "cr_same" })], { channel: "website" }), "same-1"),
      onPath(update([contribution({ creativeId: "cr_same" })]), "same-2"),
    ];
    await writer.write(steps);
    const before = await Promise.all(steps.map(stored));

    const result = await writer.write(steps);

    expect(result).toMatchObject({ inserted: 0, updated: 0, unchanged: 2 });
    expect(await Promise.all(steps.map(stored))).toEqual(before);
  });

  it("inserts the new and updates the existing entries of one batch", async () => {
    const old = onPath(update([contribution({ creativeId: "cr_old" })]), "mixed-old");
    await writer.write([old]);

    const result = await writer.write([
      onPath(update([contribution({ creativeId: "cr_more" })]), "mixed-old"),
      onPath(update([contribution({ creativeId: "cr_new" })]), "mixed-new"),
    ]);

    expect(result).toMatchObject({ inserted: 1, updated: 1, unchanged: 0 });
    expect((await stored(old)).contributions).toHaveLength(2);
  });

  it("takes over an entry written row by row before contributions existed, as the twin does", async () => {
    const step = onPath(
      update([contribution({ creativeId: "cr_legacy", adSize: null })]),
      "tracking-legacy",
    );
    await entries.insertOne({
      ...step.key,
      metrics: { impressions: 1, clicks: 0, ctr: 0, viewability: 0, reach: 1 },
      dimensions: "300x250",
      itemName: "old",
    });
    const legacy = await stored(step);

    await writer.write([step]);
    const real = await stored(step);

    expect(real.dimensions).toBeUndefined();
    expect(real.metrics.impressions).toBe(100);
    expect(real).toEqual(applyEntryUpdate(legacy, step, real.updatedAt).document);
  });
});
