import {
  type AnyBulkWriteOperation,
  type BulkWriteResult,
  type Collection,
  type Document,
  MongoBulkWriteError,
  type WriteError,
} from "mongodb";
import { applyEntryUpdate, buildUpdatePipeline, type EntryUpdate } from "./entry-update";
import { MongoUnavailableError } from "./errors";
import { asMongoUnavailable } from "./mongo";

/** What one batch's updates did (or, in a dry run, would do). Counts are per entry per batch. */
export interface BatchWriteResult {
  inserted: number;
  updated: number;
  unchanged: number;
  /**
   * Entries that failed for good (E11000 only after its retries; an outage throws instead):
   * their rows become errors.
   */
  failed: { index: number; code: number | undefined; message: string }[];
  /** Dry runs: how many updates would change each field. */
  fieldChanges?: Record<string, number>;
}

/** Where a batch's entry updates go: MongoDB (real runs) or a simulation (dry runs). */
export interface EntryWriter {
  write(updates: readonly EntryUpdate[]): Promise<BatchWriteResult>;
}

const DUPLICATE_KEY = 11000;
/** Concurrent upserts of one new key race into E11000; a retry finds the entry and updates it. */
const MAX_ATTEMPTS = 3;

/**
 * Real runs: one unordered `bulkWrite` per batch of `updateOne` upserts, each filtered on
 * exactly the entry's key (the unique index) with the entry's own pipeline
 * (`buildUpdatePipeline`). Every upsert is idempotent, so a retry after any failure ends
 * in the state a clean run gives.
 */
export class MongoEntryWriter implements EntryWriter {
  constructor(private readonly entries: Collection) {}

  async write(updates: readonly EntryUpdate[]): Promise<BatchWriteResult> {
    const result: BatchWriteResult = { inserted: 0, updated: 0, unchanged: 0, failed: [] };
    let pending = updates.map((_, index) => index);
    for (let attempt = 1; pending.length > 0; attempt++) {
      const operations: AnyBulkWriteOperation[] = pending.map((index) => {
        const update = updates[index] as EntryUpdate;
        return {
          updateOne: { filter: update.key, update: buildUpdatePipeline(update), upsert: true },
        };
      });
      let outcome: BulkWriteResult;
      let writeErrors: WriteError[] = [];
      try {
        outcome = await this.entries.bulkWrite(operations, { ordered: false });
      } catch (error) {
        // Only per-operation errors are handled here; anything else (an outage, a failed
        // command) fails the object as a unit and Lambda retries it.
        if (error instanceof MongoBulkWriteError) {
          writeErrors = Array.isArray(error.writeErrors) ? error.writeErrors : [error.writeErrors];
        }
        if (!(error instanceof MongoBulkWriteError) || writeErrors.length === 0) {
          throw asMongoUnavailable(error, "writing performance_entries");
        }
        outcome = error.result;
      }
      const settled = outcome.upsertedCount + outcome.matchedCount + writeErrors.length;
      if (settled !== operations.length) {
        // The driver stops after a split batch with errors: never count unsent writes as done.
        throw new MongoUnavailableError(
          `bulkWrite settled ${settled} of ${operations.length} entry upserts`,
        );
      }
      result.inserted += outcome.upsertedCount;
      result.updated += outcome.modifiedCount;
      result.unchanged += outcome.matchedCount - outcome.modifiedCount;
      const retry: number[] = [];
      for (const writeError of writeErrors) {
        const index = pending[writeError.index];
        if (index === undefined) continue;
        if (writeError.code === DUPLICATE_KEY && attempt < MAX_ATTEMPTS) retry.push(index);
        else
          result.failed.push({
            index,
            code: writeError.code,
            message: writeError.errmsg ?? "upsert failed",
          });
      }
      pending = retry;
    }
    return result;
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
