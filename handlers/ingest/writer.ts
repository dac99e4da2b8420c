import { type Collection, type Document, MongoBulkWriteError } from "mongodb";
import { applyEntryUpdate, buildBatchUpdate, type EntryUpdate } from "./entry-update";
import { MongoUnavailableError } from "./errors";
import { asMongoUnavailable } from "./mongo";

/** What one batch's updates did (or, in a dry run, would do). Counts are per entry per batch. */
export interface BatchWriteResult {
  inserted: number;
  updated: number;
  unchanged: number;
  /** Entries that failed for good (not E11000, not an outage): their rows become errors. */
  failed: { index: number; code: number | undefined; message: string }[];
  /** Dry runs: how many updates would change each field. */
  fieldChanges?: Record<string, number>;
}

/** Where a batch's entry updates go: MongoDB (real runs) or a simulation (dry runs). */
export interface EntryWriter {
  write(updates: readonly EntryUpdate[]): Promise<BatchWriteResult>;
}

const DUPLICATE_KEY = 11000;
/** A lost race (an entry deleted or created between our two commands) is retried this often. */
const MAX_ATTEMPTS = 4;
/** Existing entries per update statement: keeps each statement far below 16 MB. */
const ENTRIES_PER_STATEMENT = 2_000;

/**
 * Real runs. A batch costs one or two commands whatever its size: new entries are
 * inserted whole (`insertMany`, unordered: an existing key answers E11000), existing
 * ones are updated by ONE pipeline statement for all of them (`buildBatchUpdate`).
 * Which goes first adapts to the previous batch: a nightly file is mostly new entries
 * (insert first: one command), a re-processed file mostly existing ones (update first:
 * one command). Every step is idempotent, so a retry after any failure ends in the
 * state a clean run gives, and a concurrent writer only costs another round.
 */
export class MongoEntryWriter implements EntryWriter {
  private updateFirst = false;

  constructor(
    private readonly entries: Collection,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async write(updates: readonly EntryUpdate[]): Promise<BatchWriteResult> {
    const result: BatchWriteResult = { inserted: 0, updated: 0, unchanged: 0, failed: [] };
    const all = updates.map((_, index) => index);
    let existing: number[];
    if (this.updateFirst) {
      const matched = await this.update(updates, all, result);
      if (matched === all.length) return result;
      // Some are new: insert everything; E11000 marks those the update already covered,
      // unless a concurrent writer created more in between (then they are updated again).
      const duplicates = await this.insert(updates, all, result);
      existing = duplicates.length === matched ? [] : duplicates;
    } else {
      existing = await this.insert(updates, all, result);
    }
    for (let attempt = 1; existing.length > 0; attempt++) {
      if (attempt > MAX_ATTEMPTS) {
        throw new MongoUnavailableError(
          `performance_entries kept changing under this batch (${existing.length} entries unsettled)`,
        );
      }
      const matched = await this.update(updates, existing, result);
      // An entry deleted since the insert failed: insert again (and update what exists).
      existing = matched === existing.length ? [] : await this.insert(updates, existing, result);
    }
    this.updateFirst = result.updated + result.unchanged > result.inserted;
    return result;
  }

  /** Inserts the entries as new; returns those that already exist (E11000). */
  private async insert(
    updates: readonly EntryUpdate[],
    indexes: readonly number[],
    result: BatchWriteResult,
  ): Promise<number[]> {
    const now = this.now();
    const documents = indexes.map((index) => {
      const update = updates[index] as EntryUpdate;
      return applyEntryUpdate(null, update, now).document;
    });
    const duplicates: number[] = [];
    try {
      const inserted = await this.entries.insertMany(documents, { ordered: false });
      result.inserted += inserted.insertedCount;
      return duplicates;
    } catch (error) {
      const writeErrors =
        error instanceof MongoBulkWriteError
          ? Array.isArray(error.writeErrors)
            ? error.writeErrors
            : [error.writeErrors]
          : [];
      if (!(error instanceof MongoBulkWriteError) || writeErrors.length === 0) {
        throw asMongoUnavailable(error, "inserting performance_entries");
      }
      const insertedCount = error.result.insertedCount;
      if (insertedCount + writeErrors.length !== documents.length) {
        // The driver stops after a split batch with errors: never count unsent writes as done.
        throw new MongoUnavailableError(
          `insertMany settled ${insertedCount + writeErrors.length} of ${documents.length} entries`,
        );
      }
      result.inserted += insertedCount;
      for (const writeError of writeErrors) {
        const index = indexes[writeError.index];
        if (index === undefined) continue;
        if (writeError.code === DUPLICATE_KEY) duplicates.push(index);
        else
          result.failed.push({
            index,
            code: writeError.code,
            message: writeError.errmsg ?? "insert failed",
          });
      }
      return duplicates;
    }
  }

  /** Updates existing entries in place; returns how many it found. */
  private async update(
    updates: readonly EntryUpdate[],
    indexes: readonly number[],
    result: BatchWriteResult,
  ): Promise<number> {
    let matched = 0;
    for (let start = 0; start < indexes.length; start += ENTRIES_PER_STATEMENT) {
      const chunk = indexes
        .slice(start, start + ENTRIES_PER_STATEMENT)
        .map((index) => updates[index] as EntryUpdate);
      const { filter, pipeline } = buildBatchUpdate(chunk);
      try {
        const outcome = await this.entries.updateMany(filter, pipeline);
        matched += outcome.matchedCount;
        result.updated += outcome.modifiedCount;
        result.unchanged += outcome.matchedCount - outcome.modifiedCount;
      } catch (error) {
        throw asMongoUnavailable(error, "updating performance_entries");
      }
    }
    return matched;
  }
}

/**
 * Dry runs: reads the batch's existing entries (one find) and applies the pure twin of
 * the pipeline. Entries simulated earlier in this object are remembered (most recent
 * `overlayLimit`), so an entry that spans batches counts as a real run would count it.
 */
export class DryRunEntryWriter implements EntryWriter {
  private readonly overlay = new Map<string, Document>();

  constructor(
    private readonly entries: Collection,
    private readonly now: () => Date = () => new Date(),
    private readonly overlayLimit = 20_000,
  ) {}

  async write(updates: readonly EntryUpdate[]): Promise<BatchWriteResult> {
    const result: BatchWriteResult = {
      inserted: 0,
      updated: 0,
      unchanged: 0,
      failed: [],
      fieldChanges: {},
    };
    const fetchKeys = updates.filter((update) => !this.overlay.has(overlayKey(update)));
    const stored = new Map<string, Document>();
    if (fetchKeys.length > 0) {
      let documents: Document[];
      try {
        documents = await this.entries
          .find({ $or: fetchKeys.map((update) => update.key) }, { batchSize: 10_000 })
          .toArray();
      } catch (error) {
        throw asMongoUnavailable(error, "reading performance_entries");
      }
      for (const document of documents) stored.set(documentKey(document), document);
    }
    const now = this.now();
    for (const update of updates) {
      const key = overlayKey(update);
      const existing = this.overlay.get(key) ?? stored.get(key) ?? null;
      const applied = applyEntryUpdate(existing, update, now);
      if (applied.kind === "insert") result.inserted++;
      else if (applied.kind === "update") result.updated++;
      else result.unchanged++;
      for (const field of applied.changedFields) {
        const counts = result.fieldChanges as Record<string, number>;
        counts[field] = (counts[field] ?? 0) + 1;
      }
      this.overlay.delete(key);
      this.overlay.set(key, applied.document);
      if (this.overlay.size > this.overlayLimit) {
        const oldest = this.overlay.keys().next().value;
        if (oldest !== undefined) this.overlay.delete(oldest);
      }
    }
    return result;
  }
}

function overlayKey(update: EntryUpdate): string {
  return JSON.stringify([update.key.orderId, update.key.itemPath, update.key.dateStart.getTime()]);
}

function documentKey(document: Document): string {
  const dateStart = document.dateStart instanceof Date ? document.dateStart.getTime() : null;
  return JSON.stringify([document.orderId, document.itemPath, dateStart]);
}
