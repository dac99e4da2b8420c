import {
  type Collection,
  type CommandStartedEvent,
  type CommandSucceededEvent,
  type Document,
  MongoClient,
} from "mongodb";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { contributionKey, type EntryUpdate } from "../../../handlers/ingest/entry-update";
import { MongoUnavailableError } from "../../../handlers/ingest/errors";
import { MongoEntryWriter } from "../../../handlers/ingest/writer";
import { startTestMongo, type TestMongo } from "../../helpers/mongo";

/** One entry update with one contribution; `itemName` lets a test make two entries collide. */
function entryUpdate(itemPath: string, creativeId: string, itemName: string): EntryUpdate {
  return {
    key: {
      orderId: "order-1",
      itemPath,
      dateStart: new Date("2025-12-10T00:00:00.000Z"),
      source: "automated",
    },
    fields: {
      dateEnd: new Date("2025-12-10T23:59:59.999Z"),
      campaignId: "spring-sale",
      publicationId: 1035,
      publicationName: "Chicago Reader",
      channel: "display",
    },
    contributions: [
      {
        key: contributionKey(creativeId, "chireader", "website", "300x250"),
        creativeId,
        publicationCode: "chireader",
        channel: "website",
        adSize: "300x250",
        itemName,
        impressions: 100,
        clicks: 3,
        viewableImpressions: 60,
        uniqueIps: 50,
        rev: 1,
        run: "run-1",
        line: 2,
      },
    ],
  };
}

describe("MongoEntryWriter against MongoDB", () => {
  let mongo: TestMongo;
  let client: MongoClient;
  let entries: Collection;
  let writer: MongoEntryWriter;
  const updateCommands: number[] = [];
  /** Per update command, each statement's kind: "insert" ($setOnInsert) or "pipeline". */
  const statementKinds: string[][] = [];

  beforeAll(async () => {
    mongo = await startTestMongo();
    client = await new MongoClient(mongo.uri, { monitorCommands: true }).connect();
    client.on("commandStarted", (event) => {
      if (event.commandName !== "update") return;
      updateCommands.push(event.command.updates.length);
      statementKinds.push(
        event.command.updates.map((statement: { u: unknown }) =>
          Array.isArray(statement.u) ? "pipeline" : Object.keys(statement.u as object).join(),
        ),
      );
    });
  });
  afterAll(async () => {
    await client?.close();
    await mongo?.stop();
  });
  beforeEach(async () => {
    mongo.server?.faults.reset();
    updateCommands.length = 0;
    statementKinds.length = 0;
    entries = client.db(mongo.freshDbName("writer")).collection("performance_entries");
    await entries.createIndex(
      { orderId: 1, itemPath: 1, dateStart: 1, source: 1 },
      { unique: true },
    );
    // A second unique index lets a test provoke E11000 deterministically: two entries
    // with the same itemName collide, as two concurrent upserts of one key would.
    await entries.createIndex({ itemName: 1 }, { unique: true });
    writer = new MongoEntryWriter(entries);
  });

  it("sends a batch as one update command of upserts filtered on exactly the entry key", async () => {
    await writer.write([entryUpdate("web-1", "cr_1", "One")]);
    const batch = [entryUpdate("web-1", "cr_2", "Two"), entryUpdate("web-2", "cr_3", "Three")];

    const result = await writer.write(batch);

    expect(result).toEqual({ inserted: 1, updated: 1, unchanged: 0, failed: [] });
    expect(updateCommands).toEqual([1, 2]);
    const stored = await entries.find({}, { sort: { itemPath: 1 } }).toArray();
    expect(stored.map((entry) => entry.contributions.length)).toEqual([2, 1]);
  });

  it("retries an upsert that lost a duplicate-key race, and the retry updates the entry the other write created", async () => {
    await writer.write([entryUpdate("web-0", "cr_0", "Taken")]);
    // The first upsert of web-1 collides on itemName "Taken" (E11000); the second creates
    // web-1 meanwhile, as a concurrent delivery would. The retry must find and update it
    // (its itemName becomes "Other, Taken", which collides with nothing).
    const batch = [entryUpdate("web-1", "cr_1", "Taken"), entryUpdate("web-1", "cr_2", "Other")];

    const result = await writer.write(batch);

    expect(result).toEqual({ inserted: 1, updated: 1, unchanged: 0, failed: [] });
    expect(updateCommands).toEqual([1, 2, 1]);
    const entry = await entries.findOne({ itemPath: "web-1" });
    expect(entry?.contributions.map((c: { creativeId: string }) => c.creativeId)).toEqual([
      "cr_1",
      "cr_2",
    ]);
    expect(entry?.itemName).toBe("Other, Taken");
  });

  it("stops retrying a key that keeps answering E11000 and reports it failed, writing the rest", async () => {
    await writer.write([entryUpdate("web-0", "cr_0", "Taken")]);
    const batch = [entryUpdate("web-1", "cr_1", "Fine"), entryUpdate("web-2", "cr_2", "Taken")];

    const result = await writer.write(batch);

    expect(result).toMatchObject({ inserted: 1, updated: 0, unchanged: 0 });
    expect(result.failed).toEqual([
      { index: 1, code: 11000, message: expect.stringContaining("E11000") },
    ]);
    // Three attempts in all: the whole batch, then the colliding entry twice more.
    expect(updateCommands).toEqual([1, 2, 1, 1]);
    expect(await entries.countDocuments({ itemPath: "web-2" })).toBe(0);
  });

  it("reports an entry the pipeline cannot update as failed, without retrying it", async () => {
    const broken = entryUpdate("web-9", "cr_9", "Broken");
    await entries.insertOne({ ...broken.key, contributions: "not an array" });

    const result = await writer.write([entryUpdate("web-1", "cr_1", "Fine"), broken]);

    expect(result).toMatchObject({ inserted: 1, updated: 0, unchanged: 0 });
    expect(result.failed).toEqual([
      { index: 1, code: expect.any(Number), message: expect.any(String) },
    ]);
    expect(result.failed[0]?.code).not.toBe(11000);
    // The insert-only upsert finds the entry; its one pipeline attempt fails for good.
    expect(statementKinds).toEqual([["$setOnInsert", "$setOnInsert"], ["pipeline"]]);
  });

  it("inserts new entries as plain documents, the same documents the pipeline inserts", async () => {
    const batch = [entryUpdate("web-1", "cr_1", "One"), entryUpdate("web-2", "cr_2", "Two")];
    const reference = client.db(mongo.freshDbName("writer-ref")).collection("performance_entries");
    const at = new Date("2026-03-01T12:00:00.000Z");

    const result = await new MongoEntryWriter(entries, { now: () => at }).write(batch);
    await new MongoEntryWriter(reference, { insertFirst: false }).write(batch);

    expect(result).toEqual({ inserted: 2, updated: 0, unchanged: 0, failed: [] });
    expect(statementKinds[0]).toEqual(["$setOnInsert", "$setOnInsert"]);
    expect(statementKinds[1]).toEqual(["pipeline", "pipeline"]);
    const fresh = await entries
      .find({}, { projection: { _id: 0 }, sort: { itemPath: 1 } })
      .toArray();
    const piped = await reference
      .find({}, { projection: { _id: 0 }, sort: { itemPath: 1 } })
      .toArray();
    for (const [index, document] of fresh.entries()) {
      const other = piped[index] as Document;
      expect(Object.keys(document)).toEqual(Object.keys(other));
      expect({ ...document, createdAt: 0, enteredAt: 0, updatedAt: 0 }).toEqual({
        ...other,
        createdAt: 0,
        enteredAt: 0,
        updatedAt: 0,
      });
      expect([document.createdAt, document.enteredAt, document.updatedAt]).toEqual([at, at, at]);
    }
  });

  it("merges into an entry another run wrote, after its insert-only upsert finds it", async () => {
    await new MongoEntryWriter(entries).write([entryUpdate("web-1", "cr_1", "One")]);
    statementKinds.length = 0;

    const result = await writer.write([
      entryUpdate("web-1", "cr_2", "Two"),
      entryUpdate("web-2", "cr_3", "Three"),
    ]);

    expect(result).toEqual({ inserted: 1, updated: 1, unchanged: 0, failed: [] });
    expect(statementKinds).toEqual([["$setOnInsert", "$setOnInsert"], ["pipeline"]]);
    const entry = await entries.findOne({ itemPath: "web-1" });
    expect(entry?.contributions.map((c: { creativeId: string }) => c.creativeId)).toEqual([
      "cr_1",
      "cr_2",
    ]);
    expect(entry?.metrics.impressions).toBe(200);
  });

  it("sends an entry of a batch still in flight as the pipeline, so overlapping batches take one command each", async () => {
    const first = writer.write([entryUpdate("web-1", "cr_1", "One")]);
    const second = writer.write([
      entryUpdate("web-1", "cr_2", "Two"),
      entryUpdate("web-2", "cr_3", "Three"),
    ]);

    const results = await Promise.all([first, second]);

    expect(results.map((result) => result.inserted + result.updated)).toEqual([1, 2]);
    expect(statementKinds).toHaveLength(2);
    expect(statementKinds).toContainEqual(["$setOnInsert"]);
    expect(statementKinds).toContainEqual(["pipeline", "$setOnInsert"]);
    const entry = await entries.findOne({ itemPath: "web-1" });
    expect(entry?.contributions).toHaveLength(2);
  });

  it.skipIf(process.env.MONGODB_TEST_URI !== undefined)(
    "writes a batch that shares an entry with a batch in flight after it, and others alongside",
    async () => {
      mongo.server?.faults.setLatency(50, "update");
      const events: string[] = [];
      const onStarted = (event: CommandStartedEvent) => {
        if (event.commandName === "update") events.push(`start ${event.command.updates.length}`);
      };
      const onSucceeded = (event: CommandSucceededEvent) => {
        if (event.commandName === "update") events.push(`done ${(event.reply as { n: number }).n}`);
      };
      client.on("commandStarted", onStarted);
      client.on("commandSucceeded", onSucceeded);
      try {
        // Shares web-1 with the first batch: waits for it, then needs no second command.
        await Promise.all([
          writer.write([entryUpdate("web-1", "cr_1", "One")]),
          writer.write([
            entryUpdate("web-1", "cr_2", "Two"),
            entryUpdate("web-2", "cr_3", "Three"),
          ]),
        ]);
        expect(events).toEqual(["start 1", "done 1", "start 2", "done 2"]);
        // Nothing shared: both writes are under way at once.
        events.length = 0;
        await Promise.all([
          writer.write([entryUpdate("web-3", "cr_4", "Four")]),
          writer.write([entryUpdate("web-4", "cr_5", "Five")]),
        ]);
        expect(events.slice(0, 2)).toEqual(["start 1", "start 1"]);
      } finally {
        client.off("commandStarted", onStarted);
        client.off("commandSucceeded", onSucceeded);
      }
      const entry = await entries.findOne({ itemPath: "web-1" });
      expect(entry?.contributions).toHaveLength(2);
    },
  );

  it("counts a re-ingest as unchanged, and sends whole batches as pipelines while most entries exist", async () => {
    const first = [entryUpdate("web-1", "cr_1", "One"), entryUpdate("web-2", "cr_2", "Two")];
    const second = [entryUpdate("web-3", "cr_3", "Three"), entryUpdate("web-4", "cr_4", "Four")];
    await new MongoEntryWriter(entries).write([...first, ...second]);
    const before = await entries.find({}, { sort: { itemPath: 1 } }).toArray();
    statementKinds.length = 0;

    expect(await writer.write(first)).toEqual({
      inserted: 0,
      updated: 0,
      unchanged: 2,
      failed: [],
    });
    expect(await writer.write(second)).toEqual({
      inserted: 0,
      updated: 0,
      unchanged: 2,
      failed: [],
    });
    // A mostly new batch in pipeline mode turns insert-first back on.
    const fresh = [entryUpdate("web-5", "cr_5", "Five"), entryUpdate("web-6", "cr_6", "Six")];
    expect(await writer.write(fresh)).toMatchObject({ inserted: 2 });
    const last = [entryUpdate("web-7", "cr_7", "Seven")];
    expect(await writer.write(last)).toMatchObject({ inserted: 1 });

    expect(statementKinds).toEqual([
      ["$setOnInsert", "$setOnInsert"],
      ["pipeline", "pipeline"],
      ["pipeline", "pipeline"],
      ["pipeline", "pipeline"],
      ["$setOnInsert"],
    ]);
    const after = await entries.find({ itemPath: { $lte: "web-4" } }, { sort: { itemPath: 1 } });
    expect(await after.toArray()).toEqual(before);
  });

  it.skipIf(process.env.MONGODB_TEST_URI !== undefined)(
    "fails the batch as a unit when the update command itself fails",
    async () => {
      mongo.server?.faults.failNext({ command: "update", code: 8, errmsg: "simulated outage" });

      const failure = writer.write([entryUpdate("web-1", "cr_1", "One")]);

      await expect(failure).rejects.toBeInstanceOf(MongoUnavailableError);
      await expect(failure).rejects.toThrow("simulated outage");
    },
  );
});
