import {
  type AnyBulkWriteOperation,
  type Collection,
  type Db,
  type Document,
  MongoBulkWriteError,
} from "mongodb";
import { toIsoDate } from "../shared/dates";
import type { Contribution } from "./entry-update";
import { SOURCE } from "./entry-update";
import { type EntryRef, FACTS_COLLECTION, type FactDocument, factId, readFact } from "./ledger";
import { ENTRIES_COLLECTION } from "./mongo";

/** The run a fact recovered from an entry written before the ledger names. */
export const PRE_LEDGER_RUN = "pre-ledger";

export interface LedgerUpgradeResult {
  /** Automated entries read. */
  entries: number;
  /** Facts recorded from their contributions. */
  factsCreated: number;
  /** Contributions whose identity and day already had a fact pointing to the same entry. */
  alreadyRecorded: number;
  /**
   * Contributions of an identity and day that another entry holds too (counted twice before
   * the ledger): that entry is recorded as stale, so the next run that reads the identity
   * takes the copy out.
   */
  duplicates: number;
}

const CHUNK = 1000;

/**
 * Gives the contributions of entries written before the ledger their facts, so a later
 * move of such a contribution is caught. Reads only `source: "automated"` entries, never
 * writes an entry, and never changes a fact that exists: it may be run again at any time
 * (and while ingests run). Entries are read newest first, so when one identity and day sits
 * in several entries (double counted before the ledger), the newest keeps it and the
 * others are marked stale. The facts get revision 1, above the revision-less (0)
 * contributions they describe, so the first run that moves one takes the old copy out.
 */
export async function upgradeLedger(db: Db, now: Date = new Date()): Promise<LedgerUpgradeResult> {
  const result: LedgerUpgradeResult = {
    entries: 0,
    factsCreated: 0,
    alreadyRecorded: 0,
    duplicates: 0,
  };
  const facts = db.collection<FactDocument>(FACTS_COLLECTION);
  const cursor = db
    .collection(ENTRIES_COLLECTION)
    .find(
      { source: SOURCE, "contributions.0": { $exists: true } },
      { projection: { orderId: 1, itemPath: 1, dateStart: 1, contributions: 1 } },
    )
    // The newest entry keeps an identity held twice; a one-off sort may spill to disk.
    .sort({ updatedAt: -1, _id: 1 })
    .allowDiskUse(true);
  let chunk: Document[] = [];
  for await (const entry of cursor) {
    result.entries++;
    chunk.push(entry);
    if (chunk.length >= CHUNK) {
      await upgradeChunk(facts, chunk, now, result);
      chunk = [];
    }
  }
  if (chunk.length > 0) await upgradeChunk(facts, chunk, now, result);
  return result;
}

async function upgradeChunk(
  facts: Collection<FactDocument>,
  entries: Document[],
  now: Date,
  result: LedgerUpgradeResult,
): Promise<void> {
  const found: { id: string; entry: EntryRef; contribution: Contribution; day: Date }[] = [];
  for (const entry of entries) {
    if (!(entry.dateStart instanceof Date)) continue;
    for (const contribution of entry.contributions as Contribution[]) {
      found.push({
        id: factId(contribution.key, toIsoDate(entry.dateStart)),
        entry: { orderId: String(entry.orderId), itemPath: String(entry.itemPath) },
        contribution,
        day: entry.dateStart,
      });
    }
  }
  const stored = new Map(
    (await facts.find({ _id: { $in: found.map((item) => item.id) } }).toArray())
      .map(readFact)
      .map((fact) => [fact._id, { orderId: fact.orderId, itemPath: fact.itemPath }]),
  );
  const operations: AnyBulkWriteOperation<FactDocument>[] = [];
  for (const item of found) {
    const holder = stored.get(item.id);
    if (holder === undefined) {
      stored.set(item.id, item.entry);
      operations.push({
        updateOne: {
          filter: { _id: item.id },
          update: { $setOnInsert: preLedgerFact(item, now) },
          upsert: true,
        },
      });
      result.factsCreated++;
    } else if (holder.orderId === item.entry.orderId && holder.itemPath === item.entry.itemPath) {
      result.alreadyRecorded++;
    } else {
      operations.push({
        updateOne: { filter: { _id: item.id }, update: { $addToSet: { stale: item.entry } } },
      });
      result.duplicates++;
    }
  }
  if (operations.length === 0) return;
  try {
    // Unordered: a fact an ingest inserted meanwhile (E11000 on `_id`) stops nothing else.
    await facts.bulkWrite(operations, { ordered: false });
  } catch (error) {
    const writeErrors = error instanceof MongoBulkWriteError ? [error.writeErrors].flat() : [];
    if (writeErrors.length === 0 || writeErrors.some((e) => e.code !== 11000)) throw error;
    result.factsCreated -= writeErrors.length;
    result.alreadyRecorded += writeErrors.length;
  }
}

function preLedgerFact(
  item: { id: string; entry: EntryRef; contribution: Contribution; day: Date },
  now: Date,
): FactDocument {
  const { contribution } = item;
  return {
    _id: item.id,
    day: item.day,
    rev: 1,
    orderId: item.entry.orderId,
    itemPath: item.entry.itemPath,
    itemName: contribution.itemName,
    impressions: contribution.impressions,
    clicks: contribution.clicks,
    viewableImpressions: contribution.viewableImpressions,
    uniqueIps: contribution.uniqueIps,
    run: PRE_LEDGER_RUN,
    line: 0,
    seen: { run: PRE_LEDGER_RUN, line: 0 },
    updatedAt: now,
  };
}
