import {
  type Collection,
  type CommandStartedEvent,
  type Db,
  type Document,
  MongoClient,
} from "mongodb";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CompactMap } from "../../../handlers/ingest/compact-map";
import { encodeDryRunMemory, readDryRunMemory } from "../../../handlers/ingest/dry-run-memory";
import { groupIntoUpdates, type ResolvedRow } from "../../../handlers/ingest/entry-batch";
import { type Contribution, contributionKey } from "../../../handlers/ingest/entry-update";
import { MongoUnavailableError } from "../../../handlers/ingest/errors";
import {
  DryRunFactLedger,
  FACTS_COLLECTION,
  type FactDocument,
  type FactLedger,
  factId,
  factIdentity,
  type LedgerBatch,
  MongoFactLedger,
  type RemovalTarget,
} from "../../../handlers/ingest/ledger";
import { ENTRIES_COLLECTION } from "../../../handlers/ingest/mongo";
import { MongoEntryWriter } from "../../../handlers/ingest/writer";
import { toIsoDate } from "../../../handlers/shared/dates";
import { createRandom } from "../../../local/random";
import { asLedgerReadsIt } from "../../helpers/facts";
import { startTestMongo, type TestMongo } from "../../helpers/mongo";

/**
 * The facts ledger against the embedded MongoDB, with two or three independent writers
 * (each its own MongoFactLedger, run id and MongoEntryWriter on the same collections)
 * driven through the batch protocol of batch-pipeline.ts `write()` step by step:
 * place → write entries → remove moved contributions → settle (and remove what it
 * hands back). Whatever the interleaving, once every writer is done each identity and
 * day lives in exactly one automated entry, the one its fact names, with the fact's
 * numbers; no entry is empty; no fact is left stale.
 */

const DAY = "2025-12-10";
const ORDER = "order-1";
const X = "cr_spring-sale_x";
const Y = "cr_spring-sale_y";
/** The ledger's clock: fixed, so the facts of two runs compare equal field by field. */
const CLOCK = () => new Date("2026-01-02T03:04:05.000Z");
/** The run the ledger upgrade names in facts it recovers from pre-ledger entries. */
const PRE_LEDGER_RUN = "pre-ledger";

/** One resolved row: `creativeId` on `DAY` at publication ChiReader, into entry `itemPath`. */
function resolved(
  line: number,
  creativeId: string,
  itemPath: string,
  impressions: number,
  reportDate = DAY,
): ResolvedRow {
  return {
    row: {
      line,
      reportDate,
      creativeId,
      publicationCode: "ChiReader",
      channel: "website",
      adSize: "300x250",
      impressions,
      clicks: Math.floor(impressions / 10),
      viewableImpressions: Math.floor(impressions / 2),
      uniqueIps: Math.floor(impressions / 4),
    },
    target: {
      orderId: ORDER,
      campaignId: "spring-sale",
      publicationId: 1035,
      publicationName: "Chicago Reader",
      itemPath,
      itemName: `Item ${itemPath}`,
      channel: "display",
      strategy: 1,
    },
  };
}

const keyOf = (creativeId: string) =>
  contributionKey(creativeId, "chireader", "website", "300x250");
const idOf = (creativeId: string, day = DAY) => factId(keyOf(creativeId), day);

/** One file run's writer: its ledger and entry writer, driven one protocol step at a time. */
class Writer {
  readonly ledger: MongoFactLedger;
  readonly entries: MongoEntryWriter;
  private batch: LedgerBatch | undefined;
  /** What the last settle handed back to take out. */
  takenBack: RemovalTarget[] = [];

  constructor(
    db: Db,
    readonly runId: string,
    facts: Collection<FactDocument> = db.collection<FactDocument>(FACTS_COLLECTION),
  ) {
    this.ledger = new MongoFactLedger(facts, runId, CLOCK);
    this.entries = new MongoEntryWriter(db.collection(ENTRIES_COLLECTION));
  }

  get placed(): LedgerBatch {
    if (!this.batch) throw new Error(`${this.runId} has not placed a batch`);
    return this.batch;
  }

  async place(rows: readonly ResolvedRow[]): Promise<LedgerBatch> {
    this.batch = await this.ledger.place(rows);
    return this.batch;
  }

  async write(): Promise<void> {
    const { updates } = groupIntoUpdates(this.placed.placed);
    if (updates.length === 0) return;
    const result = await this.entries.write(updates);
    expect(result.failed).toEqual([]);
  }

  async remove(): Promise<void> {
    await this.entries.remove(this.placed.removals);
  }

  async settle(): Promise<RemovalTarget[]> {
    this.takenBack = await this.ledger.settle(this.placed);
    await this.entries.remove(this.takenBack);
    return this.takenBack;
  }

  /** One whole batch, as batch-pipeline.ts writes it. */
  async all(rows: readonly ResolvedRow[]): Promise<LedgerBatch> {
    const batch = await this.place(rows);
    await this.write();
    await this.remove();
    await this.settle();
    return batch;
  }
}

type Step = "place" | "write" | "remove" | "settle";
const STEPS: readonly Step[] = ["place", "write", "remove", "settle"];

async function runStep(writer: Writer, step: Step, rows: readonly ResolvedRow[]): Promise<void> {
  if (step === "place") await writer.place(rows);
  else await writer[step]();
}

/** Every interleaving of the writers' step sequences (each writer's steps stay in order). */
function interleavings(names: readonly string[], steps: readonly Step[]): string[][] {
  const out: string[][] = [];
  const walk = (done: number[], prefix: string[]) => {
    if (prefix.length === names.length * steps.length) {
      out.push(prefix);
      return;
    }
    names.forEach((name, index) => {
      const next = done[index] as number;
      if (next >= steps.length) return;
      const advanced = [...done];
      advanced[index] = next + 1;
      walk(advanced, [...prefix, `${name}.${steps[next]}`]);
    });
  };
  walk(
    names.map(() => 0),
    [],
  );
  return out;
}

function randomInterleaving(names: readonly string[], random: () => number): string[] {
  const left = names.map(() => 0);
  const out: string[] = [];
  while (out.length < names.length * STEPS.length) {
    const open = names.map((_, index) => index).filter((index) => (left[index] as number) < 4);
    const pick = open[Math.floor(random() * open.length)] as number;
    out.push(`${names[pick]}.${STEPS[left[pick] as number]}`);
    left[pick] = (left[pick] as number) + 1;
  }
  return out;
}

const entryName = (entry: Document) => `${String(entry.orderId)}/${String(entry.itemPath)}`;

/**
 * Everything that breaks the invariant, as readable lines (empty when it holds): an
 * identity and day held by no entry, by two, or by another entry than its fact names;
 * a held contribution that is not the fact's (numbers, revision, provenance); an empty
 * automated entry; metrics that are not the sum of the contributions; a stale fact; a
 * contribution no fact knows.
 */
async function problemsOf(db: Db): Promise<string[]> {
  const problems: string[] = [];
  const facts = await db.collection<FactDocument>(FACTS_COLLECTION).find().toArray();
  const entries = await db.collection(ENTRIES_COLLECTION).find({ source: "automated" }).toArray();
  const holders = new Map<string, { entry: string; contribution: Contribution }[]>();
  for (const entry of entries) {
    const contributions = (entry.contributions ?? []) as Contribution[];
    if (contributions.length === 0) problems.push(`entry ${entryName(entry)} is empty`);
    const impressions = contributions.reduce((sum, c) => sum + c.impressions, 0);
    if (entry.metrics?.impressions !== impressions) {
      problems.push(
        `entry ${entryName(entry)} metrics ${entry.metrics?.impressions}≠${impressions}`,
      );
    }
    for (const contribution of contributions) {
      const id = factId(contribution.key, toIsoDate(entry.dateStart as Date));
      const list = holders.get(id) ?? [];
      list.push({ entry: entryName(entry), contribution });
      holders.set(id, list);
    }
  }
  for (const fact of facts) {
    const identity = factIdentity(fact._id);
    const key = contributionKey(
      identity.creativeId,
      identity.publicationCode,
      identity.channel,
      identity.adSize,
    );
    if (fact._id !== factId(key, toIsoDate(fact.day))) problems.push(`fact ${fact._id}: bad id`);
    if (fact.stale !== undefined && fact.stale.length > 0) {
      problems.push(`fact ${fact._id}: stale ${fact.stale.map(entryName).join(",")}`);
    }
    const held = holders.get(fact._id) ?? [];
    holders.delete(fact._id);
    const where = held.map((item) => item.entry);
    if (where.length !== 1 || where[0] !== entryName(fact)) {
      problems.push(`fact ${fact._id} → ${entryName(fact)} but held by [${where.join(",")}]`);
      continue;
    }
    const { contribution } = held[0] as { contribution: Contribution };
    const numbers = {
      impressions: contribution.impressions,
      clicks: contribution.clicks,
      viewableImpressions: contribution.viewableImpressions,
      uniqueIps: contribution.uniqueIps,
    };
    const provenance = [contribution.rev, contribution.run, contribution.line];
    // A fact the upgrade recovered describes a revision-less (pre-ledger) contribution.
    const expected =
      fact.run === PRE_LEDGER_RUN
        ? [undefined, undefined, undefined]
        : [fact.rev, fact.run, fact.line];
    const factNumbers = {
      impressions: fact.impressions,
      clicks: fact.clicks,
      viewableImpressions: fact.viewableImpressions,
      uniqueIps: fact.uniqueIps,
    };
    if (JSON.stringify(numbers) !== JSON.stringify(factNumbers)) {
      problems.push(`fact ${fact._id}: entry numbers ${JSON.stringify(numbers)}`);
    }
    if (JSON.stringify(provenance) !== JSON.stringify(expected)) {
      problems.push(`fact ${fact._id}: entry provenance ${JSON.stringify(provenance)}`);
    }
    if (contribution.itemName !== fact.itemName) problems.push(`fact ${fact._id}: itemName`);
  }
  for (const [id, held] of holders) {
    problems.push(`no fact for ${id} held by [${held.map((item) => item.entry).join(",")}]`);
  }
  return problems;
}

/** The stored state, comparable across databases (entry ids and clocks left out). */
async function snapshot(db: Db): Promise<{ facts: Document[]; entries: Document[] }> {
  // `placedBy` is a token of the ledger instance and batch that placed the fact last.
  const facts = await db
    .collection<FactDocument>(FACTS_COLLECTION)
    .find({}, { projection: { placedBy: 0 } })
    .sort({ _id: 1 })
    .toArray();
  const entries = await db
    .collection(ENTRIES_COLLECTION)
    .find({}, { projection: { _id: 0, createdAt: 0, enteredAt: 0, updatedAt: 0 } })
    .sort({ orderId: 1, itemPath: 1, dateStart: 1 })
    .toArray();
  return { facts, entries };
}

/** orderId/itemPath → [creative ids held, impressions]: a short view of the entries. */
async function holdings(db: Db): Promise<Record<string, [string[], number]>> {
  const entries = await db
    .collection(ENTRIES_COLLECTION)
    .find({ source: "automated" })
    .sort({ itemPath: 1 })
    .toArray();
  return Object.fromEntries(
    entries.map((entry) => [
      entryName(entry),
      [entry.contributions.map((c: Contribution) => c.creativeId), entry.metrics.impressions],
    ]),
  );
}

async function factOf(db: Db, creativeId: string): Promise<FactDocument | null> {
  return asLedgerReadsIt(
    await db.collection<FactDocument>(FACTS_COLLECTION).findOne({ _id: idOf(creativeId) }),
  );
}

const ref = (itemPath: string) => ({ orderId: ORDER, itemPath });
const removalFrom = (itemPath: string, removals: { key: string; rev: number }[]) => ({
  key: {
    orderId: ORDER,
    itemPath,
    dateStart: new Date(`${DAY}T00:00:00.000Z`),
    source: "automated",
  },
  removals,
});

/** A promise and its resolver. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

/**
 * The facts collection with its next write command (`insert` or `update`, sent through
 * `collection.db.command`) held until `gate` opens, or with `before` run ahead of every
 * write command (another writer's change landing in between). A round that writes both
 * new and stored facts sends two commands: `before` then runs ahead of each, and the
 * gate holds only the first.
 */
function interceptedFacts(
  facts: Collection<FactDocument>,
  options: { gate?: Promise<void>; reached?: () => void; before?: () => Promise<void> },
): Collection<FactDocument> {
  let held = false;
  const db = new Proxy(facts.db, {
    get(target, property) {
      if (property === "command") {
        return async (command: Document, commandOptions?: object) => {
          if ("insert" in command || "update" in command) {
            if (options.gate && !held) {
              held = true;
              options.reached?.();
              await options.gate;
            }
            await options.before?.();
          }
          return target.command(command, commandOptions);
        };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return new Proxy(facts, {
    get(target, property) {
      if (property === "db") return db;
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

let mongo: TestMongo;
let client: MongoClient;
let db: Db;
/** Write commands sent to the server, by collection (to prove a dry run writes nothing). */
const writeCommands: string[] = [];

beforeAll(async () => {
  mongo = await startTestMongo();
  client = await new MongoClient(mongo.uri, { monitorCommands: true }).connect();
  client.on("commandStarted", (event: CommandStartedEvent) => {
    if (["insert", "update", "delete", "findAndModify"].includes(event.commandName)) {
      writeCommands.push(`${event.commandName} ${event.command[event.commandName]}`);
    }
  });
});
afterAll(async () => {
  await client?.close();
  await mongo?.stop();
});

async function freshDb(prefix = "ledger"): Promise<Db> {
  const fresh = client.db(mongo.freshDbName(prefix));
  await fresh
    .collection(ENTRIES_COLLECTION)
    .createIndex({ orderId: 1, itemPath: 1, dateStart: 1, source: 1 }, { unique: true });
  return fresh;
}

beforeEach(async () => {
  mongo.server?.faults.reset();
  writeCommands.length = 0;
  db = await freshDb();
});

/** Writer W, held between reading its facts and writing them (`gate`, `reached`), and V. */
function heldWriterW() {
  const gate = deferred();
  const reached = deferred();
  const facts = db.collection<FactDocument>(FACTS_COLLECTION);
  const w = new Writer(
    db,
    "run-w",
    interceptedFacts(facts, { gate: gate.promise, reached: reached.resolve }),
  );
  return { w, v: new Writer(db, "run-v"), gate, reached };
}

describe("factIdentity", () => {
  it("reads a fact id back into the identity and day it was made from", () => {
    const key = contributionKey('cr|1 "x"', "ChiReader", null, "300x250");
    expect(factIdentity(factId(key, "2025-12-10"))).toEqual({
      creativeId: 'cr|1 "x"',
      publicationCode: "chireader",
      channel: null,
      adSize: "300x250",
      reportDate: "2025-12-10",
    });
  });

  it("refuses what is not a fact id", () => {
    expect(() => factIdentity("2025-12-10")).toThrow(/not a fact id/);
    expect(() => factIdentity('["cr-1","pub"]|2025-12-10')).toThrow(/not a fact id/);
    expect(() => factIdentity("cr|2025-12-10")).toThrow(/not a fact id/);
    expect(() => factIdentity('["cr-1","pub",3,null]|2025-12-10')).toThrow(/not a fact id/);
  });
});

describe("MongoFactLedger: two writers, one identity", () => {
  it("(a) both place before either writes entries; V's entries land first, then W's", async () => {
    const v = new Writer(db, "run-v");
    const w = new Writer(db, "run-w");
    await v.place([resolved(2, X, "web-a", 100)]);
    const wBatch = await w.place([resolved(2, X, "web-b", 200)]);
    // W read V's fact: a move away from A, one revision up.
    expect(wBatch.moved).toBe(1);
    expect(wBatch.removals).toEqual([removalFrom("web-a", [{ key: keyOf(X), rev: 2 }])]);
    expect(wBatch.placed.map((row) => row.provenance)).toEqual([{ rev: 2, run: "run-w", line: 2 }]);

    await v.write();
    await v.remove();
    // V's fact moved on to B: what V wrote into A is taken back out.
    expect(await v.settle()).toEqual([removalFrom("web-a", [{ key: keyOf(X), rev: 2 }])]);
    expect(await holdings(db)).toEqual({});
    await w.write();
    await w.remove();
    expect(await w.settle()).toEqual([]);

    expect(await problemsOf(db)).toEqual([]);
    expect(await holdings(db)).toEqual({ "order-1/web-b": [[X], 200] });
    expect(await factOf(db, X)).toMatchObject({
      rev: 2,
      ...ref("web-b"),
      run: "run-w",
      stale: [],
      replaced: { ...ref("web-a"), run: "run-v" },
    });
  });

  it("(a) both place before either writes entries; W's entries land first, then V's", async () => {
    const v = new Writer(db, "run-v");
    const w = new Writer(db, "run-w");
    await v.place([resolved(2, X, "web-a", 100)]);
    await w.place([resolved(2, X, "web-b", 200)]);

    await w.write();
    await w.remove(); // A does not exist yet: nothing to take out.
    await w.settle();
    expect((await factOf(db, X))?.stale).toEqual([]);
    await v.write();
    expect(await holdings(db)).toEqual({
      "order-1/web-a": [[X], 100],
      "order-1/web-b": [[X], 200],
    });
    await v.remove();
    expect(await v.settle()).toEqual([removalFrom("web-a", [{ key: keyOf(X), rev: 2 }])]);

    expect(await problemsOf(db)).toEqual([]);
    expect(await holdings(db)).toEqual({ "order-1/web-b": [[X], 200] });
  });

  it("(b) V places and writes A; W places B, writes, removes and settles; then V settles", async () => {
    const v = new Writer(db, "run-v");
    const w = new Writer(db, "run-w");
    await v.place([resolved(2, X, "web-a", 100), resolved(3, Y, "web-a", 300)]);
    await v.write();
    await w.place([resolved(2, X, "web-b", 200)]);
    await w.write();
    await w.remove();
    // W took its own move out of A; Y stays there.
    expect(await holdings(db)).toEqual({
      "order-1/web-a": [[Y], 300],
      "order-1/web-b": [[X], 200],
    });
    await w.settle();
    await v.remove();
    // V's settle still names A for X (its fact moved on), which is already clean.
    expect(await v.settle()).toEqual([removalFrom("web-a", [{ key: keyOf(X), rev: 2 }])]);

    expect(await problemsOf(db)).toEqual([]);
    expect(await holdings(db)).toEqual({
      "order-1/web-a": [[Y], 300],
      "order-1/web-b": [[X], 200],
    });
  });

  it("(c) the slow writer: V's write of A lands after W's removal from A, and V's settle takes it back", async () => {
    const v = new Writer(db, "run-v");
    const w = new Writer(db, "run-w");
    await v.place([resolved(2, X, "web-a", 100), resolved(3, Y, "web-a", 300)]);
    await w.place([resolved(2, X, "web-b", 200)]);
    await w.write();
    await w.remove();
    await w.settle();
    // Now V's delayed entry write arrives: it puts X back into A at its old revision.
    await v.write();
    const a = await db.collection(ENTRIES_COLLECTION).findOne({ itemPath: "web-a" });
    expect(a?.contributions.map((c: Contribution) => [c.creativeId, c.rev, c.run])).toEqual([
      [X, 1, "run-v"],
      [Y, 1, "run-v"],
    ]);
    await v.remove();
    const takenBack = await v.settle();

    expect(takenBack).toEqual([removalFrom("web-a", [{ key: keyOf(X), rev: 2 }])]);
    expect(await problemsOf(db)).toEqual([]);
    expect(await holdings(db)).toEqual({
      "order-1/web-a": [[Y], 300],
      "order-1/web-b": [[X], 200],
    });
  });

  it("(c) a slow write of an older value into the entry the fact still names keeps the newer one", async () => {
    const v = new Writer(db, "run-v");
    const w = new Writer(db, "run-w");
    await v.place([resolved(2, X, "web-a", 100)]);
    await w.place([resolved(2, X, "web-a", 150)]);
    await w.all([resolved(2, X, "web-a", 150)]);
    await v.write(); // rev 1 under W's rev 2: kept out
    await v.remove();
    expect(await v.settle()).toEqual([]);

    expect(await problemsOf(db)).toEqual([]);
    expect(await holdings(db)).toEqual({ "order-1/web-a": [[X], 150] });
  });

  it("both read the fact before either writes it: the loser's compare-and-set fails and it places again", async () => {
    const prior = new Writer(db, "run-u");
    await prior.all([resolved(2, X, "web-c", 50)]);
    // W reads rev 1 and is held before its write; V reads rev 1 and writes rev 2 meanwhile.
    const { w, v, gate, reached } = heldWriterW();
    const wPlacing = w.place([resolved(2, X, "web-b", 200)]);
    await reached.promise;
    const vBatch = await v.place([resolved(2, X, "web-a", 100)]);
    expect(vBatch.placed[0]?.provenance.rev).toBe(2);
    gate.resolve();
    const wBatch = await wPlacing;

    // W lost on rev 1, read V's rev 2 and placed from it: rev 3, stale C (V's, not yet
    // settled) and A (V's entry).
    expect(wBatch.placed[0]?.provenance).toEqual({ rev: 3, run: "run-w", line: 2 });
    expect(wBatch.removals).toEqual([
      removalFrom("web-c", [{ key: keyOf(X), rev: 3 }]),
      removalFrom("web-a", [{ key: keyOf(X), rev: 3 }]),
    ]);
    expect(await factOf(db, X)).toMatchObject({
      rev: 3,
      ...ref("web-b"),
      replaced: { ...ref("web-a"), run: "run-v" },
    });

    await v.write();
    await w.write();
    await w.remove();
    await v.remove();
    await w.settle();
    await v.settle();
    expect(await problemsOf(db)).toEqual([]);
    expect(await holdings(db)).toEqual({ "order-1/web-b": [[X], 200] });
  });

  it("two first placements of a new identity: the loser's insert fails and it places again as a move", async () => {
    const { w, v, gate, reached } = heldWriterW();
    const wPlacing = w.place([resolved(2, X, "web-b", 200)]);
    await reached.promise;
    await v.all([resolved(2, X, "web-a", 100)]);
    gate.resolve();
    const wBatch = await wPlacing;

    expect(wBatch.moved).toBe(1);
    expect(wBatch.removals).toEqual([removalFrom("web-a", [{ key: keyOf(X), rev: 2 }])]);
    await w.write();
    await w.remove();
    await w.settle();
    expect(await problemsOf(db)).toEqual([]);
    expect(await holdings(db)).toEqual({ "order-1/web-b": [[X], 200] });
  });

  it("gives up with MongoUnavailableError when the fact keeps changing under it", async () => {
    await new Writer(db, "run-u").all([resolved(2, X, "web-c", 50)]);
    const facts = db.collection<FactDocument>(FACTS_COLLECTION);
    let bumps = 0;
    // Another writer bumps the revision between every read and write of this one.
    const busy = interceptedFacts(facts, {
      before: async () => {
        bumps++;
        await facts.updateOne({ _id: idOf(X) }, { $inc: { rev: 1 } });
      },
    });
    const v = new Writer(db, "run-v", busy);

    await expect(v.place([resolved(2, X, "web-a", 100)])).rejects.toBeInstanceOf(
      MongoUnavailableError,
    );
    expect(bumps).toBe(5);
    // The ledger still takes the next batch (a failed place does not jam the chain).
    await expect(v.ledger.place([resolved(3, Y, "web-a", 10)])).resolves.toMatchObject({
      moved: 0,
    });
  });
});

describe("MongoFactLedger: insert-first once a file's facts turn out new", () => {
  /** The commands on the facts collection while `action` runs. */
  async function factCommands(action: () => Promise<unknown>): Promise<string[]> {
    const seen: string[] = [];
    const listener = (event: CommandStartedEvent) => {
      if (event.command[event.commandName] === FACTS_COLLECTION) seen.push(event.commandName);
    };
    client.on("commandStarted", listener);
    try {
      await action();
    } finally {
      client.off("commandStarted", listener);
    }
    return seen;
  }

  it("inserts without reading after a batch of new facts, and places a fact that existed after all from what is stored", async () => {
    const a = new Writer(db, "run-a");
    await a.all([resolved(2, X, "web-a", 100)]);
    const b = new Writer(db, "run-b");

    // The first batch of a run reads first; all of it was new.
    expect(await factCommands(() => b.all([resolved(2, Y, "web-a", 300)]))).toEqual([
      "find",
      "insert",
      "find",
    ]);
    // So the next batch inserts first: X exists (run A's), collides, is read and moved.
    let moving: LedgerBatch | undefined;
    expect(
      await factCommands(async () => {
        moving = await b.all([resolved(3, X, "web-b", 200)]);
      }),
      // insert (collides), read, compare-and-set; settle's read-back, then clearing the move's stale entry.
    ).toEqual(["insert", "find", "update", "find", "update"]);
    expect(moving?.moved).toBe(1);
    expect(moving?.removals).toEqual([removalFrom("web-a", [{ key: keyOf(X), rev: 2 }])]);
    expect(moving?.placed.map((row) => row.provenance)).toEqual([
      { rev: 2, run: "run-b", line: 3 },
    ]);
    // That batch's facts mostly existed: the next one reads first again.
    const Z = "cr_spring-sale_z";
    expect(await factCommands(() => b.all([resolved(4, Z, "web-b", 50)]))).toEqual([
      "find",
      "insert",
      "find",
    ]);

    expect(await problemsOf(db)).toEqual([]);
    expect(await holdings(db)).toEqual({
      "order-1/web-a": [[Y], 300],
      "order-1/web-b": [[X, Z], 250],
    });
    expect(await factOf(db, X)).toMatchObject({
      rev: 2,
      ...ref("web-b"),
      run: "run-b",
      line: 3,
      stale: [],
      replaced: { ...ref("web-a"), run: "run-a", line: 2 },
    });
  });
});

describe("MongoFactLedger: one run's overlapping batches", () => {
  it("keeps the later row's numbers when its batch's entry write lands before the earlier batch's", async () => {
    const ledger = new MongoFactLedger(
      db.collection<FactDocument>(FACTS_COLLECTION),
      "run-v",
      CLOCK,
    );
    const entries = new MongoEntryWriter(db.collection(ENTRIES_COLLECTION));
    const earlier = await ledger.place([
      resolved(10, X, "web-a", 100),
      resolved(11, Y, "web-a", 5),
    ]);
    const later = await ledger.place([resolved(5000, X, "web-a", 300)]);
    // The same run changed its own value: one revision for both (a clean cut into batches
    // gives the same revisions), and the later line is the fact's.
    expect(later.placed.map((row) => row.provenance)).toEqual([
      { rev: 1, run: "run-v", line: 5000 },
    ]);

    // The writes overlap (MAX_IN_FLIGHT): the later batch's lands first.
    for (const batch of [later, earlier]) {
      const result = await entries.write(groupIntoUpdates(batch.placed).updates);
      expect(result.failed).toEqual([]);
    }
    for (const batch of [later, earlier]) {
      await entries.remove(batch.removals);
      await entries.remove(await ledger.settle(batch));
    }

    expect(await problemsOf(db)).toEqual([]);
    expect(await holdings(db)).toEqual({ "order-1/web-a": [[X, Y], 305] });
  });
});

describe("MongoFactLedger: every interleaving of two writers' steps", () => {
  // U (a clean earlier run) put X and Y in C. V moves X to A and changes Y in C; W moves
  // X to B and Y to A. 70 interleavings of V's and W's four steps each.
  const rowsOf: Record<string, ResolvedRow[]> = {
    U: [resolved(2, X, "web-c", 100), resolved(3, Y, "web-c", 200)],
    V: [resolved(2, X, "web-a", 110), resolved(3, Y, "web-c", 210)],
    W: [resolved(5, X, "web-b", 120), resolved(6, Y, "web-a", 220)],
  };
  const serial = new Map<string, Awaited<ReturnType<typeof snapshot>>>();

  /** The state of U, then the others one after the other in `order`, each run whole. */
  async function serialState(order: string[]) {
    const id = order.join("");
    const known = serial.get(id);
    if (known) return known;
    const reference = await freshDb("serial");
    for (const name of ["U", ...order]) {
      await new Writer(reference, `run-${name.toLowerCase()}`).all(rowsOf[name] ?? []);
    }
    const state = await snapshot(reference);
    serial.set(id, state);
    return state;
  }

  it.each(
    interleavings(["V", "W"], STEPS).map((steps) => [steps.join(" "), steps] as [string, string[]]),
  )("%s", async (_, steps) => {
    await new Writer(db, "run-u").all(rowsOf.U ?? []);
    const writers: Record<string, Writer> = {
      V: new Writer(db, "run-v"),
      W: new Writer(db, "run-w"),
    };
    for (const step of steps as string[]) {
      const [name, what] = step.split(".") as [string, Step];
      await runStep(writers[name] as Writer, what, rowsOf[name] ?? []);
    }

    expect(await problemsOf(db)).toEqual([]);
    // The result is the serial run in placement order.
    const placeOrder = (steps as string[])
      .filter((step) => step.endsWith(".place"))
      .map((step) => step.slice(0, 1));
    expect(await snapshot(db)).toEqual(await serialState(placeOrder));
  });
});

describe("MongoFactLedger: three writers", () => {
  // V puts X in A, W moves it to B, T moves it back to A (with Y joining A).
  const rowsOf: Record<string, ResolvedRow[]> = {
    V: [resolved(2, X, "web-a", 100)],
    W: [resolved(2, X, "web-b", 200), resolved(3, Y, "web-b", 20)],
    T: [resolved(2, X, "web-a", 300), resolved(3, Y, "web-a", 30)],
  };
  const names = ["V", "W", "T"];

  it("(e) move back A → B → A across three runs, one after the other", async () => {
    await new Writer(db, "run-v").all(rowsOf.V ?? []);
    expect(await problemsOf(db)).toEqual([]);
    const wBatch = await new Writer(db, "run-w").all(rowsOf.W ?? []);
    expect(wBatch.moved).toBe(1);
    expect(await problemsOf(db)).toEqual([]);
    expect(await holdings(db)).toEqual({ "order-1/web-b": [[X, Y], 220] });
    const tBatch = await new Writer(db, "run-t").all(rowsOf.T ?? []);
    expect(tBatch.moved).toBe(2);
    expect(tBatch.removals).toEqual([
      removalFrom("web-b", [
        { key: keyOf(X), rev: 3 },
        { key: keyOf(Y), rev: 2 },
      ]),
    ]);

    expect(await problemsOf(db)).toEqual([]);
    expect(await holdings(db)).toEqual({ "order-1/web-a": [[X, Y], 330] });
    expect(await factOf(db, X)).toMatchObject({
      rev: 3,
      ...ref("web-a"),
      run: "run-t",
      replaced: { ...ref("web-b"), run: "run-w" },
      stale: [],
    });
  });

  it("(e) move back A → B → A: all three place first, then entries land newest first", async () => {
    const writers = names.map((name) => new Writer(db, `run-${name.toLowerCase()}`));
    for (const [index, writer] of writers.entries()) {
      await writer.place(rowsOf[names[index] as string] ?? []);
    }
    for (const writer of [...writers].reverse()) {
      await writer.write();
      await writer.remove();
      await writer.settle();
    }

    expect(await problemsOf(db)).toEqual([]);
    expect(await holdings(db)).toEqual({ "order-1/web-a": [[X, Y], 330] });
  });

  const random = createRandom(20251210);
  const sample = Array.from({ length: 40 }, () => randomInterleaving(names, random));

  it.each(sample.map((steps) => [steps.join(" "), steps] as [string, string[]]))(
    "%s",
    async (_, steps) => {
      const writers: Record<string, Writer> = Object.fromEntries(
        names.map((name) => [name, new Writer(db, `run-${name.toLowerCase()}`)]),
      );
      const placeOrder: string[] = [];
      for (const step of steps as string[]) {
        const [name, what] = step.split(".") as [string, Step];
        if (what === "place") placeOrder.push(name);
        await runStep(writers[name] as Writer, what, rowsOf[name] ?? []);
      }

      expect(await problemsOf(db)).toEqual([]);
      // The last to place an identity owns it.
      const lastOf = (creativeId: string) =>
        [...placeOrder]
          .reverse()
          .find((name) => (rowsOf[name] ?? []).some((row) => row.row.creativeId === creativeId));
      expect((await factOf(db, X))?.run).toBe(`run-${lastOf(X)?.toLowerCase()}`);
      expect((await factOf(db, Y))?.run).toBe(`run-${lastOf(Y)?.toLowerCase()}`);
    },
  );
});

describe("MongoFactLedger: a crashed run retried", () => {
  const prior = [resolved(2, X, "web-c", 100), resolved(3, Y, "web-c", 200)];
  const rows = [resolved(2, X, "web-a", 110), resolved(3, Y, "web-c", 210)];

  async function cleanState() {
    const reference = await freshDb("clean");
    await new Writer(reference, "run-u").all(prior);
    await new Writer(reference, "run-v").all(rows);
    return snapshot(reference);
  }

  it.each([
    ["after placing", 1],
    ["after writing entries", 2],
    ["after removing moved contributions", 3],
  ] as const)(
    "(d) V crashes %s; a fresh retry of V's run leaves what a clean run leaves",
    async (_, done) => {
      await new Writer(db, "run-u").all(prior);
      const crashed = new Writer(db, "run-v");
      for (const step of STEPS.slice(0, done)) await runStep(crashed, step, rows);
      // The crash: the fact names A, and C may still hold X.
      expect(await factOf(db, X)).toMatchObject({ ...ref("web-a"), stale: [ref("web-c")] });

      const retry = new Writer(db, "run-v");
      const batch = await retry.all(rows);

      // The retry finds its own value: same revision, and the stale C still to clean.
      expect(batch.placed.map((row) => row.provenance)).toEqual([
        { rev: 2, run: "run-v", line: 2 },
        { rev: 2, run: "run-v", line: 3 },
      ]);
      expect(batch.superseded).toBe(0);
      // X's move from C to A is counted as in the clean run (once), though the crashed
      // attempt had already pointed the fact at A.
      expect(batch.moved).toBe(1);
      expect(await problemsOf(db)).toEqual([]);
      expect(await snapshot(db)).toEqual(await cleanState());
    },
  );

  it("(d) V crashes after placing; W moves the identity on and completes; V's retry completes", async () => {
    await new Writer(db, "run-u").all(prior);
    await new Writer(db, "run-v").place(rows);
    const w = new Writer(db, "run-w");
    await w.all([resolved(2, X, "web-b", 120)]);
    // Until the retry, V's placed-but-unwritten Y is ahead of its entry (C holds U's Y);
    // X is consistent again (W's move also cleaned the stale C V's place left).
    expect(await problemsOf(db)).toEqual([
      `fact ${idOf(Y)}: entry numbers {"impressions":200,"clicks":20,"viewableImpressions":100,"uniqueIps":50}`,
      `fact ${idOf(Y)}: entry provenance [1,"run-u",3]`,
    ]);

    const retry = new Writer(db, "run-v");
    await retry.all(rows);

    // The retry placed last: X is V's again, in A, and B is gone.
    expect(await problemsOf(db)).toEqual([]);
    expect(await holdings(db)).toEqual({
      "order-1/web-a": [[X], 110],
      "order-1/web-c": [[Y], 210],
    });
    expect(await factOf(db, X)).toMatchObject({ rev: 4, run: "run-v", ...ref("web-a") });
  });

  /**
   * W places X in A; V moves X from A to B and completes (its removal from A finds
   * nothing yet); W's entry write then lands late, and W dies before its read-back.
   */
  async function leaveLateCopy(): Promise<void> {
    const w = new Writer(db, "run-w");
    await w.place([resolved(2, X, "web-a", 100)]);
    await new Writer(db, "run-v").all([resolved(2, X, "web-b", 120)]);
    await w.write();
    expect(await holdings(db)).toEqual({
      "order-1/web-a": [[X], 100],
      "order-1/web-b": [[X], 120],
    });
  }

  it.each([
    ["another entry", "web-c", 130],
    ["the newer run's entry, other numbers", "web-b", 130],
    ["the newer run's entry, its numbers", "web-b", 120],
    ["its first entry again", "web-a", 130],
  ] as const)(
    "(d) W writes its entry after V moved the identity away, dies before settling; W's retry resolving to %s takes the late copy out",
    async (_, retryEntry, retryImpressions) => {
      await leaveLateCopy();

      const retry = new Writer(db, "run-w");
      await retry.all([resolved(2, X, retryEntry, retryImpressions)]);

      expect(await problemsOf(db)).toEqual([]);
      expect(await holdings(db)).toEqual({ [`order-1/${retryEntry}`]: [[X], retryImpressions] });
    },
  );

  it("(d) W's late copy is taken out by a third run that changes the value before W's retry", async () => {
    await leaveLateCopy();

    // U replaces V's value where it lives: the fact's history no longer names W's run, but
    // the entry V moved it from is still where a copy may be.
    const u = await new Writer(db, "run-u").all([resolved(2, X, "web-b", 125)]);

    expect(u.moved).toBe(0);
    expect(await problemsOf(db)).toEqual([]);
    expect(await holdings(db)).toEqual({ "order-1/web-b": [[X], 125] });

    // W's retry then finds nothing of its own left to take out.
    await new Writer(db, "run-w").all([resolved(2, X, "web-b", 100)]);
    expect(await problemsOf(db)).toEqual([]);
    expect(await holdings(db)).toEqual({ "order-1/web-b": [[X], 100] });
  });

  it("(d) a run of two batches crashes after placing the second; the retry from the start equals a clean run", async () => {
    const first = [resolved(2, X, "web-a", 110)];
    const second = [resolved(3, X, "web-a", 130), resolved(4, Y, "web-a", 40)];
    const reference = await freshDb("clean");
    const clean = new Writer(reference, "run-v");
    const cleanFirst = await clean.all(first);
    const cleanSecond = await clean.all(second);
    expect(cleanFirst.superseded).toBe(0);
    expect(cleanSecond.superseded).toBe(1);

    const crashed = new Writer(db, "run-v");
    await crashed.all(first);
    await crashed.place(second);
    const retry = new Writer(db, "run-v");
    const retriedFirst = await retry.all(first);
    // Line 2 was already replaced by line 3 in this run: not written, and (as in the clean
    // run) its warning comes with the batch of line 3, the row that replaces it.
    expect(retriedFirst).toMatchObject({ placed: [], superseded: 0 });
    expect(retriedFirst.unplaced.map((row) => row.row.line)).toEqual([2]);
    const retriedSecond = await retry.all(second);
    expect(retriedSecond.superseded).toBe(1);

    expect(await problemsOf(db)).toEqual([]);
    expect(await snapshot(db)).toEqual(await snapshot(reference));
  });
});

describe("MongoFactLedger: duplicate rows and a retry that starts between them", () => {
  it("counts the later row's warning when a continuation is retried from a checkpoint after a dead attempt read past it", async () => {
    const first = [resolved(2, X, "web-a", 110)];
    const second = [resolved(3, Y, "web-a", 40)];
    const third = [resolved(4, X, "web-a", 130)];
    const reference = await freshDb("clean");
    const clean = new Writer(reference, "run-v");
    const cleanCounts = [];
    for (const batch of [first, second, third])
      cleanCounts.push((await clean.all(batch)).superseded);
    expect(cleanCounts).toEqual([0, 0, 1]);

    // The run committed batch 1 (its checkpoint), a dead attempt went on through batch 3,
    // and the retry starts from the checkpoint: it never sees line 2 again.
    const crashed = new Writer(db, "run-v");
    await crashed.all(first);
    await crashed.all(second);
    await crashed.all(third);
    const retry = new Writer(db, "run-v");
    const retried = [(await retry.all(second)).superseded, (await retry.all(third)).superseded];

    expect(retried).toEqual([0, 1]);
    expect(await problemsOf(db)).toEqual([]);
    expect(await snapshot(db)).toEqual(await snapshot(reference));
  });
});

describe("MongoFactLedger: an entry write that fails for good", () => {
  /**
   * U put X in C; V moves X to A, but A's upsert answers E11000 on every attempt (a
   * manual entry holds the itemName a second unique index guards). The steps run as
   * batch-pipeline.ts `write()` runs them: the removals and the settle regardless.
   */
  async function failedMove() {
    await new Writer(db, "run-u").all([resolved(2, X, "web-c", 100)]);
    const entries = db.collection(ENTRIES_COLLECTION);
    await entries.createIndex({ itemName: 1 }, { unique: true, name: "collide" });
    await entries.insertOne({
      orderId: "order-9",
      itemPath: "manual",
      dateStart: new Date(`${DAY}T00:00:00.000Z`),
      source: "manual",
      itemName: "Item web-a",
    });
    const v = new Writer(db, "run-v");
    await v.place([resolved(2, X, "web-a", 110)]);
    const grouped = groupIntoUpdates(v.placed.placed);
    const result = await v.entries.write(grouped.updates);
    v.ledger.writeFailed(
      v.placed,
      result.failed.flatMap((failure) => grouped.rowsOf[failure.index] ?? []),
    );
    await v.remove();
    await v.settle();
    return result;
  }

  it("rejects the row as write-failed, and reprocessing it once the entry can be written completes the move", async () => {
    const result = await failedMove();
    expect(result.failed).toEqual([{ index: 0, code: 11000, message: expect.any(String) }]);

    const entries = db.collection(ENTRIES_COLLECTION);
    await entries.dropIndex("collide");
    await entries.deleteOne({ source: "manual" });
    const batch = await new Writer(db, "run-r").all([resolved(2, X, "web-a", 110)]);

    // The same value the fact holds: V's revision and provenance stay.
    expect(batch.placed.map((row) => row.provenance)).toEqual([{ rev: 2, run: "run-v", line: 2 }]);
    expect(await problemsOf(db)).toEqual([]);
    expect(await holdings(db)).toEqual({ "order-1/web-a": [[X], 110] });
  });

  // The failed rows' moves stay pending (`FactLedger.writeFailed`): the old entry keeps
  // the old contribution and the fact keeps it stale, so the identity is still counted once.
  it("keeps the moved contribution in its old entry, and the move pending, when the new entry's write fails", async () => {
    await failedMove();

    expect(await holdings(db)).toEqual({ "order-1/web-c": [[X], 100] });
    expect((await factOf(db, X))?.stale).toEqual([ref("web-c")]);
  });
});

describe("MongoFactLedger: contributions written before the ledger", () => {
  /** An entry as the pre-ledger writer left it: contributions without rev, run or line. */
  async function preLedgerEntry(itemPath: string, rows: ResolvedRow[]): Promise<void> {
    const { updates } = groupIntoUpdates(
      rows.map((row) => ({ ...row, provenance: { rev: 0, run: "", line: 0 } })),
    );
    for (const update of updates) {
      for (const contribution of update.contributions as Partial<Contribution>[]) {
        delete contribution.rev;
        delete contribution.run;
        delete contribution.line;
      }
    }
    await new MongoEntryWriter(db.collection(ENTRIES_COLLECTION)).write(updates);
    const entry = await db.collection(ENTRIES_COLLECTION).findOne({ itemPath });
    expect(entry?.contributions.map((c: Document) => c.rev ?? "none")).toEqual(
      rows.map(() => "none"),
    );
  }

  /** The fact the ledger upgrade records for a pre-ledger contribution. */
  async function upgradedFact(row: ResolvedRow): Promise<void> {
    const { row: values, target } = row;
    await db.collection<FactDocument>(FACTS_COLLECTION).insertOne({
      _id: idOf(values.creativeId),
      day: new Date(`${DAY}T00:00:00.000Z`),
      rev: 1,
      ...ref(target.itemPath),
      itemName: target.itemName,
      impressions: values.impressions,
      clicks: values.clicks,
      viewableImpressions: values.viewableImpressions,
      uniqueIps: values.uniqueIps,
      run: PRE_LEDGER_RUN,
      line: 0,
      replaced: null,
      stale: [],
      seen: { run: PRE_LEDGER_RUN, line: 0 },
      updatedAt: CLOCK(),
    });
  }

  it("(f) a move takes a revision-less contribution out of the entry its upgraded fact names", async () => {
    const old = [resolved(2, X, "web-c", 100), resolved(3, Y, "web-c", 200)];
    await preLedgerEntry("web-c", old);
    for (const row of old) await upgradedFact(row);
    expect(await problemsOf(db)).toEqual([]);

    const batch = await new Writer(db, "run-v").all([resolved(2, X, "web-a", 110)]);

    expect(batch.removals).toEqual([removalFrom("web-c", [{ key: keyOf(X), rev: 2 }])]);
    expect(await problemsOf(db)).toEqual([]);
    expect(await holdings(db)).toEqual({
      "order-1/web-a": [[X], 110],
      "order-1/web-c": [[Y], 200],
    });
  });

  it("(f) the first ledger run replaces a revision-less contribution in place, and a later move removes it", async () => {
    await preLedgerEntry("web-c", [resolved(2, X, "web-c", 100)]);
    await new Writer(db, "run-u").all([resolved(2, X, "web-c", 105)]);
    expect(await holdings(db)).toEqual({ "order-1/web-c": [[X], 105] });
    expect(await problemsOf(db)).toEqual([]);

    await new Writer(db, "run-v").all([resolved(2, X, "web-a", 110)]);

    expect(await problemsOf(db)).toEqual([]);
    expect(await holdings(db)).toEqual({ "order-1/web-a": [[X], 110] });
  });
});

describe("MongoFactLedger: facts of the ledger's first shape", () => {
  /** X's fact rewritten as the ledger wrote it before d8694eb: identity fields, entry and numbers nested. */
  async function toFirstShape(): Promise<void> {
    const facts = db.collection(FACTS_COLLECTION);
    const fact = (await facts.findOne({ _id: idOf(X) as never })) as Document;
    const { orderId, itemPath, impressions, clicks, viewableImpressions, uniqueIps, ...rest } =
      fact;
    await facts.deleteMany({});
    await facts.insertOne({
      ...rest,
      creativeId: X,
      publicationCode: "chireader",
      channel: "website",
      adSize: "300x250",
      entry: { orderId, itemPath },
      numbers: { impressions, clicks, viewableImpressions, uniqueIps },
      replaced: null,
      stale: [],
      seen: { run: fact.run, line: fact.line, first: fact.line },
    });
  }

  async function rawFact(): Promise<Document | null> {
    return db.collection(FACTS_COLLECTION).findOne({ _id: idOf(X) as never });
  }

  it("moves a contribution out of the entry a first-shape fact names, and rewrites the fact in today's shape", async () => {
    await new Writer(db, "run-u").all([resolved(2, X, "web-c", 100)]);
    await toFirstShape();
    expect(await rawFact()).toMatchObject({ entry: ref("web-c"), numbers: { impressions: 100 } });

    const batch = await new Writer(db, "run-v").all([resolved(2, X, "web-a", 100)]);

    expect(batch.moved).toBe(1);
    expect(await holdings(db)).toEqual({ "order-1/web-a": [[X], 100] });
    expect(await problemsOf(db)).toEqual([]);
    const fact = await rawFact();
    expect(fact).toMatchObject({
      ...ref("web-a"),
      impressions: 100,
      rev: 2,
      replaced: { ...ref("web-c"), impressions: 100, run: "run-u", line: 2 },
    });
    for (const field of ["entry", "numbers", "creativeId", "publicationCode", "channel", "adSize"])
      expect(fact).not.toHaveProperty(field);
  });

  it("keeps a first-shape fact's value and provenance when the same value is read again", async () => {
    await new Writer(db, "run-u").all([resolved(2, X, "web-c", 100)]);
    await toFirstShape();
    expect(await rawFact()).toMatchObject({ entry: ref("web-c"), numbers: { impressions: 100 } });

    const batch = await new Writer(db, "run-v").all([resolved(2, X, "web-c", 100)]);

    expect(batch.moved).toBe(0);
    expect(batch.placed.map((row) => row.provenance)).toEqual([{ rev: 1, run: "run-u", line: 2 }]);
    expect(await holdings(db)).toEqual({ "order-1/web-c": [[X], 100] });
    expect(await problemsOf(db)).toEqual([]);
    const fact = await rawFact();
    expect(fact).toMatchObject({ ...ref("web-c"), impressions: 100, rev: 1, run: "run-u" });
    expect(fact?.seen).toMatchObject({ run: "run-v", line: 2 });
    expect(fact).not.toHaveProperty("entry");
    expect(fact).not.toHaveProperty("numbers");
  });
});

describe("DryRunFactLedger", () => {
  /** What a batch decision says, minus the dry run's own markers. */
  function decisionsOf(batch: LedgerBatch) {
    return {
      placed: batch.placed.map((row) => ({ line: row.row.line, provenance: row.provenance })),
      unplaced: batch.unplaced.map((row) => row.row.line),
      superseded: batch.superseded,
      moved: batch.moved,
      removals: batch.removals,
    };
  }

  async function decide(ledger: FactLedger, batches: ResolvedRow[][]) {
    const out: ReturnType<typeof decisionsOf>[] = [];
    for (const batch of batches) {
      const placed = await ledger.place(batch);
      out.push(decisionsOf(placed));
      await ledger.settle(placed);
    }
    return out;
  }

  // X repeats across batches with the same value, Y with a new one, and X again twice in
  // one batch; Z only once. U's earlier run holds X (same entry, other numbers) and Z.
  const file = [
    [resolved(2, X, "web-a", 100), resolved(3, Y, "web-a", 200)],
    [resolved(4, X, "web-a", 100), resolved(5, Y, "web-a", 250), resolved(6, "cr_z", "web-b", 9)],
    [resolved(7, X, "web-a", 120), resolved(8, X, "web-a", 130)],
  ];

  it("counts duplicates across batches as superseding earlier rows, exactly as the real ledger", async () => {
    await new Writer(db, "run-u").all([
      resolved(9, X, "web-a", 1),
      resolved(10, "cr_z", "web-c", 9),
    ]);
    const facts = db.collection<FactDocument>(FACTS_COLLECTION);
    const before = await snapshot(db);
    writeCommands.length = 0;

    const dry = await decide(new DryRunFactLedger(facts, "run-v"), file);
    expect(writeCommands).toEqual([]);
    expect(await snapshot(db)).toEqual(before);
    const real = await decide(new MongoFactLedger(facts, "run-v", CLOCK), file);

    expect(dry).toEqual(real);
    expect(dry.map((batch) => batch.superseded)).toEqual([0, 2, 2]);
    expect(dry[1]?.placed).toEqual([
      // The same value as line 2: line 2 stays its provenance.
      { line: 4, provenance: { rev: 2, run: "run-v", line: 2 } },
      { line: 5, provenance: { rev: 1, run: "run-v", line: 5 } },
      // U's value moves from C to B.
      { line: 6, provenance: { rev: 2, run: "run-v", line: 6 } },
    ]);
    expect(dry[1]?.removals).toEqual([removalFrom("web-c", [{ key: keyOf("cr_z"), rev: 2 }])]);
    expect(dry[2]).toMatchObject({
      placed: [{ line: 8, provenance: { rev: 2, run: "run-v", line: 8 } }],
      unplaced: [7],
    });
  });

  it("judges a re-read of rows this run already placed (a retry) as the real ledger does", async () => {
    const facts = db.collection<FactDocument>(FACTS_COLLECTION);
    // The run's first invocation placed the whole file, then the object is read again.
    await decide(new MongoFactLedger(facts, "run-v", CLOCK), file);
    const before = await snapshot(db);
    writeCommands.length = 0;

    const dry = await decide(new DryRunFactLedger(facts, "run-v"), file);
    expect(writeCommands).toEqual([]);
    expect(await snapshot(db)).toEqual(before);
    const real = await decide(new MongoFactLedger(facts, "run-v", CLOCK), file);

    expect(dry).toEqual(real);
    // Earlier lines of X and Y are replaced by the later ones already applied.
    expect(dry.map((batch) => batch.unplaced)).toEqual([[2, 3], [4], [7]]);
  });

  // A dry run continued into a new invocation gets a new DryRunFactLedger, built from
  // the memory the earlier invocation handed over (through its bytes, as in S3), while a
  // real run's next invocation reads its own facts back. A row repeated across the
  // invocation boundary is a supersedes-earlier warning in both.
  it("judges duplicates across invocations of one run as the real ledger does", async () => {
    const facts = db.collection<FactDocument>(FACTS_COLLECTION);
    const [first, ...rest] = file;
    const firstInvocation = new DryRunFactLedger(facts, "run-v");
    const dryFirst = await decide(firstInvocation, [first ?? []]);
    const content = encodeDryRunMemory({
      facts: firstInvocation.memory(),
      entries: new CompactMap(),
    });
    const handedOver = await readDryRunMemory(content.body, content.size);
    const dry = [
      ...dryFirst,
      ...(await decide(new DryRunFactLedger(facts, "run-v", handedOver.facts), rest)),
    ];
    const real = [
      ...(await decide(new MongoFactLedger(facts, "run-v", CLOCK), [first ?? []])),
      ...(await decide(new MongoFactLedger(facts, "run-v", CLOCK), rest)),
    ];

    expect(
      real.map((batch) => batch.superseded),
      "real",
    ).toEqual([0, 2, 2]);
    expect(
      dry.map((batch) => batch.superseded),
      "dry",
    ).toEqual([0, 2, 2]);
  });

  it("writes nothing to the facts or the entries, and settles nothing", async () => {
    const facts = db.collection<FactDocument>(FACTS_COLLECTION);
    const dry = new DryRunFactLedger(facts, "run-v");
    writeCommands.length = 0;

    for (const batch of file) {
      const placed = await dry.place(batch);
      expect(await dry.settle()).toEqual([]);
      expect(placed.placed.length).toBeGreaterThan(0);
    }

    expect(writeCommands).toEqual([]);
    expect(await db.collection(FACTS_COLLECTION).countDocuments()).toBe(0);
    expect(await db.collection(ENTRIES_COLLECTION).countDocuments()).toBe(0);
  });
});
