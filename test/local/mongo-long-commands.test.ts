import {
  type AnyBulkWriteOperation,
  type Document,
  MongoBulkWriteError,
  MongoClient,
} from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STATEMENTS_PER_TURN } from "../../local/mongo/statements.js";
import { startTestMongo, type TestMongo } from "../helpers/mongo.js";

// A write command of thousands of statements must not hold the embedded server's event
// loop: other connections (the driver's heartbeats among them) are answered between its
// statements. The server runs in this process, so while a command held the loop no
// other request could even be read; a count answered half-way through proves it yields.
const againstRealServer = Boolean(process.env.MONGODB_TEST_URI);
const STATEMENTS = 30 * STATEMENTS_PER_TURN;
let mongo: TestMongo;
let writer: MongoClient;
let reader: MongoClient;

beforeAll(async () => {
  mongo = await startTestMongo();
  writer = new MongoClient(mongo.uri, { serverSelectionTimeoutMS: 5_000 });
  reader = new MongoClient(mongo.uri, { serverSelectionTimeoutMS: 5_000 });
  await writer.connect();
  await reader.connect();
});

afterAll(async () => {
  await writer?.close();
  await reader?.close();
  await mongo?.stop();
});

function upserts(count: number, offset = 0): AnyBulkWriteOperation<Document>[] {
  return Array.from({ length: count }, (_, i) => ({
    updateOne: {
      filter: { k: offset + i },
      update: { $set: { v: offset + i }, $setOnInsert: { created: true } },
      upsert: true,
    },
  }));
}

/** Counts the collection over `reader`'s connection, again and again, until `until` settles. */
async function countWhile(db: string, until: Promise<unknown>): Promise<number[]> {
  let settled = false;
  const done = until.finally(() => {
    settled = true;
  });
  const collection = reader.db(db).collection("entries");
  const counts: number[] = [];
  while (!settled) counts.push(await collection.countDocuments({}));
  await done;
  return counts;
}

describe.skipIf(againstRealServer)("long write commands", () => {
  it("answers other connections between the statements of one bulk write", async () => {
    const db = mongo.freshDbName("yield_update");
    const entries = writer.db(db).collection("entries");
    await entries.createIndex({ k: 1 }, { unique: true });

    const bulk = entries.bulkWrite(upserts(STATEMENTS), { ordered: false });
    const counts = await countWhile(db, bulk);

    expect((await bulk).upsertedCount).toBe(STATEMENTS);
    expect(counts.some((count) => count > 0 && count < STATEMENTS)).toBe(true);
    // Statements of one command run in order: a count never sees a later one first.
    expect(counts).toEqual([...counts].sort((a, b) => a - b));
    expect(await entries.countDocuments({})).toBe(STATEMENTS);
  });

  it("answers other connections during a long insert and a long delete", async () => {
    const db = mongo.freshDbName("yield_insert");
    const entries = writer.db(db).collection("entries");
    await entries.createIndex({ k: 1 }, { unique: true });
    const documents = Array.from({ length: STATEMENTS }, (_, i) => ({ k: i }));

    const insertCounts = await countWhile(db, entries.insertMany(documents, { ordered: false }));
    const deletes = entries.bulkWrite(
      documents.map((document) => ({ deleteOne: { filter: { k: document.k } } })),
    );
    const deleteCounts = await countWhile(db, deletes);

    expect(insertCounts.some((count) => count > 0 && count < STATEMENTS)).toBe(true);
    expect(deleteCounts.some((count) => count > 0 && count < STATEMENTS)).toBe(true);
    expect((await deletes).deletedCount).toBe(STATEMENTS);
  });

  it("still stops an ordered bulk write at its first error, many pauses in", async () => {
    const db = mongo.freshDbName("yield_ordered");
    const entries = writer.db(db).collection("entries");
    await entries.createIndex({ k: 1 }, { unique: true });
    await entries.insertOne({ k: "taken", v: -1 });
    const failing = 20 * STATEMENTS_PER_TURN + 7;
    const operations = upserts(STATEMENTS);
    operations[failing] = { insertOne: { document: { k: "taken" } } };

    const error = await entries.bulkWrite(operations, { ordered: true }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(MongoBulkWriteError);
    const bulkError = error as MongoBulkWriteError;
    expect(bulkError.writeErrors).toMatchObject([{ index: failing, code: 11000 }]);
    expect(bulkError.result.upsertedCount).toBe(failing);
    expect(await entries.countDocuments({ k: { $gte: failing } })).toBe(0);
    expect(await entries.countDocuments({})).toBe(failing + 1);
  });
});
