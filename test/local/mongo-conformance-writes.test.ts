import {
  type Collection,
  type Document,
  MongoBulkWriteError,
  MongoClient,
  MongoServerError,
  ObjectId,
} from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMongo, type TestMongo } from "../helpers/mongo.js";

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

function freshCollection(prefix: string): Collection<Document> {
  return client.db(mongo.freshDbName(prefix)).collection("entries");
}

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the operation to fail, but it succeeded");
}

describe("inserts", () => {
  it("stores the document with the _id the driver generated and reads it back", async () => {
    const entries = freshCollection("insert");

    const { insertedId } = await entries.insertOne({ orderId: "o-1", impressions: 10 });

    expect(insertedId).toBeInstanceOf(ObjectId);
    expect(await entries.findOne({ _id: insertedId })).toEqual({
      _id: insertedId,
      orderId: "o-1",
      impressions: 10,
    });
  });

  it("rejects a second document with the same _id with code 11000", async () => {
    const entries = freshCollection("insert_dup_id");
    await entries.insertOne({ _id: "same" as never, n: 1 });

    const error = await rejectionOf(entries.insertOne({ _id: "same" as never, n: 2 }));

    expect(error).toBeInstanceOf(MongoServerError);
    expect((error as MongoServerError).code).toBe(11000);
    expect(await entries.countDocuments()).toBe(1);
  });
});

describe("upserts", () => {
  it("inserts the filter's equality fields plus the update when nothing matches", async () => {
    const entries = freshCollection("upsert_shape");
    const dateStart = new Date("2025-12-10T00:00:00.000Z");
    const orderId = new ObjectId();

    const result = await entries.updateOne(
      { orderId, itemPath: "pub-1", dateStart, source: "automated", "meta.kind": "daily" },
      { $set: { impressions: 100 } },
      { upsert: true },
    );

    expect(result.upsertedCount).toBe(1);
    expect(result.upsertedId).toBeInstanceOf(ObjectId);
    expect(await entries.findOne({}, { projection: { _id: 0 } })).toEqual({
      orderId,
      itemPath: "pub-1",
      dateStart,
      source: "automated",
      meta: { kind: "daily" },
      impressions: 100,
    });
  });

  it("takes fields pinned by $eq and $and but not by range operators", async () => {
    const entries = freshCollection("upsert_operators");

    await entries.updateOne(
      { $and: [{ a: 1 }, { b: { $eq: "two" } }], c: { $gt: 5 } },
      { $set: { d: true } },
      { upsert: true },
    );

    expect(await entries.findOne({}, { projection: { _id: 0 } })).toEqual({
      a: 1,
      b: "two",
      d: true,
    });
  });

  it("uses the filter's _id for the inserted document", async () => {
    const entries = freshCollection("upsert_id");

    const result = await entries.updateOne(
      { _id: "fixed" as never },
      { $set: { n: 1 } },
      { upsert: true },
    );

    expect(result.upsertedId).toBe("fixed");
    expect(await entries.findOne({ _id: "fixed" as never })).toEqual({ _id: "fixed", n: 1 });
  });

  it("applies $setOnInsert only when the upsert inserts", async () => {
    const entries = freshCollection("set_on_insert");
    const key = { orderId: "o-1", itemPath: "p" };
    const firstSeen = new Date("2025-01-01T00:00:00.000Z");
    const later = new Date("2025-02-01T00:00:00.000Z");

    await entries.updateOne(
      key,
      { $set: { impressions: 1 }, $setOnInsert: { createdAt: firstSeen } },
      { upsert: true },
    );
    const second = await entries.updateOne(
      key,
      { $set: { impressions: 2 }, $setOnInsert: { createdAt: later } },
      { upsert: true },
    );

    expect(second).toMatchObject({ matchedCount: 1, modifiedCount: 1, upsertedCount: 0 });
    expect(await entries.findOne(key, { projection: { _id: 0 } })).toEqual({
      ...key,
      impressions: 2,
      createdAt: firstSeen,
    });
  });

  it("matches without modifying when the update is only $setOnInsert, by a unique key or any other filter", async () => {
    const entries = freshCollection("set_on_insert_only");
    await entries.createIndex({ orderId: 1, itemPath: 1 }, { unique: true });
    const whole = (n: number) => ({ $setOnInsert: { n, tags: ["a", n], nested: { n } } });
    await entries.bulkWrite(
      [1, 2, 3].map((n) => ({
        updateOne: { filter: { orderId: "o", itemPath: `p${n}` }, update: whole(n), upsert: true },
      })),
    );
    const before = await entries.find({}, { sort: { itemPath: 1 } }).toArray();

    const byKey = await entries.bulkWrite(
      [1, 2, 4].map((n) => ({
        updateOne: { filter: { orderId: "o", itemPath: `p${n}` }, update: whole(9), upsert: true },
      })),
      { ordered: false },
    );
    const byScan = await entries.updateOne({ n: 2 }, whole(8), { upsert: true });
    const many = await entries.updateMany({ orderId: "o" }, whole(7));
    const missing = await entries.updateOne({ orderId: "none", itemPath: "x" }, whole(6));

    expect(byKey).toMatchObject({ matchedCount: 2, modifiedCount: 0, upsertedCount: 1 });
    expect(byKey.upsertedIds).toEqual({ 2: expect.any(ObjectId) });
    expect(byScan).toMatchObject({ matchedCount: 1, modifiedCount: 0, upsertedCount: 0 });
    expect(many).toMatchObject({ matchedCount: 4, modifiedCount: 0 });
    expect(missing).toMatchObject({ matchedCount: 0, modifiedCount: 0, upsertedCount: 0 });
    const after = await entries.find({}, { sort: { itemPath: 1 } }).toArray();
    expect(after.slice(0, 3)).toEqual(before);
    expect(after[3]).toMatchObject({ orderId: "o", itemPath: "p4", n: 9, tags: ["a", 9] });
    expect(after).toHaveLength(4);
  });

  it("counts $set of equal dates, ids and sub-documents as unchanged, and adds null fields", async () => {
    const entries = freshCollection("set_equal");
    const at = new Date("2025-12-10T00:00:00.000Z");
    const ref = new ObjectId();
    await entries.insertOne({ k: 1, at, ref, sub: { a: 1, b: [1, 2] } });

    const same = await entries.updateOne(
      { k: 1 },
      {
        $set: {
          at: new Date(at.getTime()),
          ref: new ObjectId(ref.toHexString()),
          sub: { a: 1, b: [1, 2] },
        },
      },
    );
    const reordered = await entries.updateOne({ k: 1 }, { $set: { sub: { b: [1, 2], a: 1 } } });
    const withNull = await entries.updateOne({ k: 1 }, { $set: { gone: null } });

    expect(same.modifiedCount).toBe(0);
    expect(reordered.modifiedCount).toBe(1);
    expect(withNull.modifiedCount).toBe(1);
    expect(await entries.findOne({ k: 1 }, { projection: { _id: 0, sub: 1, gone: 1 } })).toEqual({
      sub: { b: [1, 2], a: 1 },
      gone: null,
    });
  });

  it("stores _id first, then the filter's fields, then new fields in lexicographic order", async () => {
    const entries = freshCollection("field_order");

    await entries.updateOne(
      { orderId: "o-1", day: 1 },
      { $set: { updatedAt: 1, clicks: 2 }, $setOnInsert: { createdAt: 3 } },
      { upsert: true },
    );

    const stored = await entries.findOne({ orderId: "o-1" });
    expect(Object.keys(stored ?? {})).toEqual([
      "_id",
      "orderId",
      "day",
      "clicks",
      "createdAt",
      "updatedAt",
    ]);
  });

  it("reports a matched but unchanged document as not modified", async () => {
    const entries = freshCollection("unchanged");
    await entries.insertOne({ k: 1, n: 5 });

    const result = await entries.updateOne({ k: 1 }, { $set: { n: 5 } }, { upsert: true });

    expect(result).toMatchObject({ matchedCount: 1, modifiedCount: 0, upsertedCount: 0 });
  });

  it("finds the existing document through a compound unique index instead of inserting", async () => {
    const entries = freshCollection("upsert_unique");
    await entries.createIndex(
      { orderId: 1, itemPath: 1, dateStart: 1, source: 1 },
      { unique: true },
    );
    const key = {
      orderId: new ObjectId(),
      itemPath: "a/b",
      dateStart: new Date("2025-12-10T00:00:00.000Z"),
      source: "automated",
    };

    await entries.updateOne(key, { $set: { impressions: 1 } }, { upsert: true });
    await entries.updateOne(key, { $inc: { impressions: 4 } }, { upsert: true });

    const stored = await entries.find({}).toArray();
    expect(stored).toHaveLength(1);
    expect(stored[0]?.impressions).toBe(5);
  });

  it("replaces the whole document (keeping _id) for a replacement upsert", async () => {
    const entries = freshCollection("replace");
    const { insertedId } = await entries.insertOne({ k: 1, old: true });

    await entries.replaceOne({ k: 1 }, { k: 1, fresh: true }, { upsert: true });

    expect(await entries.findOne({ k: 1 })).toEqual({ _id: insertedId, k: 1, fresh: true });
  });
});

describe("operator updates", () => {
  it("applies $set, $inc, $unset and $push together", async () => {
    const entries = client
      .db(mongo.freshDbName("operators"))
      .collection<{ k: number; n: number; gone?: string; tags: string[]; nested?: { v: number } }>(
        "entries",
      );
    await entries.insertOne({ k: 1, n: 1, gone: "x", tags: ["a"] });

    await entries.updateOne(
      { k: 1 },
      { $set: { "nested.v": 2 }, $inc: { n: 2 }, $unset: { gone: "" }, $push: { tags: "b" } },
    );

    expect(await entries.findOne({ k: 1 }, { projection: { _id: 0 } })).toEqual({
      k: 1,
      n: 3,
      tags: ["a", "b"],
      nested: { v: 2 },
    });
  });

  it("updates every matching document with updateMany and none with a non-matching filter", async () => {
    const entries = freshCollection("update_many");
    await entries.insertMany([{ g: 1 }, { g: 1 }, { g: 2 }]);

    const many = await entries.updateMany({ g: 1 }, { $set: { seen: true } });
    const none = await entries.updateMany({ g: 3 }, { $set: { seen: true } });

    expect(many).toMatchObject({ matchedCount: 2, modifiedCount: 2 });
    expect(none).toMatchObject({ matchedCount: 0, modifiedCount: 0 });
    expect(await entries.countDocuments({ seen: true })).toBe(2);
  });

  it("rejects $set and $setOnInsert on the same path with code 40", async () => {
    const entries = freshCollection("conflict");

    const error = await rejectionOf(
      entries.updateOne(
        { k: 1 },
        { $set: { createdAt: 1 }, $setOnInsert: { createdAt: 2 } },
        { upsert: true },
      ),
    );

    expect(error).toBeInstanceOf(MongoServerError);
    expect((error as MongoServerError).code).toBe(40);
    expect((error as MongoServerError).message).toBe(
      "Updating the path 'createdAt' would create a conflict at 'createdAt'",
    );
    expect(await entries.countDocuments()).toBe(0);
  });

  it("rejects a path and its prefix, in either order and across $rename, with code 40", async () => {
    const entries = freshCollection("conflict_prefix");
    await entries.insertOne({ k: 1, a: { b: 1 }, x: 1 });
    const updates: Document[] = [
      { $set: { "a.b": 1, "a-b": 2 }, $unset: { a: "" } },
      { $set: { a: 1 }, $inc: { "a.b.c": 1 } },
      { $rename: { x: "a.b" }, $set: { "a.b.c": 1 } },
      { $set: { "a.b": 1, "a.bc": 1, "a.b.c": 1 } },
    ];

    const messages: string[] = [];
    for (const update of updates) {
      const error = await rejectionOf(entries.updateOne({ k: 1 }, update));
      expect((error as MongoServerError).code).toBe(40);
      messages.push((error as MongoServerError).message);
    }

    for (const message of messages) {
      expect(message).toMatch(/^Updating the path '[a-z.]+' would create a conflict at '[a-z.]+'$/);
    }
    // The embedded server names the first conflicting pair in the order the update lists them.
    if (mongo.server) {
      expect(messages).toEqual([
        "Updating the path 'a' would create a conflict at 'a'",
        "Updating the path 'a.b.c' would create a conflict at 'a'",
        "Updating the path 'a.b.c' would create a conflict at 'a.b'",
        "Updating the path 'a.b.c' would create a conflict at 'a.b'",
      ]);
    }
    expect(await entries.findOne({ k: 1 }, { projection: { _id: 0 } })).toEqual({
      k: 1,
      a: { b: 1 },
      x: 1,
    });
  });

  it("rejects an unknown update operator with FailedToParse (code 9)", async () => {
    const entries = freshCollection("bogus");
    await entries.insertOne({ k: 1 });

    const error = await rejectionOf(entries.updateOne({ k: 1 }, { $bogus: { n: 1 } } as never));

    expect(error).toBeInstanceOf(MongoServerError);
    expect((error as MongoServerError).code).toBe(9);
  });

  it("rejects $inc on a string field with TypeMismatch (code 14) and leaves it unchanged", async () => {
    const entries = freshCollection("inc_string");
    await entries.insertOne({ k: 1, n: "text" });

    const error = await rejectionOf(entries.updateOne({ k: 1 }, { $inc: { n: 1 } }));

    expect(error).toBeInstanceOf(MongoServerError);
    expect((error as MongoServerError).code).toBe(14);
    expect((await entries.findOne({ k: 1 }))?.n).toBe("text");
  });

  it("refuses to change _id with ImmutableField (code 66)", async () => {
    const entries = freshCollection("immutable");
    await entries.insertOne({ _id: 1 as never, k: 1 });

    const error = await rejectionOf(entries.updateOne({ k: 1 }, { $set: { _id: 2 } }));

    expect((error as MongoServerError).code).toBe(66);
    expect(await entries.findOne({ k: 1 })).toEqual({ _id: 1, k: 1 });
  });

  it("refuses a pipeline that changes a field inside a sub-document _id, and keeps one that does not", async () => {
    const entries = freshCollection("immutable_nested");
    await entries.insertOne({ _id: { a: 1 } as never, k: 1 });

    const error = await rejectionOf(entries.updateOne({ k: 1 }, [{ $set: { "_id.a": 2 } }]));
    const kept = await entries.updateOne({ k: 1 }, [{ $set: { "_id.a": 1, n: 1 } }]);

    expect((error as MongoServerError).code).toBe(66);
    expect(kept).toMatchObject({ matchedCount: 1, modifiedCount: 1 });
    expect(await entries.findOne({ k: 1 })).toEqual({ _id: { a: 1 }, k: 1, n: 1 });
  });
});

describe("array and date operators", () => {
  it("updates the array element the filter matched with the positional $", async () => {
    const entries = freshCollection("positional");
    await entries.insertOne({
      k: 1,
      items: [
        { sku: "a", qty: 1 },
        { sku: "b", qty: 1 },
      ],
    });

    await entries.updateOne({ k: 1, "items.sku": "b" }, { $set: { "items.$.qty": 5 } });

    expect((await entries.findOne({ k: 1 }))?.items).toEqual([
      { sku: "a", qty: 1 },
      { sku: "b", qty: 5 },
    ]);
  });

  it("updates the elements chosen by arrayFilters", async () => {
    const entries = freshCollection("array_filters");
    await entries.insertOne({ k: 1, scores: [1, 7, 3, 9] });

    await entries.updateOne(
      { k: 1 },
      { $set: { "scores.$[high]": 0 } },
      { arrayFilters: [{ high: { $gt: 5 } }] },
    );

    expect((await entries.findOne({ k: 1 }))?.scores).toEqual([1, 0, 3, 0]);
  });

  it("sets $currentDate to one Date for every document of the command", async () => {
    const entries = freshCollection("current_date");
    await entries.insertMany([{ g: 1 }, { g: 1 }]);

    await entries.updateMany({ g: 1 }, { $currentDate: { touchedAt: true } });

    const stamps = (await entries.find({}).toArray()).map((doc) => doc.touchedAt);
    expect(stamps[0]).toBeInstanceOf(Date);
    expect(stamps[1]).toEqual(stamps[0]);
  });
});

describe("unique indexes", () => {
  it("reports a violation with MongoDB's message shape, keyPattern and keyValue", async () => {
    const dbName = mongo.freshDbName("unique_message");
    const entries = client.db(dbName).collection("entries");
    await entries.createIndex({ orderId: 1, day: 1 }, { unique: true, name: "order_day" });
    await entries.insertOne({ orderId: "o-1", day: 3 });

    const error = (await rejectionOf(
      entries.insertOne({ orderId: "o-1", day: 3 }),
    )) as MongoServerError;

    expect(error.code).toBe(11000);
    expect(error.message).toBe(
      `E11000 duplicate key error collection: ${dbName}.entries index: order_day dup key: { orderId: "o-1", day: 3 }`,
    );
    expect(error.keyPattern).toEqual({ orderId: 1, day: 1 });
    expect(error.keyValue).toEqual({ orderId: "o-1", day: 3 });
  });

  it("treats a Date and its ISO string, and an ObjectId and its hex, as different keys", async () => {
    const entries = freshCollection("unique_types");
    await entries.createIndex({ v: 1 }, { unique: true });
    const date = new Date("2025-12-10T00:00:00.000Z");
    const oid = new ObjectId();

    await entries.insertMany([
      { v: date },
      { v: date.toISOString() },
      { v: oid },
      { v: oid.toHexString() },
    ]);

    expect(await entries.countDocuments()).toBe(4);
  });

  it("treats a missing field as null, so only one document may lack it", async () => {
    const entries = freshCollection("unique_missing");
    await entries.createIndex({ v: 1 }, { unique: true });
    await entries.insertOne({ other: 1 });

    const error = await rejectionOf(entries.insertOne({ v: null }));

    expect((error as MongoServerError).code).toBe(11000);
    expect((error as MongoServerError).keyValue).toEqual({ v: null });
  });

  it("stops an ordered bulkWrite at the first violation and reports its index", async () => {
    const entries = freshCollection("ordered_bulk");
    await entries.createIndex({ k: 1 }, { unique: true });

    const error = await rejectionOf(
      entries.bulkWrite(
        [
          { insertOne: { document: { k: 1 } } },
          { insertOne: { document: { k: 1 } } },
          { insertOne: { document: { k: 2 } } },
        ],
        { ordered: true },
      ),
    );

    expect(error).toBeInstanceOf(MongoBulkWriteError);
    const bulkError = error as MongoBulkWriteError;
    const writeErrors = [bulkError.writeErrors].flat();
    expect(writeErrors).toHaveLength(1);
    expect(writeErrors[0]?.index).toBe(1);
    expect(writeErrors[0]?.code).toBe(11000);
    expect(bulkError.insertedCount).toBe(1);
    expect(await entries.countDocuments()).toBe(1);
  });

  it("continues an unordered bulkWrite past violations and reports each index", async () => {
    const entries = freshCollection("unordered_bulk");
    await entries.createIndex({ k: 1 }, { unique: true });
    await entries.insertOne({ k: "taken", email: "a@x" });
    await entries.createIndex({ email: 1 }, { unique: true, sparse: true });

    const error = await rejectionOf(
      entries.bulkWrite(
        [
          { updateOne: { filter: { k: "new" }, update: { $set: { n: 1 } }, upsert: true } },
          { insertOne: { document: { k: "taken" } } },
          {
            updateOne: { filter: { k: "other" }, update: { $set: { email: "a@x" } }, upsert: true },
          },
          { updateOne: { filter: { k: "taken" }, update: { $set: { n: 2 } }, upsert: true } },
        ],
        { ordered: false },
      ),
    );

    expect(error).toBeInstanceOf(MongoBulkWriteError);
    const bulkError = error as MongoBulkWriteError;
    const writeErrors = [bulkError.writeErrors].flat();
    expect(writeErrors.map((writeError) => writeError.index).sort()).toEqual([1, 2]);
    expect(writeErrors.every((writeError) => writeError.code === 11000)).toBe(true);
    expect(bulkError.upsertedCount).toBe(1);
    expect(bulkError.modifiedCount).toBe(1);
    expect(await entries.countDocuments()).toBe(2);
  });

  it("inserts (and collides) when an upsert's extra condition rules out the indexed document", async () => {
    const entries = freshCollection("upsert_residual");
    await entries.createIndex({ k: 1 }, { unique: true });
    await entries.insertOne({ k: 1, n: 3 });

    const error = await rejectionOf(
      entries.updateOne({ k: 1, n: { $gt: 5 } }, { $set: { seen: true } }, { upsert: true }),
    );

    expect((error as MongoServerError).code).toBe(11000);
    expect(await entries.findOne({ k: 1 }, { projection: { _id: 0 } })).toEqual({ k: 1, n: 3 });
  });

  it("reports E11000 with keyPattern and keyValue for an insert-only upsert whose extra condition rules out the stored document", async () => {
    const entries = freshCollection("upsert_residual_insert_only");
    await entries.createIndex({ orderId: 1, day: 1 }, { unique: true, name: "entry_key" });
    await entries.insertOne({ orderId: "o", day: 1, n: 3 });

    const error = await rejectionOf(
      entries.updateOne(
        { orderId: "o", day: 1, n: { $gt: 5 } },
        { $setOnInsert: { n: 9 } },
        { upsert: true },
      ),
    );
    const inserted = await entries.updateOne(
      { orderId: "o", day: 2 },
      { $setOnInsert: { n: 1 } },
      { upsert: true },
    );

    expect(error).toBeInstanceOf(MongoServerError);
    expect((error as MongoServerError).code).toBe(11000);
    expect((error as MongoServerError).message).toContain("index: entry_key dup key:");
    expect((error as MongoServerError).keyPattern).toEqual({ orderId: 1, day: 1 });
    expect((error as MongoServerError).keyValue).toEqual({ orderId: "o", day: 1 });
    expect(inserted.upsertedCount).toBe(1);
    expect(await entries.findOne({ day: 1 }, { projection: { _id: 0 } })).toEqual({
      orderId: "o",
      day: 1,
      n: 3,
    });
  });

  it("rolls back an update that would violate the index, keeping both documents intact", async () => {
    const entries = freshCollection("update_violation");
    await entries.createIndex({ k: 1 }, { unique: true });
    await entries.insertMany([
      { k: 1, n: 1 },
      { k: 2, n: 2 },
    ]);

    const error = await rejectionOf(entries.updateOne({ k: 2 }, { $set: { k: 1, n: 99 } }));

    expect((error as MongoServerError).code).toBe(11000);
    expect(await entries.find({}, { projection: { _id: 0 }, sort: { k: 1 } }).toArray()).toEqual([
      { k: 1, n: 1 },
      { k: 2, n: 2 },
    ]);
    // The index still maps k:2 to its document: upserting it updates rather than inserts.
    await entries.updateOne({ k: 2 }, { $set: { n: 3 } }, { upsert: true });
    expect(await entries.countDocuments()).toBe(2);
  });

  it("frees a key when its document changes the indexed field or is deleted", async () => {
    const entries = freshCollection("index_maintenance");
    await entries.createIndex({ k: 1 }, { unique: true });
    await entries.insertMany([{ k: "a" }, { k: "b" }]);

    await entries.updateOne({ k: "a" }, { $set: { k: "c" } });
    await entries.deleteOne({ k: "b" });
    await entries.insertMany([{ k: "a" }, { k: "b" }]);

    expect((await entries.distinct("k")).sort()).toEqual(["a", "b", "c"]);
  });
});

describe("pipeline updates", () => {
  it("evaluates every statement of a bulk with its own literals and variables", async () => {
    const entries = freshCollection("pipeline_own_literals");
    await entries.insertOne({ k: 2, total: 10 });
    const add = (k: number, amount: number) => ({
      updateOne: {
        filter: { k },
        update: [
          {
            $set: {
              total: {
                $let: {
                  vars: { a: { $literal: amount } },
                  in: { $add: [{ $ifNull: ["$total", 0] }, "$$a"] },
                },
              },
            },
          },
        ],
        upsert: true,
      },
    });
    // A variable bound by an earlier statement must not be visible to a later one.
    const unbound = {
      updateOne: { filter: { k: 4 }, update: [{ $set: { total: "$$a" } }], upsert: true },
    };

    const error = await rejectionOf(
      entries.bulkWrite([add(1, 1), add(2, 2), add(3, 3), unbound], { ordered: false }),
    );

    expect((error as MongoBulkWriteError).writeErrors).toMatchObject([{ index: 3 }]);
    const stored = await entries.find({}, { projection: { _id: 0 }, sort: { k: 1 } }).toArray();
    expect(stored).toEqual([
      { k: 1, total: 1 },
      { k: 2, total: 12 },
      { k: 3, total: 3 },
    ]);
  });

  it("keeps $literal values that look like field paths as data", async () => {
    const entries = freshCollection("literal");

    await entries.updateOne(
      { k: 1 },
      [{ $set: { label: { $literal: "$notAPath" }, obj: { $literal: { a: "$b" } } } }],
      { upsert: true },
    );

    expect(await entries.findOne({ k: 1 }, { projection: { _id: 0 } })).toEqual({
      k: 1,
      label: "$notAPath",
      obj: { a: "$b" },
    });
  });

  it("gives every document of one command the same $$NOW", async () => {
    const entries = freshCollection("now");
    await entries.insertMany([{ g: 1 }, { g: 1 }, { g: 1 }]);

    await entries.updateMany({ g: 1 }, [{ $set: { at: "$$NOW" } }]);

    const stamps = (await entries.find({}).toArray()).map((doc) => doc.at);
    expect(stamps[0]).toBeInstanceOf(Date);
    expect(new Set(stamps.map((stamp) => (stamp as Date).getTime())).size).toBe(1);
  });

  it("gives every statement of one bulkWrite the same $$NOW, even nested, and the next command a later one", async () => {
    const entries = freshCollection("now_bulk");
    const upsert = (k: number) => ({
      updateOne: {
        filter: { k },
        update: [
          {
            $set: {
              at: "$$NOW",
              nested: { $let: { vars: { t: "$$NOW" }, in: { $cond: [true, "$$t", null] } } },
              text: { $literal: "$$NOW" },
            },
          },
        ],
        upsert: true,
      },
    });

    await entries.bulkWrite([upsert(1), upsert(2), upsert(3)], { ordered: false });
    const first = await entries.find({}, { sort: { k: 1 } }).toArray();
    await new Promise((resolve) => setTimeout(resolve, 5));
    await entries.bulkWrite([upsert(1)]);
    const again = await entries.findOne({ k: 1 });

    const stamps = first.flatMap((doc) => [doc.at, doc.nested] as Date[]);
    expect(stamps).toHaveLength(6);
    expect(new Set(stamps.map((stamp) => stamp.getTime())).size).toBe(1);
    expect(first.map((doc) => doc.text)).toEqual(["$$NOW", "$$NOW", "$$NOW"]);
    expect(again?.at).toBeInstanceOf(Date);
    expect((again as Document).at.getTime()).toBeGreaterThan((stamps[0] as Date).getTime());
  });

  it("evaluates $cond and $ifNull so createdAt is set once and kept", async () => {
    const entries = freshCollection("cond_ifnull");
    const pipeline = (n: number) => [
      {
        $set: {
          n: { $literal: n },
          createdAt: { $ifNull: ["$createdAt", "$$NOW"] },
          big: { $cond: [{ $gte: [{ $literal: n }, 10] }, true, false] },
        },
      },
    ];

    await entries.updateOne({ k: 1 }, pipeline(1), { upsert: true });
    const first = await entries.findOne({ k: 1 });
    await entries.updateOne({ k: 1 }, pipeline(20), { upsert: true });
    const second = await entries.findOne({ k: 1 });

    expect(first?.createdAt).toBeInstanceOf(Date);
    expect(second?.createdAt).toEqual(first?.createdAt);
    expect(second).toMatchObject({ n: 20, big: true });
  });

  it("keeps per-creative contributions and derives sums with $filter, $concatArrays and $reduce", async () => {
    const entries = freshCollection("contributions");
    await entries.createIndex(
      { orderId: 1, itemPath: 1, dateStart: 1, source: 1 },
      { unique: true },
    );
    const key = {
      orderId: "o-1",
      itemPath: "pub",
      dateStart: new Date("2025-12-10T00:00:00.000Z"),
      source: "automated",
    };
    const contribute = (creativeId: string, impressions: number, clicks: number) => [
      {
        $set: {
          contributions: {
            $concatArrays: [
              {
                $filter: {
                  input: { $ifNull: ["$contributions", []] },
                  cond: { $ne: ["$$this.creativeId", { $literal: creativeId }] },
                },
              },
              [{ $literal: { creativeId, impressions, clicks } }],
            ],
          },
        },
      },
      {
        $set: {
          impressions: {
            $reduce: {
              input: "$contributions",
              initialValue: 0,
              in: { $add: ["$$value", "$$this.impressions"] },
            },
          },
          clicks: { $sum: "$contributions.clicks" },
        },
      },
    ];

    // Two creatives, then the first one re-processed with new numbers.
    await entries.bulkWrite(
      [
        { updateOne: { filter: key, update: contribute("300x250", 100, 2), upsert: true } },
        { updateOne: { filter: key, update: contribute("$728x90", 50, 1), upsert: true } },
      ],
      { ordered: true },
    );
    await entries.updateOne(key, contribute("300x250", 120, 3), { upsert: true });

    const stored = await entries.find({}).toArray();
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({ impressions: 170, clicks: 4 });
    expect(stored[0]?.contributions).toEqual([
      { creativeId: "$728x90", impressions: 50, clicks: 1 },
      { creativeId: "300x250", impressions: 120, clicks: 3 },
    ]);
  });

  it("supports $unset and $replaceWith stages", async () => {
    const entries = freshCollection("pipeline_stages");
    await entries.insertOne({ k: 1, drop: true, inner: { v: 1 } });

    await entries.updateOne({ k: 1 }, [{ $unset: "drop" }]);
    const afterUnset = await entries.findOne({ k: 1 }, { projection: { _id: 0 } });
    await entries.updateOne({ k: 1 }, [{ $replaceWith: { $mergeObjects: ["$$ROOT", "$inner"] } }]);

    expect(afterUnset).toEqual({ k: 1, inner: { v: 1 } });
    expect(await entries.findOne({ k: 1 }, { projection: { _id: 0 } })).toEqual({
      k: 1,
      inner: { v: 1 },
      v: 1,
    });
  });
});

describe("findOneAnd*", () => {
  it("returns the document before or after the update, and upserts", async () => {
    const entries = freshCollection("find_and_modify");
    await entries.insertOne({ k: 1, n: 1 });

    const before = await entries.findOneAndUpdate({ k: 1 }, { $inc: { n: 1 } });
    const after = await entries.findOneAndUpdate(
      { k: 1 },
      { $inc: { n: 1 } },
      { returnDocument: "after", projection: { _id: 0 } },
    );
    const upserted = await entries.findOneAndUpdate(
      { k: 2 },
      { $set: { n: 10 } },
      { upsert: true, returnDocument: "after", projection: { _id: 0 } },
    );

    expect(before).toMatchObject({ k: 1, n: 1 });
    expect(after).toEqual({ k: 1, n: 3 });
    expect(upserted).toEqual({ k: 2, n: 10 });
  });

  it("picks the first document in sort order and deletes or replaces it", async () => {
    const entries = freshCollection("find_and_delete");
    await entries.insertMany([
      { g: 1, n: 2 },
      { g: 1, n: 1 },
      { g: 1, n: 3 },
    ]);

    const deleted = await entries.findOneAndDelete({ g: 1 }, { sort: { n: 1 } });
    const replaced = await entries.findOneAndReplace(
      { g: 1 },
      { g: 1, n: 30 },
      { sort: { n: -1 }, returnDocument: "after", projection: { _id: 0 } },
    );

    expect(deleted?.n).toBe(1);
    expect(replaced).toEqual({ g: 1, n: 30 });
    expect(
      (await entries.find({}, { projection: { _id: 0 }, sort: { n: 1 } }).toArray()).map(
        (doc) => doc.n,
      ),
    ).toEqual([2, 30]);
  });
});

describe("deletes", () => {
  it("removes one or all matching documents", async () => {
    const entries = freshCollection("delete");
    await entries.insertMany([{ g: 1 }, { g: 1 }, { g: 1 }, { g: 2 }]);

    const one = await entries.deleteOne({ g: 1 });
    const all = await entries.deleteMany({ g: 1 });

    expect(one.deletedCount).toBe(1);
    expect(all.deletedCount).toBe(2);
    expect(await entries.find({}, { projection: { _id: 0 } }).toArray()).toEqual([{ g: 2 }]);
  });
});
