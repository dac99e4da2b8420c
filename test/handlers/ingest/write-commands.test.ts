import {
  type CommandStartedEvent,
  type Db,
  type Document,
  MongoClient,
  MongoWriteConcernError,
} from "mongodb";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { MongoUnavailableError } from "../../../handlers/ingest/errors";
import {
  type CommandTarget,
  deleteOneEach,
  insertUnordered,
  MAX_STATEMENTS,
  updateUnordered,
} from "../../../handlers/ingest/write-commands";
import { startTestMongo, type TestMongo } from "../../helpers/mongo";

let mongo: TestMongo;
let client: MongoClient;
let db: Db;
/** Write commands sent, in order: name and how many statements each carried. */
let sent: { name: string; statements: number; command: Document }[] = [];

beforeAll(async () => {
  mongo = await startTestMongo();
  client = await new MongoClient(mongo.uri, { monitorCommands: true }).connect();
  client.on("commandStarted", (event: CommandStartedEvent) => {
    const field = { insert: "documents", update: "updates", delete: "deletes" }[
      event.commandName as "insert" | "update" | "delete"
    ];
    if (field) {
      sent.push({
        name: event.commandName,
        statements: (event.command[field] as unknown[]).length,
        command: event.command,
      });
    }
  });
});

afterAll(async () => {
  await client?.close();
  await mongo?.stop();
});

beforeEach(() => {
  db = client.db(mongo.freshDbName("write_commands"));
  sent = [];
  mongo.server?.faults.reset();
});

describe("insertUnordered", () => {
  it("inserts every document and reports a duplicate _id at its index in the caller's list, the others applied", async () => {
    const things = db.collection<{ _id: number; n: number }>("things");
    await things.insertOne({ _id: 2, n: 0 });
    sent = [];

    const outcome = await insertUnordered(things, [
      { _id: 1, n: 1 },
      { _id: 2, n: 2 },
      { _id: 3, n: 3 },
    ]);

    expect(outcome.inserted).toBe(2);
    expect(outcome.writeErrors).toEqual([
      { index: 1, code: 11000, errmsg: expect.stringContaining("E11000") },
    ]);
    expect(await things.find({}, { sort: { _id: 1 } }).toArray()).toEqual([
      { _id: 1, n: 1 },
      { _id: 2, n: 0 },
      { _id: 3, n: 3 },
    ]);
    expect(sent.map((command) => [command.name, command.statements])).toEqual([["insert", 3]]);
  });

  it(`sends at most ${MAX_STATEMENTS} statements per command and indexes errors across commands`, async () => {
    const things = db.collection<{ _id: number }>("things");
    const last = MAX_STATEMENTS + 4;
    await things.insertOne({ _id: last });
    const documents = Array.from({ length: last + 1 }, (_, index) => ({ _id: index }));

    const outcome = await insertUnordered(things, documents);

    expect(sent.map((command) => [command.name, command.statements])).toEqual([
      ["insert", 1],
      ["insert", MAX_STATEMENTS],
      ["insert", 5],
    ]);
    expect(outcome.inserted).toBe(last);
    expect(outcome.writeErrors.map((error) => [error.index, error.code])).toEqual([[last, 11000]]);
    expect(await things.countDocuments()).toBe(last + 1);
  });

  it("sends a command too large for one BSON document again in halves, losing nothing", async () => {
    const things = db.collection<{ _id: number; text: string }>("things");
    await things.insertOne({ _id: 2, text: "already there" });
    sent = [];
    const text = "x".repeat(7 * 1024 * 1024);

    const outcome = await insertUnordered(things, [
      { _id: 0, text },
      { _id: 1, text },
      { _id: 2, text },
    ]);

    // 21 MB does not fit the client's buffer (refused while serializing, before a byte
    // is written); 14 MB and 7 MB do.
    expect(sent.map((command) => command.statements)).toEqual([3, 2, 1]);
    expect(outcome.inserted).toBe(2);
    expect(outcome.writeErrors.map((error) => [error.index, error.code])).toEqual([[2, 11000]]);
    expect(await things.countDocuments({ text })).toBe(2);
  });

  it.skipIf(process.env.MONGODB_TEST_URI !== undefined)(
    "splits a command the server refuses as BSONObjectTooLarge, and fails on any other refusal",
    async () => {
      const things = db.collection<{ _id: number }>("things");
      mongo.server?.faults.failNext({ command: "insert", code: 10334 });

      const outcome = await insertUnordered(things, [{ _id: 0 }, { _id: 1 }, { _id: 2 }]);

      expect(outcome).toEqual({ inserted: 3, writeErrors: [] });
      expect(await things.countDocuments()).toBe(3);

      mongo.server?.faults.failNext({ command: "insert", code: 8, errmsg: "simulated outage" });
      await expect(insertUnordered(things, [{ _id: 3 }, { _id: 4 }])).rejects.toThrow(
        "simulated outage",
      );
      expect(await things.countDocuments()).toBe(3);
    },
  );

  it("sends the collection's write concern with the command", async () => {
    const things = db.collection("things", { writeConcern: { w: 1, journal: false } });

    await insertUnordered(things, [{ _id: 1 }]);

    expect(sent[0]?.command.writeConcern).toEqual({ w: 1, j: false });
  });

  it("sends the write concern the client was given (a URI's w=…), as bulkWrite would", async () => {
    const majority = await new MongoClient(mongo.uri, {
      monitorCommands: true,
      writeConcern: { w: "majority", wtimeoutMS: 5_000 },
    }).connect();
    const commands: Document[] = [];
    majority.on("commandStarted", (event: CommandStartedEvent) => {
      if (event.commandName === "insert") commands.push(event.command);
    });
    try {
      await insertUnordered(majority.db(db.databaseName).collection("things"), [{ _id: 1 }]);
    } finally {
      await majority.close();
    }

    expect(commands[0]?.writeConcern).toEqual({ w: "majority", wtimeout: 5_000 });
  });

  it("throws MongoUnavailableError when the write concern is not satisfied (the writes may be applied), never retrying", async () => {
    const writeConcernError = { code: 64, errmsg: "waiting for replication timed out" };
    let calls = 0;
    // What the driver does with such a reply: it throws MongoWriteConcernError.
    const throwing = commandTarget(async () => {
      calls++;
      throw new MongoWriteConcernError({ ok: 1, n: 1, writeConcernError });
    });
    // And a reply that carries one without the driver throwing fails the same way.
    const replying = commandTarget(async () => ({ ok: 1, n: 1, writeConcernError }));

    for (const target of [throwing, replying]) {
      const failure = insertUnordered(target, [{ _id: 1 }]);
      await expect(failure).rejects.toThrow(MongoUnavailableError);
      await expect(failure).rejects.toThrow("waiting for replication timed out");
    }
    expect(calls).toBe(1);
  });

  it.skipIf(process.env.MONGODB_TEST_URI !== undefined)(
    "sends a command again once after a primary stepped down, and fails when it happens twice",
    async () => {
      const things = db.collection<{ _id: number }>("things");
      mongo.server?.faults.failNext({ command: "insert", code: 189, errmsg: "stepped down" });

      const outcome = await insertUnordered(things, [{ _id: 1 }, { _id: 2 }]);

      expect(outcome).toEqual({ inserted: 2, writeErrors: [] });
      expect(sent.map((command) => command.name)).toEqual(["insert", "insert"]);

      mongo.server?.faults.failNext({ command: "insert", code: 189, count: 2 });
      await expect(insertUnordered(things, [{ _id: 3 }])).rejects.toMatchObject({ code: 189 });
      expect(await things.countDocuments()).toBe(2);
    },
  );
});

/** A collection whose database answers every command with `command`. */
function commandTarget(command: () => Promise<Document>): CommandTarget {
  return {
    collectionName: "things",
    writeConcern: undefined,
    bsonOptions: {},
    db: { command } as unknown as Db,
  };
}

describe("insertUnordered and updateUnordered after a split", () => {
  it("give each upsert and error the index it has in the caller's list", async () => {
    const things = db.collection<{ _id: number; text?: string; tag?: string }>("things");
    await things.createIndex({ tag: 1 }, { unique: true, sparse: true });
    await things.insertOne({ _id: 99, tag: "taken" });
    sent = [];
    const text = "x".repeat(7 * 1024 * 1024);

    const outcome = await updateUnordered(things, [
      { q: { _id: 0 }, u: { $set: { text } }, upsert: true },
      { q: { _id: 1 }, u: { $set: { text } }, upsert: true },
      { q: { _id: 2 }, u: { $set: { text, tag: "taken" } }, upsert: true },
      { q: { _id: 3 }, u: { $set: { text } }, upsert: true },
    ]);

    // 28 MB is refused by the client; each half (14 MB) fits.
    expect(sent.map((command) => command.statements)).toEqual([4, 2, 2]);
    expect(outcome.upserted).toEqual([0, 1, 3]);
    expect(outcome.writeErrors.map((error) => [error.index, error.code])).toEqual([[2, 11000]]);
    expect(await things.countDocuments({ text })).toBe(3);
  });
});

describe("updateUnordered", () => {
  it("counts matched, modified and upserted as MongoDB does, with each upsert's and error's index", async () => {
    const things = db.collection<{ _id: number; n: number; tag?: string }>("things");
    await things.createIndex({ tag: 1 }, { unique: true, sparse: true });
    await things.insertMany([
      { _id: 1, n: 1 },
      { _id: 2, n: 2, tag: "taken" },
    ]);

    const outcome = await updateUnordered(things, [
      { q: { _id: 1 }, u: { $set: { n: 10 } } },
      { q: { _id: 2 }, u: { $set: { n: 2 } } },
      { q: { _id: 3 }, u: { $set: { n: 3 } }, upsert: true },
      { q: { _id: 1 }, u: { $set: { tag: "taken" } } },
      { q: { _id: 4 }, u: [{ $set: { n: 4 } }], upsert: true },
      { q: { _id: 5 }, u: { $set: { n: 5 } } },
    ]);

    expect(outcome.matched).toBe(2);
    expect(outcome.modified).toBe(1);
    expect(outcome.upserted).toEqual([2, 4]);
    expect(outcome.writeErrors.map((error) => [error.index, error.code])).toEqual([[3, 11000]]);
    expect(await things.find({}, { sort: { _id: 1 } }).toArray()).toEqual([
      { _id: 1, n: 10 },
      { _id: 2, n: 2, tag: "taken" },
      { _id: 3, n: 3 },
      { _id: 4, n: 4 },
    ]);
  });
});

describe("deleteOneEach", () => {
  it("deletes at most one document per filter and counts what it deleted", async () => {
    const things = db.collection<{ _id: number; kind: string }>("things");
    await things.insertMany([
      { _id: 1, kind: "a" },
      { _id: 2, kind: "a" },
      { _id: 3, kind: "b" },
    ]);

    const outcome = await deleteOneEach(things, [{ kind: "a" }, { kind: "c" }, { _id: 3 }]);

    expect(outcome).toEqual({ deleted: 2, writeErrors: [] });
    expect(await things.countDocuments({ kind: "a" })).toBe(1);
    expect(await things.countDocuments({ kind: "b" })).toBe(0);
  });
});
