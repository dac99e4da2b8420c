import type { Collection, Document } from "mongodb";
import { CompactMap, digest64 } from "./compact-map";
import {
  applyEntryUpdate,
  applyRemoval,
  bsonEqual,
  buildRemovalPipeline,
  buildUpdatePipeline,
  EMPTY_ENTRY,
  type EntryKey,
  type EntryUpdate,
  insertedFields,
} from "./entry-update";
import { MongoUnavailableError } from "./errors";
import type { RemovalTarget } from "./ledger";
import { asMongoUnavailable } from "./mongo";
import {
  deleteOneEach,
  type StatementError,
  type UpdateOutcome,
  type UpdateStatement,
  updateUnordered,
} from "./write-commands";

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

/** What taking moved contributions out of their old entries did (or would do). */
export interface RemovalResult {
  /** Entries that lost a contribution and keep others. */
  updated: number;
  /** Automated entries left with no contribution, deleted. */
  deleted: number;
}

/** Where a batch's entry updates go: MongoDB (real runs) or a simulation (dry runs). */
export interface EntryWriter {
  write(updates: readonly EntryUpdate[]): Promise<BatchWriteResult>;
  /** Takes moved contributions out of the entries they left. */
  remove(targets: readonly RemovalTarget[]): Promise<RemovalResult>;
  /** A dry run's: the entries it touched so far, for the next invocation of a continued file. */
  memory?(): CompactMap;
}

const DUPLICATE_KEY = 11000;
/** Concurrent upserts of one new key race into E11000; a retry finds the entry and updates it. */
const MAX_ATTEMPTS = 3;
/** Entries this writer wrote recently: they exist, so they go straight to the pipeline. */
const RECENT_KEYS = 25_000;

export interface MongoEntryWriterOptions {
  /**
   * Try each entry first as an upsert that only inserts (`$setOnInsert` of the whole new
   * document), and send the merge pipeline only for entries that turn out to exist.
   * Default true; false sends every entry as the pipeline (the reference behaviour).
   */
  insertFirst?: boolean;
  now?: () => Date;
}

/**
 * Real runs: one unordered `update` command per batch of upserts (write-commands.ts), each filtered on
 * exactly the entry's key (the unique index). Every upsert is idempotent, so a retry
 * after any failure ends in the state a clean run gives.
 *
 * An entry is written in one of two ways:
 * - **insert-first**: `$setOnInsert` of the whole new document (`insertedFields`). It
 *   inserts when no entry has the key and is a no-op when one does; such an entry (and one
 *   that lost an insert race, E11000) is then sent again as the pipeline. Most entries of a
 *   nightly file are new, and a new entry then costs plain values on the wire (about a
 *   quarter of the pipeline's bytes) and a plain insert on the server.
 * - **pipeline** (`buildUpdatePipeline`): merges into whatever is stored, atomically.
 *   Used for entries known to exist (written earlier in this invocation), for retries, and
 *   for whole batches while most entries of the previous batch existed (a re-ingest), so
 *   a re-ingest does not pay two commands per batch.
 */
export class MongoEntryWriter implements EntryWriter {
  private readonly insertFirst: boolean;
  private readonly now: () => Date;
  private readonly recent = new Set<string>();
  /** Entry key → the write of the batch that holds it, while that write is under way. */
  private readonly inFlight = new Map<string, Promise<void>>();
  /** Whether most entries of the last batch already existed. */
  private mostlyExisting = false;

  constructor(
    private readonly entries: Collection,
    options: MongoEntryWriterOptions = {},
  ) {
    this.insertFirst = options.insertFirst ?? true;
    this.now = options.now ?? (() => new Date());
  }

  async write(updates: readonly EntryUpdate[]): Promise<BatchWriteResult> {
    const result: BatchWriteResult = { inserted: 0, updated: 0, unchanged: 0, failed: [] };
    const keys = updates.map(recentKey);
    const tryInsert = this.insertFirst && !this.mostlyExisting;
    const pending = updates.map((_, index) => index);
    const inserting = new Set<number>(
      tryInsert ? pending.filter((index) => !this.recent.has(keys[index] as string)) : [],
    );
    const attempted = inserting.size;
    let existing = 0;
    // Remembered before writing: the next batch is often sent before this one settles,
    // and its entries shared with this batch will exist by the time they arrive (or its
    // pipeline inserts them; either way nothing is lost).
    this.remember(keys);
    // An entry shared with a batch still being written waits for that write: otherwise
    // this batch's pipeline could insert it first, the other batch's insert-only upsert
    // would then match, and the entry would need another command.
    let settle = () => {};
    const settled = new Promise<void>((resolve) => {
      settle = resolve;
    });
    const overlapping = new Set<Promise<void>>();
    for (const key of keys) {
      const other = this.inFlight.get(key);
      if (other && other !== settled) overlapping.add(other);
      this.inFlight.set(key, settled);
    }
    try {
      if (overlapping.size > 0) await Promise.all(overlapping);
      await this.send(updates, pending, inserting, result, (matched) => {
        existing = matched;
      });
    } finally {
      for (const key of keys) if (this.inFlight.get(key) === settled) this.inFlight.delete(key);
      settle();
    }
    if (attempted > 0) {
      this.mostlyExisting = existing * 2 > attempted;
    } else if (!tryInsert && this.insertFirst) {
      // In pipeline mode the upserted count says how many entries were new.
      this.mostlyExisting = result.inserted * 2 < updates.length;
    }
    return result;
  }

  /** The update rounds of one batch: insert-first entries, then the pipeline for the rest. */
  private async send(
    updates: readonly EntryUpdate[],
    firstPending: number[],
    firstInserting: Set<number>,
    result: BatchWriteResult,
    onFirstRound: (insertOnlyMatched: number) => void,
  ): Promise<void> {
    let pending = firstPending;
    let inserting = firstInserting;
    const now = this.now();
    for (let attempt = 1; pending.length > 0; attempt++) {
      const statements: UpdateStatement[] = pending.map((index) => {
        const update = updates[index] as EntryUpdate;
        const change = inserting.has(index)
          ? { $setOnInsert: insertedFields(update, now) }
          : buildUpdatePipeline(update);
        return { q: update.key, u: change, upsert: true };
      });
      let outcome: UpdateOutcome;
      try {
        // Per-statement errors come back in the outcome; anything else (an outage, a
        // failed command) fails the object as a unit and Lambda retries it.
        outcome = await updateUnordered(this.entries, statements);
      } catch (error) {
        throw asMongoUnavailable(error, "writing performance_entries");
      }
      const { writeErrors } = outcome;
      const settled = outcome.upserted.length + outcome.matched + writeErrors.length;
      if (settled !== statements.length) {
        // Never count unsent or unanswered writes as done.
        throw new MongoUnavailableError(
          `update settled ${settled} of ${statements.length} entry upserts`,
        );
      }
      const failedAt = new Map(writeErrors.map((writeError) => [writeError.index, writeError]));
      const insertedAt = new Set(outcome.upserted);
      const retry: number[] = [];
      // An insert-only upsert that matched changed nothing: the entry exists, so it is
      // merged by the pipeline next round (not counted yet, and not an attempt used up).
      let insertOnlyMatched = 0;
      for (const [position, index] of pending.entries()) {
        const writeError = failedAt.get(position);
        if (writeError === undefined) {
          if (inserting.has(index) && !insertedAt.has(position)) {
            insertOnlyMatched++;
            retry.push(index);
          }
          continue;
        }
        if (writeError.code === DUPLICATE_KEY && attempt < MAX_ATTEMPTS) retry.push(index);
        else
          result.failed.push({
            index,
            code: writeError.code,
            message: writeError.errmsg ?? "upsert failed",
          });
      }
      if (attempt === 1) onFirstRound(insertOnlyMatched);
      result.inserted += outcome.upserted.length;
      result.updated += outcome.modified;
      result.unchanged += outcome.matched - outcome.modified - insertOnlyMatched;
      pending = retry;
      inserting = new Set();
    }
  }

  /**
   * Two unordered commands: an `update` with the removal pipelines of the old entries
   * (never an upsert), then a `delete` of each of them that was left with no contribution
   * (one command each: an ordered bulk that alternates updates and deletes costs a
   * command per operation). The filters carry `source: "automated"`, so no other entry is touched.
   */
  async remove(targets: readonly RemovalTarget[]): Promise<RemovalResult> {
    if (targets.length === 0) return { updated: 0, deleted: 0 };
    let modified: number;
    let deleted: number;
    try {
      const updates = await updateUnordered(
        this.entries,
        targets.map((target) => ({ q: target.key, u: buildRemovalPipeline(target.removals) })),
      );
      failOnStatementError(updates.writeErrors);
      const deletes = await deleteOneEach(
        this.entries,
        targets.map((target) => ({ ...target.key, ...EMPTY_ENTRY })),
      );
      failOnStatementError(deletes.writeErrors);
      modified = updates.modified;
      deleted = deletes.deleted;
    } catch (error) {
      throw asMongoUnavailable(error, "taking moved contributions out of performance_entries");
    }
    // A retry may delete an entry an earlier attempt emptied (or another run's removal
    // did): such a delete is no update of this run's.
    return { updated: Math.max(0, modified - deleted), deleted };
  }

  private remember(keys: readonly string[]): void {
    for (const key of keys) {
      this.recent.delete(key);
      this.recent.add(key);
    }
    for (const key of this.recent) {
      if (this.recent.size <= RECENT_KEYS) break;
      this.recent.delete(key);
    }
  }
}

/** A removal or delete the server refused: the batch fails as a unit (its retry is idempotent). */
function failOnStatementError(errors: readonly StatementError[]): void {
  const failed = errors[0];
  if (failed) {
    throw new MongoUnavailableError(
      `MongoDB refused a statement while taking moved contributions out of performance_entries: ${
        failed.errmsg ?? `code ${failed.code}`
      }`,
      { code: failed.code },
    );
  }
}

function recentKey(update: EntryUpdate): string {
  return `${update.key.orderId}\u0000${update.key.itemPath}\u0000${update.key.dateStart.getTime()}`;
}

/**
 * Dry runs: reads the batch's existing entries (one find) and applies the pure twin of
 * the pipeline. Entries simulated earlier in this object are kept in memory (the most
 * recent `overlayLimit`), and every entry this run touched is remembered as a 64-bit
 * digest (`CompactMap`, about 34 bytes per entry): an entry touched again after it left
 * the overlay is never counted as an insert again, and is `unchanged` exactly when each
 * of its contributions is what the stored entry holds or what this run already placed
 * there (`EntryUpdate.sameAsThisRun`). So the counts equal the real run's in any row
 * order and at any size.
 */
export class DryRunEntryWriter implements EntryWriter {
  /** Entry key → the simulated document (null: this run deleted it). */
  private readonly overlay = new Map<string, Document | null>();
  private readonly touched: CompactMap;

  /** `memory`: the entries an earlier invocation of this dry run touched (its `memory()`). */
  constructor(
    private readonly entries: Collection,
    private readonly now: () => Date = () => new Date(),
    private readonly overlayLimit = 20_000,
    memory?: CompactMap,
  ) {
    this.touched = memory ?? new CompactMap();
  }

  /** The entries touched so far (the overlay's documents stay behind, as after an eviction). */
  memory(): CompactMap {
    return this.touched;
  }

  async write(updates: readonly EntryUpdate[]): Promise<BatchWriteResult> {
    const result: BatchWriteResult = {
      inserted: 0,
      updated: 0,
      unchanged: 0,
      failed: [],
      fieldChanges: {},
    };
    const { simulated, stored } = await this.read(updates.map((update) => update.key));
    const now = this.now();
    const counts = result.fieldChanges as Record<string, number>;
    for (const update of updates) {
      const key = overlayKey(update.key);
      const digest = digest64(key);
      if (!simulated.has(key) && this.touched.get(digest)) {
        // Touched earlier, no longer in memory: judged by contributions alone.
        if (changesStored(update, stored.get(key) ?? null)) result.updated++;
        else result.unchanged++;
        continue;
      }
      const existing = simulated.has(key)
        ? (simulated.get(key) ?? null)
        : (stored.get(key) ?? null);
      const applied = applyEntryUpdate(existing, update, now);
      if (applied.kind === "insert") result.inserted++;
      else if (applied.kind === "update") result.updated++;
      else result.unchanged++;
      for (const field of applied.changedFields) counts[field] = (counts[field] ?? 0) + 1;
      this.keep(key, digest, applied.document);
    }
    return result;
  }

  async remove(targets: readonly RemovalTarget[]): Promise<RemovalResult> {
    const result: RemovalResult = { updated: 0, deleted: 0 };
    if (targets.length === 0) return result;
    const { simulated, stored } = await this.read(targets.map((target) => target.key));
    const now = this.now();
    for (const target of targets) {
      const key = overlayKey(target.key);
      const existing = simulated.has(key)
        ? (simulated.get(key) ?? null)
        : (stored.get(key) ?? null);
      if (existing === null) continue;
      const applied = applyRemoval(existing, target.removals, now);
      if (applied.kind === "unchanged") continue;
      if (applied.kind === "delete") result.deleted++;
      else result.updated++;
      this.keep(key, digest64(key), applied.document);
    }
    return result;
  }

  /**
   * The batch's entries as this run left them (`simulated`, taken before the batch evicts
   * anything from the overlay) and, for the others, as stored (one find), by overlay key.
   */
  private async read(keys: readonly EntryKey[]): Promise<{
    simulated: Map<string, Document | null>;
    stored: Map<string, Document>;
  }> {
    const simulated = new Map<string, Document | null>();
    const stored = new Map<string, Document>();
    const fetch: EntryKey[] = [];
    for (const key of keys) {
      const id = overlayKey(key);
      if (this.overlay.has(id)) simulated.set(id, this.overlay.get(id) ?? null);
      else fetch.push(key);
    }
    if (fetch.length === 0) return { simulated, stored };
    let documents: Document[];
    try {
      documents = await this.entries.find({ $or: fetch }, { batchSize: 10_000 }).toArray();
    } catch (error) {
      throw asMongoUnavailable(error, "reading performance_entries");
    }
    for (const document of documents) stored.set(documentKey(document), document);
    return { simulated, stored };
  }

  private keep(key: string, digest: [number, number], document: Document | null): void {
    this.touched.set(digest, [1]);
    this.overlay.delete(key);
    this.overlay.set(key, document);
    if (this.overlay.size > this.overlayLimit) {
      const oldest = this.overlay.keys().next().value;
      if (oldest !== undefined) this.overlay.delete(oldest);
    }
  }
}

/** Whether an update changes an entry this run touched before, judged by its contributions. */
function changesStored(update: EntryUpdate, stored: Document | null): boolean {
  const held: Document[] = Array.isArray(stored?.contributions) ? stored.contributions : [];
  return update.contributions.some((contribution) => {
    if (update.sameAsThisRun?.has(contribution.key)) return false;
    const current = held.find((item) => item.key === contribution.key);
    return current === undefined || !bsonEqual(current, contribution);
  });
}

function overlayKey(key: EntryKey): string {
  return JSON.stringify([key.orderId, key.itemPath, key.dateStart.getTime()]);
}

function documentKey(document: Document): string {
  const dateStart = document.dateStart instanceof Date ? document.dateStart.getTime() : null;
  return JSON.stringify([document.orderId, document.itemPath, dateStart]);
}
