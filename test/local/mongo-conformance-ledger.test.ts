import { type Collection, type Document, MongoBulkWriteError, MongoClient } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  applyEntryUpdate,
  buildRemovalPipeline,
  buildUpdatePipeline,
  type Contribution,
  contributionKey,
  EMPTY_ENTRY,
  type EntryFields,
  type EntryKey,
  type EntryUpdate,
  SOURCE,
} from "../../handlers/ingest/entry-update";
import { factId, provenancePipeline } from "../../handlers/ingest/ledger";
import { MongoEntryWriter } from "../../handlers/ingest/writer";
import { startTestMongo, type TestMongo } from "../helpers/mongo.js";

// The MongoDB features the facts ledger and the moves between entries rely on
// (handlers/ingest/ledger.ts, entry-update.ts, writer.ts), with MongoDB 6.0+ semantics.
// Runs against the embedded server, or a real MongoDB when MONGODB_TEST_URI is set.
let mongo: TestMongo;
let client: MongoClient;

beforeAll(async () => {
  mongo = await startTestMongo();
  client = new MongoClient(mongo.uri, { serverSelectionTimeoutMS: 5_000 });
  await client.connect();
});

afterAll(async () => {
  await client?.close();
  await mongo?.stop();
});

function freshCollection(prefix: string, name = "performance_entries"): Collection<Document> {
  return client.db(mongo.freshDbName(prefix)).collection(name);
}

async function freshEntries(prefix: string): Promise<Collection<Document>> {
  const entries = freshCollection(prefix);
  await entries.createIndex(
    { orderId: 1, itemPath: 1, dateStart: 1, source: 1 },
    { unique: true, name: "entry_key" },
  );
  return entries;
}

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the operation to fail, but it succeeded");
}

const DAY = new Date("2025-12-10T00:00:00.000Z");
const LONG_AGO = new Date("2020-01-01T00:00:00.000Z");

function entryKey(orderId = "o-1", itemPath = "pub-1"): EntryKey {
  return { orderId, itemPath, dateStart: DAY, source: SOURCE };
}

const FIELDS: EntryFields = {
  dateEnd: new Date("2025-12-10T23:59:59.999Z"),
  campaignId: "spring-sale",
  publicationId: 7,
  publicationName: "The Daily $Paper",
  channel: "display",
};

function contribution(
  creativeId: string,
  numbers: { impressions: number; clicks?: number; viewable?: number; ips?: number },
  rev: number | undefined,
  options: { adSize?: string | null; itemName?: string; run?: string; line?: number } = {},
): Contribution {
  const adSize = options.adSize === undefined ? "300x250" : options.adSize;
  const stored: Document = {
    key: contributionKey(creativeId, "PUB-1", "display", adSize),
    creativeId,
    publicationCode: "pub-1",
    channel: "display",
    adSize,
    itemName: options.itemName ?? `Item ${creativeId}`,
    impressions: numbers.impressions,
    clicks: numbers.clicks ?? 0,
    viewableImpressions: numbers.viewable ?? 0,
    uniqueIps: numbers.ips ?? 0,
    run: options.run ?? "run-old",
    line: options.line ?? 2,
  };
  // A contribution written before the ledger has no rev at all.
  if (rev !== undefined) stored.rev = rev;
  return stored as Contribution;
}

function metricsOf(contributions: Contribution[]) {
  const sum = (pick: (c: Contribution) => number) =>
    contributions.reduce((total, c) => total + pick(c), 0);
  const impressions = sum((c) => c.impressions);
  const clicks = sum((c) => c.clicks);
  const viewable = sum((c) => c.viewableImpressions);
  return {
    impressions,
    clicks,
    ctr: impressions > 0 ? (clicks / impressions) * 100 : 0,
    viewability: impressions > 0 ? (viewable / impressions) * 100 : 0,
    reach: sum((c) => c.uniqueIps),
  };
}

/** A stored automated entry as an earlier run left it (clocks long ago). */
async function storeEntry(
  entries: Collection<Document>,
  key: EntryKey,
  contributions: Contribution[],
  extra: Document = {},
): Promise<void> {
  await entries.insertOne({
    ...key,
    campaignId: FIELDS.campaignId,
    channel: FIELDS.channel,
    contributions,
    createdAt: LONG_AGO,
    dateEnd: FIELDS.dateEnd,
    dimensions: "300x250",
    enteredAt: LONG_AGO,
    enteredBy: "lambda-tracking-sync",
    itemName: "old",
    metrics: { impressions: -1, clicks: -1, ctr: -1, viewability: -1, reach: -1 },
    publicationId: FIELDS.publicationId,
    publicationName: FIELDS.publicationName,
    updatedAt: LONG_AGO,
    ...extra,
  });
}

function upsertOf(update: EntryUpdate) {
  return { updateOne: { filter: update.key, update: buildUpdatePipeline(update), upsert: true } };
}

describe("the entry update pipeline (buildUpdatePipeline)", () => {
  it("inserts a new entry through the upsert, contributions sorted by key, fields as the pure twin lays them out", async () => {
    const entries = await freshEntries("ledger_insert");
    const key = entryKey();
    const update: EntryUpdate = {
      key,
      fields: FIELDS,
      contributions: [
        contribution("a", { impressions: 300, clicks: 3, viewable: 150, ips: 30 }, 1),
        contribution("b.$x", { impressions: 100, clicks: 1, viewable: 20, ips: 9 }, 2, {
          adSize: "728x90",
          itemName: "$Item.b",
        }),
      ],
    };

    const result = await entries.updateOne(key, buildUpdatePipeline(update), { upsert: true });

    expect(result).toMatchObject({ matchedCount: 0, modifiedCount: 0, upsertedCount: 1 });
    const stored = (await entries.findOne({}, { projection: { _id: 0 } })) as Document;
    expect(stored.createdAt).toBeInstanceOf(Date);
    expect(stored.enteredAt).toEqual(stored.createdAt);
    expect(stored.updatedAt).toEqual(stored.createdAt);
    const expected = applyEntryUpdate(null, update, stored.createdAt).document;
    expect(stored).toEqual(expected);
    expect(Object.keys(stored)).toEqual(Object.keys(expected));
    expect(stored).toMatchObject({
      dimensions: "300x250, 728x90",
      itemName: "$Item.b, Item a",
      metrics: metricsOf(update.contributions),
    });
    expect(stored).not.toHaveProperty("_tsc");
    expect(stored).not.toHaveProperty("_tsu");
  });

  it("keeps a stored contribution with a higher rev, replaces one with a lower or equal rev (a missing rev counts as 0), adds new keys, and derives the metrics from all", async () => {
    const entries = await freshEntries("ledger_revisions");
    const key = entryKey();
    const a = contribution("a", { impressions: 100, clicks: 1, viewable: 50, ips: 10 }, 4);
    const b = contribution("b", { impressions: 200, clicks: 2, viewable: 60, ips: 20 }, 2);
    const c = contribution("c", { impressions: 300, clicks: 3, viewable: 70, ips: 30 }, undefined);
    const d = contribution("d", { impressions: 400, clicks: 4, viewable: 80, ips: 40 }, 3);
    const e = contribution("e", { impressions: 500, clicks: 5, viewable: 90, ips: 50 }, 1, {
      adSize: "728x90",
    });
    await storeEntry(entries, key, [a, b, c, d, e]);

    const newer = { run: "run-new", line: 9 };
    const incoming = {
      a: contribution("a", { impressions: 999, clicks: 9 }, 3, newer),
      b: contribution("b", { impressions: 250, clicks: 5, viewable: 25, ips: 21 }, 3, newer),
      c: contribution("c", { impressions: 350, clicks: 7, viewable: 35, ips: 31 }, 1, newer),
      d: contribution("d", { impressions: 450, clicks: 9, viewable: 45, ips: 41 }, 3, newer),
      f: contribution("f$.x", { impressions: 600, clicks: 6, viewable: 60, ips: 60 }, 1, {
        ...newer,
        adSize: null,
        itemName: "Item f",
      }),
    };
    const update: EntryUpdate = {
      key,
      fields: FIELDS,
      // Sorted by key, as batches build them ("a" < "b" < "c" < "d" < "f$.x").
      contributions: [incoming.a, incoming.b, incoming.c, incoming.d, incoming.f],
    };

    const result = await entries.updateOne(key, buildUpdatePipeline(update), { upsert: true });

    expect(result).toMatchObject({ matchedCount: 1, modifiedCount: 1, upsertedCount: 0 });
    const stored = (await entries.findOne(key)) as Document;
    const expected = [a, incoming.b, incoming.c, incoming.d, e, incoming.f];
    expect(stored.contributions).toEqual(expected);
    expect(stored.metrics).toEqual(metricsOf(expected));
    expect(stored.dimensions).toBe("300x250, 728x90");
    expect(stored.itemName).toBe("Item a, Item b, Item c, Item d, Item e, Item f");
    expect(stored.createdAt).toEqual(LONG_AGO);
    expect(stored.enteredAt.getTime()).toBeGreaterThan(LONG_AGO.getTime());
    expect(stored.updatedAt).toEqual(stored.enteredAt);
    expect(stored).not.toHaveProperty("_tsc");
    expect(stored).not.toHaveProperty("_tsu");
    expect(await entries.countDocuments()).toBe(1);
  });

  it("keeps a stored contribution of the same run and rev from a later line (a later row landed first), as the pure twin does", async () => {
    const entries = await freshEntries("ledger_same_run_lines");
    const key = entryKey();
    const run = { run: "run-v" };
    // Stored: a from line 900 of run-v, b from line 5, c from line 7 of another run, d from before the ledger.
    const a = contribution("a", { impressions: 100 }, 2, { ...run, line: 900 });
    const b = contribution("b", { impressions: 200 }, 2, { ...run, line: 5 });
    const c = contribution("c", { impressions: 300 }, 2, { run: "run-u", line: 7 });
    const d = { ...contribution("d", { impressions: 400 }, undefined) } as Document;
    delete d.run;
    delete d.line;
    await storeEntry(entries, key, [a, b, c, d as Contribution]);
    const incoming = {
      // Same run and rev, earlier line: the stored later line stays.
      a: contribution("a", { impressions: 111 }, 2, { ...run, line: 10 }),
      // Same run and rev, later line: replaces.
      b: contribution("b", { impressions: 222 }, 2, { ...run, line: 800 }),
      // Same rev, another run, earlier line: replaces (the run's own order decides only within a run).
      c: contribution("c", { impressions: 333 }, 2, { ...run, line: 3 }),
      // A stored contribution without run or line: replaced.
      d: contribution("d", { impressions: 444 }, 0, { ...run, line: 1 }),
    };
    const update: EntryUpdate = {
      key,
      fields: FIELDS,
      contributions: [incoming.a, incoming.b, incoming.c, incoming.d],
    };
    const before = (await entries.findOne(key)) as Document;

    await entries.updateOne(key, buildUpdatePipeline(update), { upsert: true });

    const stored = (await entries.findOne(key)) as Document;
    const expected = [a, incoming.b, incoming.c, incoming.d];
    expect(stored.contributions).toEqual(expected);
    expect(stored.metrics).toEqual(metricsOf(expected));
    expect(applyEntryUpdate(before, update, new Date()).document?.contributions).toEqual(expected);
  });

  it("matches without modifying when the same contributions are sent again, and keeps the clocks", async () => {
    const entries = await freshEntries("ledger_unchanged");
    const key = entryKey();
    const update: EntryUpdate = {
      key,
      fields: FIELDS,
      contributions: [
        contribution("a", { impressions: 300, clicks: 3, viewable: 100, ips: 30 }, 2),
        contribution("b", { impressions: 7, clicks: 1, viewable: 3, ips: 1 }, 1),
      ],
    };
    await entries.updateOne(key, buildUpdatePipeline(update), { upsert: true });
    const first = await entries.findOne(key);
    // A stale writer: its contribution to "a" has a lower rev than the stored one.
    const stale: EntryUpdate = {
      ...update,
      contributions: [contribution("a", { impressions: 1 }, 1), ...update.contributions.slice(1)],
    };

    const again = await entries.bulkWrite([upsertOf(update), upsertOf(stale)], { ordered: true });

    expect(again).toMatchObject({ matchedCount: 2, modifiedCount: 0, upsertedCount: 0 });
    expect(await entries.findOne(key)).toEqual(first);
  });

  it("removes the dimensions field with $$REMOVE when no contribution has an ad size", async () => {
    const entries = await freshEntries("ledger_dimensions");
    const key = entryKey();
    // The stored entry still carries a dimensions field its contributions no longer give.
    await storeEntry(entries, key, [contribution("a", { impressions: 10 }, 1, { adSize: null })], {
      dimensions: "300x250",
    });
    const update: EntryUpdate = {
      key,
      fields: FIELDS,
      contributions: [
        contribution("a", { impressions: 20, clicks: 1 }, 2, { adSize: null }),
        contribution("b", { impressions: 30 }, 2, { adSize: "" }),
      ],
    };

    await entries.updateOne(key, buildUpdatePipeline(update), { upsert: true });

    const stored = (await entries.findOne(key)) as Document;
    expect(stored).not.toHaveProperty("dimensions");
    expect(stored.contributions).toEqual(update.contributions);
    expect(stored.metrics).toEqual({
      impressions: 50,
      clicks: 1,
      ctr: (1 / 50) * 100,
      viewability: 0,
      reach: 0,
    });
  });
});

describe("the removal pipeline (buildRemovalPipeline)", () => {
  it("takes out only contributions whose rev is lower than the removal's (a missing rev counts as 0) and derives the metrics again", async () => {
    const entries = await freshEntries("ledger_removal");
    const key = entryKey();
    const a = contribution("a", { impressions: 100, clicks: 1, viewable: 10, ips: 1 }, 2);
    const b = contribution("b", { impressions: 200, clicks: 4, viewable: 20, ips: 2 }, 5, {
      adSize: null,
    });
    const c = contribution("c", { impressions: 300, clicks: 3, viewable: 30, ips: 3 }, undefined);
    const d = contribution("d", { impressions: 400, clicks: 8, viewable: 40, ips: 4 }, 1, {
      adSize: "728x90",
    });
    await storeEntry(entries, key, [a, b, c, d]);

    const result = await entries.updateOne(
      key,
      buildRemovalPipeline([
        { key: a.key, rev: 3 },
        { key: b.key, rev: 3 },
        { key: c.key, rev: 1 },
        { key: d.key, rev: 1 },
        { key: contributionKey("z", "PUB-1", "display", "300x250"), rev: 9 },
      ]),
    );

    expect(result).toMatchObject({ matchedCount: 1, modifiedCount: 1, upsertedCount: 0 });
    const stored = (await entries.findOne(key)) as Document;
    expect(stored.contributions).toEqual([b, d]);
    expect(stored.metrics).toEqual(metricsOf([b, d]));
    expect(stored.dimensions).toBe("728x90");
    expect(stored.itemName).toBe("Item b, Item d");
    expect(stored.createdAt).toEqual(LONG_AGO);
    expect(stored.enteredAt.getTime()).toBeGreaterThan(LONG_AGO.getTime());
    expect(stored.updatedAt).toEqual(stored.enteredAt);
    expect(stored).not.toHaveProperty("_tsc");
    expect(stored).not.toHaveProperty("_tsu");
  });

  it("leaves an entry unmodified, clocks included, when no contribution goes", async () => {
    const entries = await freshEntries("ledger_removal_noop");
    const key = entryKey();
    const update: EntryUpdate = {
      key,
      fields: FIELDS,
      contributions: [
        contribution("a", { impressions: 300, clicks: 3, viewable: 100, ips: 30 }, 4),
        contribution("b", { impressions: 7, clicks: 1, viewable: 3, ips: 1 }, 2),
      ],
    };
    await entries.updateOne(key, buildUpdatePipeline(update), { upsert: true });
    const before = await entries.findOne(key);

    const result = await entries.updateOne(
      key,
      buildRemovalPipeline([
        { key: update.contributions[0]?.key as string, rev: 4 },
        { key: update.contributions[1]?.key as string, rev: 1 },
      ]),
    );

    expect(result).toMatchObject({ matchedCount: 1, modifiedCount: 0, upsertedCount: 0 });
    expect(await entries.findOne(key)).toEqual(before);
  });

  it("leaves an empty array, zero metrics, an empty itemName and no dimensions when the last contribution goes", async () => {
    const entries = await freshEntries("ledger_removal_last");
    const key = entryKey();
    const a = contribution("a", { impressions: 100, clicks: 1 }, 1);
    await storeEntry(entries, key, [a]);

    await entries.updateOne(key, buildRemovalPipeline([{ key: a.key, rev: 2 }]));

    const stored = (await entries.findOne(key)) as Document;
    expect(stored.contributions).toEqual([]);
    expect(stored.metrics).toEqual({ impressions: 0, clicks: 0, ctr: 0, viewability: 0, reach: 0 });
    expect(stored.itemName).toBe("");
    expect(stored).not.toHaveProperty("dimensions");
  });
});

describe("deleting an entry its last contribution left", () => {
  it("deleteOne with contributions: { $size: 0 } deletes only an entry whose array is empty", async () => {
    const entries = await freshEntries("ledger_empty_delete");
    const empty = entryKey("o-empty");
    const full = entryKey("o-full");
    const missing = entryKey("o-missing");
    await storeEntry(entries, empty, []);
    await storeEntry(entries, full, [contribution("a", { impressions: 1 }, 1)]);
    await storeEntry(entries, missing, []);
    await entries.updateOne(missing, { $unset: { contributions: "" } });

    const deletedFull = await entries.deleteOne({ ...full, ...EMPTY_ENTRY });
    const deletedMissing = await entries.deleteOne({ ...missing, ...EMPTY_ENTRY });
    const deletedEmpty = await entries.deleteOne({ ...empty, ...EMPTY_ENTRY });

    expect(deletedFull.deletedCount).toBe(0);
    expect(deletedMissing.deletedCount).toBe(0);
    expect(deletedEmpty.deletedCount).toBe(1);
    const left = await entries.find({}, { projection: { _id: 0, orderId: 1 } }).toArray();
    expect(left.map((entry) => entry.orderId).sort()).toEqual(["o-full", "o-missing"]);
  });

  it("counts an ordered bulkWrite of removal pipelines (no upsert) and deleteOnes as MongoDB does", async () => {
    const entries = await freshEntries("ledger_removal_bulk");
    const gone = entryKey("o-gone");
    const keeps = entryKey("o-keeps");
    const emptied = entryKey("o-emptied");
    const unchanged = entryKey("o-unchanged");
    const a = contribution("a", { impressions: 100 }, 1);
    const b = contribution("b", { impressions: 200 }, 1);
    await storeEntry(entries, keeps, [a, b]);
    await storeEntry(entries, emptied, [a]);
    await entries.updateOne(
      unchanged,
      buildUpdatePipeline({ key: unchanged, fields: FIELDS, contributions: [a] }),
      { upsert: true },
    );
    const remove = [{ key: a.key, rev: 2 }];
    const keepA = [{ key: a.key, rev: 1 }];
    const operations = [gone, keeps, emptied].flatMap((key) => [
      { updateOne: { filter: key, update: buildRemovalPipeline(remove) } },
      { deleteOne: { filter: { ...key, ...EMPTY_ENTRY } } },
    ]);
    operations.push(
      { updateOne: { filter: unchanged, update: buildRemovalPipeline(keepA) } },
      { deleteOne: { filter: { ...unchanged, ...EMPTY_ENTRY } } },
    );

    const result = await entries.bulkWrite(operations, { ordered: true });

    expect(result).toMatchObject({
      insertedCount: 0,
      matchedCount: 3,
      modifiedCount: 2,
      deletedCount: 1,
      upsertedCount: 0,
    });
    expect(result.upsertedIds).toEqual({});
    const left = await entries.find({}).sort({ orderId: 1 }).toArray();
    expect(left.map((entry) => [entry.orderId, entry.contributions])).toEqual([
      ["o-keeps", [b]],
      ["o-unchanged", [a]],
    ]);
  });

  it("MongoEntryWriter.remove reports the entries left with contributions and the ones deleted", async () => {
    const entries = await freshEntries("ledger_writer_remove");
    const a = contribution("a", { impressions: 100 }, 1);
    const b = contribution("b", { impressions: 200 }, 3);
    await storeEntry(entries, entryKey("o-keeps"), [a, b]);
    await storeEntry(entries, entryKey("o-emptied"), [a]);
    // Written by the pipeline, so re-deriving its metrics changes nothing.
    const newer = entryKey("o-newer");
    await entries.updateOne(
      newer,
      buildUpdatePipeline({ key: newer, fields: FIELDS, contributions: [b] }),
      { upsert: true },
    );
    const removals = [
      { key: a.key, rev: 2 },
      { key: b.key, rev: 2 },
    ];

    const result = await new MongoEntryWriter(entries).remove([
      { key: entryKey("o-gone"), removals },
      { key: entryKey("o-keeps"), removals },
      { key: entryKey("o-emptied"), removals },
      { key: entryKey("o-newer"), removals },
    ]);

    expect(result).toEqual({ updated: 1, deleted: 1 });
    const left = await entries.find({}).sort({ orderId: 1 }).toArray();
    expect(left.map((entry) => [entry.orderId, entry.contributions])).toEqual([
      ["o-keeps", [b]],
      ["o-newer", [b]],
    ]);
  });
});

/** Three fact ids with the characters a key can hold (quotes, |, a backslash). */
const X = factId(contributionKey('cr "x"', "PUB-1", "display", null), "2025-12-10");
const Y = factId(contributionKey("cr|y", "PUB-1", null, "300x250"), "2025-12-10");
const Z = factId(contributionKey("cr\\z", "PUB-1", "display", "728x90"), "2025-12-10");

describe("compare-and-set on facts", () => {
  it("fails an upsert filtered on _id and a stale rev with E11000 on _id, at its index in an unordered bulkWrite, and applies the others", async () => {
    const facts = freshCollection("ledger_cas", "tracking_sync_facts");
    await facts.insertMany([
      { _id: X as never, rev: 4, run: "other" },
      { _id: Y as never, rev: 1, run: "old" },
    ]);

    const error = await rejectionOf(
      facts.bulkWrite(
        [
          { insertOne: { document: { _id: Z as never, rev: 1, run: "mine" } } },
          {
            updateOne: {
              filter: { _id: X as never, rev: 3 },
              update: { $set: { rev: 4, run: "mine" } },
              upsert: true,
            },
          },
          {
            updateOne: {
              filter: { _id: Y as never, rev: 1 },
              update: { $set: { rev: 2, run: "mine" } },
              upsert: true,
            },
          },
        ],
        { ordered: false },
      ),
    );

    expect(error).toBeInstanceOf(MongoBulkWriteError);
    const bulkError = error as MongoBulkWriteError;
    const writeErrors = [bulkError.writeErrors].flat();
    expect(writeErrors).toHaveLength(1);
    expect(writeErrors[0]?.index).toBe(1);
    expect(writeErrors[0]?.code).toBe(11000);
    expect(writeErrors[0]?.errmsg).toContain("index: _id_ dup key:");
    expect(bulkError.result).toMatchObject({
      insertedCount: 1,
      matchedCount: 1,
      modifiedCount: 1,
      upsertedCount: 0,
    });
    const stored = await facts.find({}).sort({ _id: 1 }).toArray();
    expect(stored).toEqual(
      [
        { _id: X, rev: 4, run: "other" },
        { _id: Y, rev: 2, run: "mine" },
        { _id: Z, rev: 1, run: "mine" },
      ].sort((p, q) => (p._id < q._id ? -1 : 1)),
    );
  });

  it("fails an insertOne of an existing _id with E11000 at its index in an unordered bulkWrite", async () => {
    const facts = freshCollection("ledger_insert_dup", "tracking_sync_facts");
    await facts.insertOne({ _id: Y as never, rev: 1, run: "other" });

    const error = await rejectionOf(
      facts.bulkWrite(
        [
          { insertOne: { document: { _id: X as never, rev: 1, run: "mine" } } },
          { insertOne: { document: { _id: Y as never, rev: 1, run: "mine" } } },
          { insertOne: { document: { _id: Z as never, rev: 1, run: "mine" } } },
        ],
        { ordered: false },
      ),
    );

    expect(error).toBeInstanceOf(MongoBulkWriteError);
    const bulkError = error as MongoBulkWriteError;
    const writeErrors = [bulkError.writeErrors].flat();
    expect(writeErrors.map((writeError) => [writeError.index, writeError.code])).toEqual([
      [1, 11000],
    ]);
    expect(bulkError.insertedCount).toBe(2);
    expect(await facts.findOne({ _id: Y as never })).toEqual({ _id: Y, rev: 1, run: "other" });
    expect(await facts.countDocuments()).toBe(3);
  });

  it("inserts a new fact through an upsert filtered on rev: null, and fails it with E11000 when the _id exists", async () => {
    const facts = freshCollection("ledger_upsert_null_rev", "tracking_sync_facts");
    await facts.insertOne({ _id: Y as never, rev: 1, run: "other" });

    const error = await rejectionOf(
      facts.bulkWrite(
        [X, Y].map((id) => ({
          updateOne: {
            filter: { _id: id as never, rev: null },
            update: { $set: { rev: 1, run: "mine" } },
            upsert: true,
          },
        })),
        { ordered: false },
      ),
    );

    const bulkError = error as MongoBulkWriteError;
    expect([bulkError.writeErrors].flat().map((e) => [e.index, e.code])).toEqual([[1, 11000]]);
    expect(bulkError.result.upsertedCount).toBe(1);
    expect(await facts.find({}).sort({ _id: 1 }).toArray()).toEqual(
      [
        { _id: X, rev: 1, run: "mine" },
        { _id: Y, rev: 1, run: "other" },
      ].sort((a, b) => (a._id < b._id ? -1 : 1)),
    );
  });

  it("matches nothing and inserts nothing for a plain updateOne on a stale rev", async () => {
    const facts = freshCollection("ledger_cas_plain", "tracking_sync_facts");
    await facts.insertOne({ _id: X as never, rev: 2, stale: [{ orderId: "o" }] });

    const result = await facts.bulkWrite(
      [{ updateOne: { filter: { _id: X as never, rev: 1 }, update: { $set: { stale: [] } } } }],
      { ordered: false },
    );

    expect(result).toMatchObject({ matchedCount: 0, modifiedCount: 0, upsertedCount: 0 });
    expect(await facts.find({}).toArray()).toEqual([{ _id: X, rev: 2, stale: [{ orderId: "o" }] }]);
  });
});

describe("reading facts", () => {
  it("finds string _ids with JSON quotes, backslashes, brackets and | exactly by $in", async () => {
    const facts = freshCollection("ledger_in", "tracking_sync_facts");
    const ids = [
      factId(contributionKey('cr "quoted"', "PUB-1", "display", null), "2025-12-10"),
      factId(contributionKey("cr\\back|slash", "Pub-1", null, "300x250"), "2025-12-10"),
      factId(contributionKey("$cr.dot", "PUB-1", "display", "728x90"), "2025-12-10"),
      factId(contributionKey("crème", "PUB-1", "display", "728x90"), "2025-12-11"),
    ];
    const nearMisses = [
      factId(contributionKey('cr "quoted"', "PUB-1", "display", null), "2025-12-11"),
      `${ids[0]}|`,
      (ids[2] as string).toUpperCase(),
      (ids[1] as string).replace("\\\\", "\\"),
      (ids[3] as string).slice(0, -1),
    ];
    await facts.insertMany([...ids, ...nearMisses].map((_id, n) => ({ _id: _id as never, n })));

    const found = await facts
      .find({ _id: { $in: [ids[0], ids[1], ids[2], ids[3], "absent|2025-12-10"] as never[] } })
      .toArray();

    expect(found.map((fact) => fact._id as unknown as string).sort()).toEqual([...ids].sort());
    expect(found.every((fact) => (fact.n as number) < ids.length)).toBe(true);
  });
});

describe("settling reads", () => {
  it("finds by $in and placedBy $ne: the facts another batch placed, and those without placedBy", async () => {
    const facts = freshCollection("ledger_placed_by", "tracking_sync_facts");
    await facts.insertMany([
      { _id: X as never, rev: 1, placedBy: "mine.1" },
      { _id: Y as never, rev: 2, placedBy: "other.4" },
      { _id: Z as never, rev: 1 },
      { _id: `${X}-not-asked` as never, rev: 1, placedBy: "other.4" },
    ]);

    const found = await facts
      .find(
        { _id: { $in: [X, Y, Z] as never[] }, placedBy: { $ne: "mine.1" } },
        { projection: { rev: 1 } },
      )
      .toArray();

    expect(found.sort((a, b) => (String(a._id) < String(b._id) ? -1 : 1))).toEqual(
      [
        { _id: Y, rev: 2 },
        { _id: Z, rev: 1 },
      ].sort((a, b) => (a._id < b._id ? -1 : 1)),
    );
  });
});

describe("the provenance query", () => {
  it("joins each unwound contribution to its run with $lookup, and $first of the joined array names the file (fields left out for a run with no document)", async () => {
    const db = client.db(mongo.freshDbName("ledger_provenance"));
    const startedAt = new Date("2025-12-11T03:00:00.000Z");
    await db.collection("tracking_sync_runs").insertMany([
      {
        _id: "run|1" as never,
        source: { bucket: "b", key: "day.csv", eTag: '"e1"' },
        startedAt,
        outcome: "synced",
      },
      {
        _id: "run-2" as never,
        source: { bucket: "b", key: "day-fixed.csv", eTag: '"e2"' },
        startedAt: new Date("2025-12-12T03:00:00.000Z"),
        outcome: "synced",
      },
    ]);
    const entries = db.collection("performance_entries");
    const contributions = [
      contribution("x", { impressions: 999 }, 2, { run: "run-2", line: 2 }),
      contribution("y", { impressions: 2000 }, 1, { run: "run|1", line: 3 }),
      contribution("z", { impressions: 5 }, 1, { run: "run-gone", line: 4 }),
    ];
    const { insertedId } = await entries.insertOne({ ...entryKey(), contributions });
    await entries.insertOne({
      ...entryKey("o-2"),
      contributions: [contribution("w", { impressions: 1 }, 1, { run: "run|1" })],
    });

    const origins = await entries.aggregate(provenancePipeline({ _id: insertedId })).toArray();

    expect(origins).toEqual([
      {
        creativeId: "x",
        impressions: 999,
        line: 2,
        file: { bucket: "b", key: "day-fixed.csv", eTag: '"e2"' },
        runStartedAt: new Date("2025-12-12T03:00:00.000Z"),
      },
      {
        creativeId: "y",
        impressions: 2000,
        line: 3,
        file: { bucket: "b", key: "day.csv", eTag: '"e1"' },
        runStartedAt: startedAt,
      },
      { creativeId: "z", impressions: 5, line: 4 },
    ]);
    expect(Object.keys(origins[2] as Document)).toEqual(["creativeId", "impressions", "line"]);
  });
});
