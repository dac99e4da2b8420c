import { MongoClient, MongoServerError } from "mongodb";
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

async function rejectionOf(promise: Promise<unknown>): Promise<MongoServerError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof MongoServerError) return error;
    throw error;
  }
  throw new Error("expected the operation to fail, but it succeeded");
}

describe("commands", () => {
  it("answers ping, hello and buildInfo", async () => {
    const admin = client.db("admin");

    const ping = await admin.command({ ping: 1 });
    const hello = await admin.command({ hello: 1 });
    const buildInfo = await admin.command({ buildInfo: 1 });

    expect(ping.ok).toBe(1);
    expect(hello).toMatchObject({ isWritablePrimary: true, maxWriteBatchSize: 100_000 });
    expect(hello.maxWireVersion).toBeGreaterThanOrEqual(8);
    expect(typeof buildInfo.version).toBe("string");
  });

  it("rejects an unknown command with CommandNotFound (59)", async () => {
    const db = client.db(mongo.freshDbName("unknown"));

    const error = await rejectionOf(db.command({ frobnicate: 1 }));

    expect(error.code).toBe(59);
    expect(error.codeName).toBe("CommandNotFound");
    expect(error.message).toBe("no such command: 'frobnicate'");
  });
});

describe("indexes", () => {
  it("creates, lists and drops indexes", async () => {
    const entries = client.db(mongo.freshDbName("indexes")).collection("entries");

    const name = await entries.createIndex({ orderId: 1, day: -1 }, { unique: true });
    await entries.createIndex({ plain: 1 });
    const listed = await entries.listIndexes().toArray();
    await entries.dropIndex(name);
    const afterDrop = await entries.listIndexes().toArray();

    expect(name).toBe("orderId_1_day_-1");
    expect(listed.map(({ name: indexName, key, unique }) => ({ indexName, key, unique }))).toEqual([
      { indexName: "_id_", key: { _id: 1 }, unique: undefined },
      { indexName: "orderId_1_day_-1", key: { orderId: 1, day: -1 }, unique: true },
      { indexName: "plain_1", key: { plain: 1 }, unique: undefined },
    ]);
    expect(afterDrop.map((index) => index.name)).toEqual(["_id_", "plain_1"]);
  });

  it("treats creating an identical existing index as a no-op", async () => {
    const entries = client.db(mongo.freshDbName("same_index")).collection("entries");
    await entries.createIndex({ k: 1 }, { unique: true });

    const again = await entries.createIndex({ k: 1 }, { unique: true });

    expect(again).toBe("k_1");
    expect(await entries.listIndexes().toArray()).toHaveLength(2);
  });

  it("refuses the same key under another name with IndexOptionsConflict (85)", async () => {
    const entries = client.db(mongo.freshDbName("index_renamed")).collection("entries");
    await entries.createIndex({ k: 1 }, { unique: true, name: "first" });

    const error = await rejectionOf(
      entries.createIndex({ k: 1 }, { unique: true, name: "second" }),
    );

    expect(error.code).toBe(85);
  });

  it("refuses a unique index over existing duplicates with 11000", async () => {
    const entries = client.db(mongo.freshDbName("index_dups")).collection("entries");
    await entries.insertMany([{ k: 1 }, { k: 1 }, { k: 2 }]);

    const error = await rejectionOf(entries.createIndex({ k: 1 }, { unique: true }));

    expect(error.code).toBe(11000);
    expect(error.message).toContain("E11000 duplicate key error");
    expect((await entries.listIndexes().toArray()).map((index) => index.name)).toEqual(["_id_"]);
  });

  it("enforces a unique index created after the data was inserted", async () => {
    const entries = client.db(mongo.freshDbName("late_index")).collection("entries");
    await entries.insertMany([{ k: 1 }, { k: 2 }]);
    await entries.createIndex({ k: 1 }, { unique: true });

    const error = await rejectionOf(entries.insertOne({ k: 2 }));

    expect(error.code).toBe(11000);
  });

  it("stops enforcing uniqueness once the index is dropped", async () => {
    const entries = client.db(mongo.freshDbName("dropped_index")).collection("entries");
    await entries.createIndex({ k: 1 }, { unique: true, name: "k_unique" });
    await entries.insertOne({ k: 1 });

    await entries.dropIndexes();
    await entries.insertOne({ k: 1 });

    expect(await entries.countDocuments({ k: 1 })).toBe(2);
  });

  it("reports dropping a missing index with IndexNotFound (27)", async () => {
    const entries = client.db(mongo.freshDbName("missing_index")).collection("entries");
    await entries.insertOne({ k: 1 });

    const error = await rejectionOf(entries.dropIndex("nope_1"));

    expect(error.code).toBe(27);
  });

  it("reports listing the indexes of a missing collection with NamespaceNotFound (26)", async () => {
    const db = client.db(mongo.freshDbName("no_collection"));

    const error = await rejectionOf(db.collection("missing").listIndexes().toArray());

    expect(error.code).toBe(26);
  });
});

describe("collections and databases", () => {
  it("lists collections, filtered by name", async () => {
    const db = client.db(mongo.freshDbName("list_collections"));
    await db.collection("a").insertOne({});
    await db.createCollection("b");

    const all = await db.listCollections({}, { nameOnly: true }).toArray();
    const onlyB = await db.listCollections({ name: "b" }).toArray();

    expect(all.map((info) => info.name).sort()).toEqual(["a", "b"]);
    expect(onlyB.map((info) => info.name)).toEqual(["b"]);
  });

  it("drops a collection with its documents and indexes", async () => {
    const db = client.db(mongo.freshDbName("drop"));
    const entries = db.collection("entries");
    await entries.createIndex({ k: 1 }, { unique: true });
    await entries.insertOne({ k: 1 });

    const dropped = await entries.drop();
    await entries.insertOne({ k: 1 });
    await entries.insertOne({ k: 1 });

    expect(dropped).toBe(true);
    expect(await entries.countDocuments()).toBe(2);
  });

  it("drops a whole database", async () => {
    const dbName = mongo.freshDbName("drop_db");
    const db = client.db(dbName);
    await db.collection("a").insertOne({ x: 1 });
    await db.collection("b").insertOne({ x: 1 });

    await db.dropDatabase();

    expect(await db.listCollections().toArray()).toEqual([]);
    const { databases } = await client.db("admin").admin().listDatabases({ nameOnly: true });
    expect(databases.map((database) => database.name)).not.toContain(dbName);
  });
});
