import {
  type CommandSucceededEvent,
  Decimal128,
  Double,
  Int32,
  Long,
  MongoClient,
  MongoServerError,
  ObjectId,
} from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMongo, type TestMongo } from "../helpers/mongo.js";

// Runs against the embedded server, or a real MongoDB when MONGODB_TEST_URI is set.
let mongo: TestMongo;
let client: MongoClient;
const succeeded: CommandSucceededEvent[] = [];

beforeAll(async () => {
  mongo = await startTestMongo();
  client = new MongoClient(mongo.uri, { serverSelectionTimeoutMS: 5_000, monitorCommands: true });
  client.on("commandSucceeded", (event) => succeeded.push(event));
  await client.connect();
});

afterAll(async () => {
  await client?.close();
  await mongo?.stop();
});

function freshCollection(prefix: string) {
  const dbName = mongo.freshDbName(prefix);
  return client.db(dbName).collection("entries");
}

function repliesTo(commandName: string, dbName: string): CommandSucceededEvent[] {
  return succeeded.filter(
    (event) => event.commandName === commandName && event.databaseName === dbName,
  );
}

function numbered(count: number) {
  return Array.from({ length: count }, (_, i) => ({ i, even: i % 2 === 0 }));
}

describe("find", () => {
  it("applies filter, projection, sort, skip and limit", async () => {
    const entries = freshCollection("find_options");
    await entries.insertMany(numbered(20));

    const page = await entries
      .find({ even: true }, { projection: { _id: 0, i: 1 } })
      .sort({ i: -1 })
      .skip(2)
      .limit(3)
      .toArray();

    expect(page).toEqual([{ i: 14 }, { i: 12 }, { i: 10 }]);
  });

  it("keeps _id first and excludes fields with an exclusion projection", async () => {
    const entries = freshCollection("projection");
    const { insertedId } = await entries.insertOne({ a: 1, b: 2, c: 3 });

    const included = await entries.findOne({}, { projection: { c: 1, a: 1 } });
    const excluded = await entries.findOne({}, { projection: { b: 0 } });

    expect(Object.keys(included ?? {})).toEqual(["_id", "a", "c"]);
    expect(excluded).toEqual({ _id: insertedId, a: 1, c: 3 });
  });

  it("sorts on several keys", async () => {
    const entries = freshCollection("multi_sort");
    await entries.insertMany([
      { g: 2, n: 1 },
      { g: 1, n: 2 },
      { g: 1, n: 1 },
    ]);

    const sorted = await entries
      .find({}, { projection: { _id: 0 }, sort: { g: 1, n: -1 } })
      .toArray();

    expect(sorted).toEqual([
      { g: 1, n: 2 },
      { g: 1, n: 1 },
      { g: 2, n: 1 },
    ]);
  });
});

describe("filters", () => {
  it("evaluates $expr comparisons between fields", async () => {
    const entries = freshCollection("expr");
    await entries.insertMany([
      { clicks: 5, impressions: 10 },
      { clicks: 20, impressions: 10 },
    ]);

    const suspicious = await entries
      .find({ $expr: { $gt: ["$clicks", "$impressions"] } }, { projection: { _id: 0 } })
      .toArray();

    expect(suspicious).toEqual([{ clicks: 20, impressions: 10 }]);
  });

  it("matches an anchored case-insensitive regular expression on the whole value", async () => {
    const entries = freshCollection("regex");
    await entries.insertMany([
      { campaignId: "ABC" },
      { campaignId: "xabcx" },
      { campaignId: "a.c" },
    ]);

    const whole = await entries
      .find({ campaignId: /^abc$/i }, { projection: { _id: 0 } })
      .toArray();
    const escaped = await entries
      .find({ campaignId: { $regex: "^a\\.c$", $options: "i" } }, { projection: { _id: 0 } })
      .toArray();

    expect(whole).toEqual([{ campaignId: "ABC" }]);
    expect(escaped).toEqual([{ campaignId: "a.c" }]);
  });

  it("combines a unique-index equality with further conditions", async () => {
    const entries = freshCollection("index_residual");
    await entries.createIndex({ k: 1 }, { unique: true });
    await entries.insertMany([
      { k: 1, n: 1 },
      { k: 2, n: 2 },
    ]);

    const hit = await entries.findOne({ k: 2, n: 2 }, { projection: { _id: 0 } });
    const miss = await entries.findOne({ k: 2, n: 1 });

    expect(hit).toEqual({ k: 2, n: 2 });
    expect(miss).toBeNull();
  });

  it("answers $or over compound unique keys, with and without further conditions", async () => {
    const entries = freshCollection("or_keys");
    await entries.createIndex({ orderId: 1, day: 1 }, { unique: true });
    await entries.insertMany([
      { orderId: "a", day: 1, n: 1 },
      { orderId: "a", day: 2, n: 2 },
      { orderId: "b", day: 1, n: 3 },
    ]);
    const keys = [
      { orderId: "a", day: 2 },
      { orderId: "b", day: 1 },
      { orderId: "b", day: 1 },
      { orderId: "z", day: 9 },
    ];

    const byKeys = await entries.find({ $or: keys }, { projection: { _id: 0, n: 1 } }).toArray();
    const narrowed = await entries.countDocuments({ $or: keys, n: { $gte: 3 } });
    const mixed = await entries.countDocuments({ $or: [...keys, { n: 1 }] });
    const updated = await entries.updateMany({ $or: keys }, [{ $set: { seen: true } }]);

    expect(byKeys.map((doc) => doc.n).sort()).toEqual([2, 3]);
    expect(narrowed).toBe(1);
    expect(mixed).toBe(3);
    expect(updated).toMatchObject({ matchedCount: 2, modifiedCount: 2 });
  });

  it("finds the same documents with and without a non-unique index, after writes too", async () => {
    const db = client.db(mongo.freshDbName("secondary_index"));
    const indexed = db.collection("indexed");
    const plain = db.collection("plain");
    await indexed.createIndex({ "tags.code": 1, n: 1 });
    const day = new Date("2025-12-10T00:00:00.000Z");
    const documents = [
      { _id: 1, tags: { code: "a" }, n: 1 },
      { _id: 2, tags: [{ code: "a" }, { code: "b" }], n: 2 },
      { _id: 3, tags: [{ code: ["b", "c"] }], n: 3 },
      { _id: 4, n: 4 },
      { _id: 5, tags: { code: null }, n: 5 },
      { _id: 6, tags: { code: day }, n: 6 },
      { _id: 7, tags: { code: day.toISOString() }, n: 7 },
    ];
    for (const collection of [indexed, plain]) {
      await collection.insertMany(documents.map((doc) => ({ ...doc })) as never[]);
      await collection.updateOne({ _id: 1 as never }, { $set: { "tags.code": "z" } });
      await collection.deleteOne({ _id: 7 as never });
    }
    const filters = [
      { "tags.code": "a" },
      { "tags.code": "b", n: { $gt: 2 } },
      { "tags.code": ["b", "c"] },
      { "tags.code": null },
      { "tags.code": day },
      { "tags.code": { $in: ["z", "c", day.toISOString()] } },
      { $and: [{ "tags.code": "z" }, { n: 1 }] },
    ];

    for (const filter of filters) {
      const fromIndex = await indexed.find(filter, { sort: { _id: 1 } }).toArray();
      const fromScan = await plain.find(filter, { sort: { _id: 1 } }).toArray();
      expect({ filter, ids: fromIndex.map((doc) => doc._id) }).toEqual({
        filter,
        ids: fromScan.map((doc) => doc._id),
      });
    }
    expect((await indexed.find({ "tags.code": "z" }).toArray()).map((doc) => doc._id)).toEqual([1]);
  });

  it("answers $in on a single-field unique index and on _id", async () => {
    const entries = freshCollection("in_unique");
    await entries.createIndex({ code: 1 }, { unique: true });
    await entries.insertMany([
      { _id: 1 as never, code: "x" },
      { _id: 2 as never, code: "y" },
      { _id: 3 as never, code: "z" },
    ]);

    const byCode = await entries.find({ code: { $in: ["z", "x", "nope"] } }).toArray();
    const byId = await entries.find({ _id: { $in: [3, 2, 2] as never[] }, code: "y" }).toArray();

    expect(byCode.map((doc) => doc._id).sort()).toEqual([1, 3]);
    expect(byId.map((doc) => doc._id)).toEqual([2]);
  });

  it("matches numbers of different BSON types through a unique index", async () => {
    const entries = freshCollection("numeric_types");
    await entries.createIndex({ k: 1 }, { unique: true });
    await entries.insertOne({ k: Long.fromNumber(5), label: "long" });

    const found = await entries.findOne({ k: 5 }, { projection: { _id: 0, label: 1 } });
    const duplicate = await entries.insertOne({ k: new Double(5) }).catch((error) => error);

    expect(found).toEqual({ label: "long" });
    expect((duplicate as MongoServerError).code).toBe(11000);
  });
});

describe("cursors", () => {
  it("returns a first batch of 101 documents by default and the rest through getMore", async () => {
    const dbName = mongo.freshDbName("default_batch");
    const entries = client.db(dbName).collection("entries");
    await entries.insertMany(numbered(250));

    const all = await entries.find({}).toArray();

    expect(all.map((doc) => doc.i)).toEqual(numbered(250).map((doc) => doc.i));
    const [findReply] = repliesTo("find", dbName);
    const firstBatch = (findReply?.reply as { cursor?: { firstBatch?: unknown[] } } | undefined)
      ?.cursor?.firstBatch;
    expect(firstBatch).toHaveLength(101);
    expect(repliesTo("getMore", dbName).length).toBeGreaterThan(0);
  });

  it("walks a large result over many batches of the requested size", async () => {
    const dbName = mongo.freshDbName("many_batches");
    const entries = client.db(dbName).collection("entries");
    await entries.insertMany(numbered(1050));

    const all = await entries.find({}, { batchSize: 100 }).toArray();

    expect(all).toHaveLength(1050);
    expect(new Set(all.map((doc) => doc.i)).size).toBe(1050);
    const getMores = repliesTo("getMore", dbName);
    expect(getMores).toHaveLength(10);
    const lastReply = getMores.at(-1)?.reply as { cursor: { id: Long; nextBatch: unknown[] } };
    expect(lastReply.cursor.nextBatch).toHaveLength(50);
    expect(Number(lastReply.cursor.id)).toBe(0);
  });

  it("stops at the limit even when it spans several batches", async () => {
    const entries = freshCollection("limit_batches");
    await entries.insertMany(numbered(300));

    const limited = await entries.find({}, { batchSize: 40, limit: 130, sort: { i: 1 } }).toArray();

    expect(limited.map((doc) => doc.i)).toEqual(numbered(130).map((doc) => doc.i));
  });

  it("forgets a killed cursor: getMore then fails with CursorNotFound (43)", async () => {
    const dbName = mongo.freshDbName("kill_cursor");
    const db = client.db(dbName);
    await db.collection("entries").insertMany(numbered(50));
    const reply = await db.command({ find: "entries", batchSize: 5 });
    const cursorId = reply.cursor.id as Long;

    const killed = await db.command({ killCursors: "entries", cursors: [cursorId] });
    const error = await db.command({ getMore: cursorId, collection: "entries" }).catch((e) => e);

    expect(Number(cursorId)).not.toBe(0);
    expect(killed.cursorsKilled.map(String)).toEqual([String(cursorId)]);
    expect(error).toBeInstanceOf(MongoServerError);
    expect((error as MongoServerError).code).toBe(43);
  });

  it("walks an aggregation result over several batches", async () => {
    const entries = freshCollection("aggregate_batches");
    await entries.insertMany(numbered(500));

    const evens = await entries
      .aggregate([{ $match: { even: true } }, { $project: { _id: 0, i: 1 } }], { batchSize: 30 })
      .toArray();

    expect(evens).toHaveLength(250);
    expect(evens[249]).toEqual({ i: 498 });
  });
});

describe("aggregation", () => {
  it("groups, sums, sorts and limits", async () => {
    const entries = freshCollection("group");
    await entries.insertMany([
      { order: "a", n: 1 },
      { order: "b", n: 5 },
      { order: "a", n: 2 },
      { order: "c", n: 1 },
    ]);

    const totals = await entries
      .aggregate([
        { $group: { _id: "$order", total: { $sum: "$n" }, rows: { $sum: 1 } } },
        { $sort: { total: -1 } },
        { $limit: 2 },
      ])
      .toArray();

    expect(totals).toEqual([
      { _id: "b", total: 5, rows: 1 },
      { _id: "a", total: 3, rows: 2 },
    ]);
  });

  it("unwinds arrays and counts the result", async () => {
    const entries = freshCollection("unwind");
    await entries.insertMany([{ tags: ["x", "y"] }, { tags: ["z"] }, { tags: [] }]);

    const [counted] = await entries.aggregate([{ $unwind: "$tags" }, { $count: "tags" }]).toArray();

    expect(counted).toEqual({ tags: 3 });
  });

  it("counts with countDocuments and estimatedDocumentCount", async () => {
    const entries = freshCollection("count");
    await entries.insertMany(numbered(7));

    expect(await entries.countDocuments({ even: true })).toBe(4);
    expect(await entries.estimatedDocumentCount()).toBe(7);
    expect(await entries.countDocuments({}, { skip: 2, limit: 3 })).toBe(3);
  });

  it("lists distinct values, unwinding arrays", async () => {
    const entries = freshCollection("distinct");
    await entries.insertMany([{ v: "a" }, { v: ["b", "a"] }, { v: "c", skip: true }, { w: 1 }]);

    const values = await entries.distinct("v", { skip: { $ne: true } });

    expect(values.sort()).toEqual(["a", "b"]);
  });
});

describe("BSON values", () => {
  it("round-trips ObjectId, Date, Long, Int32, Double, Decimal128, null and nesting", async () => {
    const entries = freshCollection("bson");
    const original = {
      _id: new ObjectId(),
      at: new Date("2025-12-10T23:59:59.999Z"),
      long: Long.fromString("9007199254740993"),
      int: new Int32(7),
      double: new Double(1.5),
      decimal: Decimal128.fromString("12.345"),
      nothing: null,
      nested: { list: [1, "two", { three: new Date(0) }], empty: {} },
    };
    await entries.insertOne(original);

    const raw = await entries.findOne(
      { _id: original._id },
      { promoteValues: false, promoteLongs: false },
    );

    expect(raw?._id).toEqual(original._id);
    expect(raw?.at).toEqual(original.at);
    expect(raw?.long).toBeInstanceOf(Long);
    expect(String(raw?.long)).toBe("9007199254740993");
    expect(raw?.int).toBeInstanceOf(Int32);
    expect(Number(raw?.int)).toBe(7);
    expect(raw?.double).toBeInstanceOf(Double);
    expect(Number(raw?.double)).toBe(1.5);
    expect(raw?.decimal).toBeInstanceOf(Decimal128);
    expect(String(raw?.decimal)).toBe("12.345");
    expect(raw?.nothing).toBeNull();
    expect(
      await entries.findOne({ _id: original._id }, { projection: { nested: 1, _id: 0 } }),
    ).toEqual({
      nested: original.nested,
    });
  });

  it("matches ObjectIds by equality, $in and across fields", async () => {
    const entries = freshCollection("oid_match");
    const [a, b, c] = [new ObjectId(), new ObjectId(), new ObjectId()];
    await entries.insertMany([
      { _id: a, ref: b },
      { _id: b, ref: c },
      { _id: c, ref: a },
    ]);

    const byIn = await entries.find({ _id: { $in: [new ObjectId(a.toHexString()), c] } }).toArray();
    const byRef = await entries.findOne({ ref: new ObjectId(c.toHexString()) });
    const byHex = await entries.findOne({ _id: a.toHexString() as never });

    expect(byIn.map((doc) => doc._id.toHexString()).sort()).toEqual(
      [a.toHexString(), c.toHexString()].sort(),
    );
    expect(byRef?._id).toEqual(b);
    expect(byHex).toBeNull();
  });

  it("compares and sorts Dates by time", async () => {
    const entries = freshCollection("dates");
    const day = (d: number) => new Date(Date.UTC(2025, 11, d));
    await entries.insertMany([
      { at: day(12) },
      { at: day(10) },
      { at: day(11) },
      { at: "2025-12-11" },
    ]);

    const inRange = await entries
      .find({ at: { $gte: day(11), $lt: day(13) } }, { projection: { _id: 0 }, sort: { at: 1 } })
      .toArray();

    expect(inRange).toEqual([{ at: day(11) }, { at: day(12) }]);
  });

  it("matches a string field by equality and $in", async () => {
    const entries = freshCollection("strings");
    await entries.insertMany([{ orderId: "o-1" }, { orderId: "o-2" }, { orderId: "o-3" }]);

    const one = await entries.find({ orderId: "o-2" }).toArray();
    const some = await entries.find({ orderId: { $in: ["o-1", "o-3", "o-9"] } }).toArray();

    expect(one).toHaveLength(1);
    expect(some.map((doc) => doc.orderId).sort()).toEqual(["o-1", "o-3"]);
  });
});
