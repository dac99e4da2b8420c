import { createHash, randomBytes } from "node:crypto";
import type { Collection, Document, Filter } from "mongodb";
import { startOfDay, toIsoDate } from "../shared/dates";
import { CompactMap, digest64 } from "./compact-map";
import type { PlacedRow, ResolvedRow } from "./entry-batch";
import { contributionKey, type EntryKey, type Removal, SOURCE } from "./entry-update";
import { MongoUnavailableError } from "./errors";
import { asMongoUnavailable } from "./mongo";
import { insertUnordered, type UpdateStatement, updateUnordered } from "./write-commands";

export const FACTS_COLLECTION = "tracking_sync_facts";
export const RUNS_COLLECTION = "tracking_sync_runs";

/** Where a fact's contribution lives: an automated entry of the fact's day. */
export interface EntryRef {
  orderId: string;
  itemPath: string;
}

export interface FactNumbers {
  impressions: number;
  clicks: number;
  viewableImpressions: number;
  uniqueIps: number;
}

/**
 * `tracking_sync_facts`: one document per row identity (creative id, publication code in
 * lower case, channel, ad size) and day. `_id` is the identity's contribution key and the
 * day (`factIdentity` reads it back), so the collection's own `_id` index is the unique
 * index on identity and day. The identity is not repeated in fields of its own: a fact
 * is written for every row, and four more fields per row cost serialization CPU, bytes
 * sent and storage (BENCHMARKS.md) for what `_id` already says.
 */
export interface FactDocument extends EntryRef, FactNumbers {
  _id: string;
  day: Date;
  /** Bumped by every change of the value or of where it lives: the compare-and-set token. */
  rev: number;
  // `orderId`, `itemPath` (EntryRef): where the identity's contribution lives now;
  // `impressions`, `clicks`, `viewableImpressions`, `uniqueIps` (FactNumbers): its value.
  // Top-level fields, as in a contribution: each nested document costs the driver's
  // serializer a frame, a key list and a path-set entry per row (BENCHMARKS.md).
  itemName: string;
  /** Provenance of the value: the run and line that wrote it. */
  run: string;
  line: number;
  /**
   * The value this one replaced: what an undo restores. Absent for the first value (null
   * on facts written before it was left out).
   */
  replaced?: FactValue | null;
  /**
   * Entries the contribution moved away from and may still sit in until the move
   * settles. Absent (or empty) when no move is pending: a fact is written for every row,
   * and an empty array costs as much to send as a field with a value.
   */
  stale?: readonly EntryRef[];
  /**
   * The last run that read this identity, on which line, and the first line that run
   * read it on: duplicate rows across batches and invocations, also when a retry starts
   * between two of them (`first` is absent on facts written before it was kept). Absent
   * when it would only repeat the value's `run` and `line` (`seenOf`), as on a first
   * ingest's every fact.
   */
  seen?: FactSeen;
  /**
   * The batch that last placed the fact (a token of one ledger and batch): settling
   * reads back only the facts someone else placed since. Absent on upgraded facts.
   */
  placedBy?: string;
  updatedAt: Date;
}

export interface FactSeen {
  run: string;
  line: number;
  first?: number;
}

/** A stored fact's `seen`: when absent, the run and line that wrote its value, and only them. */
export function seenOf(fact: FactDocument): FactSeen {
  return fact.seen ?? { run: fact.run, line: fact.line, first: fact.line };
}

/**
 * The fields of a fact as the ledger first wrote it: the identity in fields of its own
 * (until `d8694eb`), the entry and the numbers (also in `replaced`) nested (until `c24e47d`).
 * `readFact` lifts them to today's shape; a write of such a fact unsets them.
 */
const LEGACY_FIELDS = {
  creativeId: "",
  publicationCode: "",
  channel: "",
  adSize: "",
  entry: "",
  numbers: "",
} as const;

interface LegacyValue {
  entry?: EntryRef;
  numbers?: FactNumbers;
}

/** A stored fact in today's shape, whichever shape it was written in (see LEGACY_FIELDS). */
export function readFact(document: FactDocument): FactDocument {
  const legacy = document as FactDocument & LegacyValue;
  if (legacy.entry === undefined || document.orderId !== undefined) return document;
  const replaced = legacy.replaced as (FactValue & LegacyValue) | null | undefined;
  return {
    ...document,
    ...legacy.entry,
    ...legacy.numbers,
    replaced:
      replaced?.entry !== undefined
        ? { ...replaced, ...replaced.entry, ...replaced.numbers }
        : replaced,
  };
}

/** Whether a stored fact still holds fields of the first shape (they are unset when it is written). */
function isLegacy(stored: FactDocument): boolean {
  return (stored as FactDocument & LegacyValue).entry !== undefined;
}

/** Where a fact's value lives and its numbers, as top-level fields. */
function placeAndNumbers(fact: FactDocument): EntryRef & FactNumbers {
  return {
    orderId: fact.orderId,
    itemPath: fact.itemPath,
    impressions: fact.impressions,
    clicks: fact.clicks,
    viewableImpressions: fact.viewableImpressions,
    uniqueIps: fact.uniqueIps,
  };
}

/** Whether `seen` says no more than a fact's value's run and line (it is then not stored). */
function impliedSeen(seen: FactSeen, run: string, line: number): boolean {
  return seen.run === run && seen.line === line && seen.first === line;
}

/** A value a fact held: where it lived, its numbers, and the run and line that wrote it. */
export interface FactValue extends EntryRef, FactNumbers {
  run: string;
  line: number;
}

/** The fact id of a row: its identity's contribution key and its day. */
export function factId(key: string, reportDate: string): string {
  return `${key}|${reportDate}`;
}

/** A row identity and day, as a fact's `_id` names them. */
export interface FactIdentity {
  creativeId: string;
  publicationCode: string;
  channel: string | null;
  adSize: string | null;
  reportDate: string;
}

/** Reads a fact id back into its identity and day (the inverse of `factId`). */
export function factIdentity(id: string): FactIdentity {
  const bar = id.lastIndexOf("|");
  let identity: unknown;
  try {
    identity = bar > 0 ? JSON.parse(id.slice(0, bar)) : undefined;
  } catch {
    identity = undefined;
  }
  const text = (value: unknown) => typeof value === "string";
  if (
    !Array.isArray(identity) ||
    identity.length !== 4 ||
    !text(identity[0]) ||
    !text(identity[1]) ||
    !identity.slice(2).every((value) => value === null || text(value))
  ) {
    throw new Error(`not a fact id: ${JSON.stringify(id)}`);
  }
  const [creativeId, publicationCode, channel, adSize] = identity as [
    string,
    string,
    string | null,
    string | null,
  ];
  return { creativeId, publicationCode, channel, adSize, reportDate: id.slice(bar + 1) };
}

/**
 * A file run's id in `tracking_sync_runs`, from the upload it reads: the object version
 * (bucket, key, versionId, ETag) and the upload's event `sequencer`. A retry or a
 * redelivery of the same event is the same run (so a retry leaves what a clean run
 * leaves); dropping the same bytes again is a new upload, so a new run.
 */
export function runIdOf(source: {
  bucket: string;
  key: string;
  versionId?: string | undefined;
  eTag: string;
  sequencer?: string | undefined;
}): string {
  return createHash("sha256")
    .update(
      [source.bucket, source.key, source.versionId ?? "", source.eTag, source.sequencer ?? ""].join(
        "\u0000",
      ),
    )
    .digest("base64url")
    .slice(0, 22);
}

/** Contributions to take out of one entry (a move's old entry). */
export interface RemovalTarget {
  key: EntryKey;
  removals: Removal[];
}

/** What the ledger decided for one batch's resolved rows. */
export interface LedgerBatch {
  /** The rows to write to their entries, one per identity and day, with provenance. */
  placed: PlacedRow[];
  /** Rows whose value a later row of this file replaces (counted synced, not written). */
  unplaced: ResolvedRow[];
  /** `duplicate-row-superseded` warnings: rows replaced by a later row of the same file. */
  superseded: number;
  /** Row identities whose entry changed (moves) in this batch. */
  moved: number;
  /** Old entries to take moved contributions out of. */
  removals: RemovalTarget[];
}

/**
 * The facts ledger of one file run. `place` runs batch after batch in file order (a
 * later batch's facts are read only after an earlier batch's are written); `settle`
 * runs after the batch's entries are written.
 */
export interface FactLedger {
  place(rows: readonly ResolvedRow[]): Promise<LedgerBatch>;
  /**
   * After the batch's entries are written: finds the facts another writer changed in the
   * meantime and returns the contributions this batch must take back out; clears the
   * settled moves' stale entries.
   */
  settle(batch: LedgerBatch): Promise<RemovalTarget[]>;
  /**
   * The entry updates of `rows` failed for good: their moves stay pending (the old entry
   * keeps the old contribution, the fact keeps it stale), so reprocessing the rows
   * completes them. Call before the batch's removals are sent.
   */
  writeFailed(batch: LedgerBatch, rows: readonly ResolvedRow[]): void;
  /** A dry run's: what it would have placed so far, for the next invocation of a continued file. */
  memory?(): CompactMap;
}

/** Takes the failed rows' identities out of the batch's removals (see `FactLedger.writeFailed`). */
export function keepMovesPending(batch: LedgerBatch, rows: readonly ResolvedRow[]): Set<string> {
  const ids = new Set(
    rows.map(({ row }) =>
      factId(
        contributionKey(row.creativeId, row.publicationCode, row.channel, row.adSize),
        row.reportDate,
      ),
    ),
  );
  if (ids.size === 0) return ids;
  batch.removals = batch.removals
    .map((target) => ({
      key: target.key,
      removals: target.removals.filter(
        (removal) => !ids.has(factId(removal.key, toIsoDate(target.key.dateStart))),
      ),
    }))
    .filter((target) => target.removals.length > 0);
  return ids;
}

/** What placing a row reads of its fact (the identity's own fields are in `_id`). */
const READ_FIELDS = {
  rev: 1,
  orderId: 1,
  itemPath: 1,
  itemName: 1,
  impressions: 1,
  clicks: 1,
  viewableImpressions: 1,
  uniqueIps: 1,
  run: 1,
  line: 1,
  stale: 1,
  seen: 1,
  "replaced.run": 1,
  "replaced.orderId": 1,
  "replaced.itemPath": 1,
  // A fact of the first shape (readFact).
  entry: 1,
  numbers: 1,
  "replaced.entry": 1,
} as const;
/** What settling reads back: whose the fact is now. */
const SETTLE_FIELDS = { rev: 1, orderId: 1, itemPath: 1, entry: 1 } as const;

const NO_FACTS: ReadonlyMap<string, FactDocument> = new Map();
/** A batch reads its facts first when more than 1 in this many of the last batch's existed. */
const EXISTING_FOR_READ_FIRST = 20;

/** Compare-and-set rounds before a batch gives up (contention on one fact is brief). */
const MAX_PLACE_ATTEMPTS = 5;
const DUPLICATE_KEY = 11000;

export interface Candidate {
  resolved: ResolvedRow;
  id: string;
  key: string;
  /**
   * Where the row resolves: its target itself (only `orderId` and `itemPath` are read;
   * the fact document gets a copy of just those). The row's numbers are read from the
   * row: a batch's objects live for several round trips, so each one per row is
   * promoted and collected as old generation (BENCHMARKS.md).
   */
  entry: EntryRef;
  /** Earlier rows of the batch with the same identity and day (superseded by this one). */
  earlierRows: readonly ResolvedRow[];
}

const NO_ROWS: readonly ResolvedRow[] = Object.freeze([]);
const NO_REFS: readonly EntryRef[] = Object.freeze([]);

/** The batch's rows, last row per identity and day (a later row replaces an earlier one). */
export function candidatesOf(rows: readonly ResolvedRow[]): {
  candidates: Candidate[];
  superseded: number;
} {
  const byId = new Map<string, Candidate>();
  let superseded = 0;
  for (const resolved of rows) {
    const { row, target } = resolved;
    const key = contributionKey(row.creativeId, row.publicationCode, row.channel, row.adSize);
    const id = factId(key, row.reportDate);
    const earlier = byId.get(id);
    if (earlier) {
      superseded++;
      byId.delete(id);
    }
    byId.set(id, {
      resolved,
      id,
      key,
      entry: target,
      earlierRows: earlier ? [...earlier.earlierRows, earlier.resolved] : NO_ROWS,
    });
  }
  return { candidates: [...byId.values()], superseded };
}

function sameEntry(a: EntryRef | undefined, b: EntryRef | undefined): boolean {
  return a !== undefined && b !== undefined && a.orderId === b.orderId && a.itemPath === b.itemPath;
}

/** Just the entry a fact (or a value it held) names: for a list of stale entries. */
function refOf(where: EntryRef): EntryRef {
  return { orderId: where.orderId, itemPath: where.itemPath };
}

function sameNumbers(a: FactNumbers, b: FactNumbers): boolean {
  return (
    a.impressions === b.impressions &&
    a.clicks === b.clicks &&
    a.viewableImpressions === b.viewableImpressions &&
    a.uniqueIps === b.uniqueIps
  );
}

/** What one candidate does to its fact, given the stored one. */
export interface Decision {
  candidate: Candidate;
  /** A later row of this run is already applied: nothing to write. */
  supersededByLater: boolean;
  /**
   * The batch's first row of this identity and day is not the run's first: one warning
   * more than the batch's own duplicates (`candidatesOf`).
   */
  earlierInRun: boolean;
  /** What the fact's `seen` becomes. */
  seen: FactSeen;
  /** The value and entry are what the fact holds: its provenance and revision stay. */
  same: boolean;
  rev: number;
  provenance: { rev: number; run: string; line: number };
  stale: readonly EntryRef[];
  moved: boolean;
  /** Dry runs: the fact stays as this run already placed it. */
  sameAsThisRun?: boolean;
}

export function decide(
  candidate: Candidate,
  stored: FactDocument | undefined,
  run: string,
): Decision {
  const { row, target } = candidate.resolved;
  const storedSeen = stored === undefined ? undefined : seenOf(stored);
  const seenHere = storedSeen?.run === run;
  const supersededByLater = seenHere && (storedSeen?.line ?? 0) > row.line;
  // The batch's rows of this identity are the candidate and its earlier rows (file order).
  const batchFirst = candidate.earlierRows[0]?.row.line ?? row.line;
  const storedFirst =
    seenHere && typeof storedSeen?.first === "number" ? storedSeen.first : undefined;
  // Whether the run met this identity before the batch: by the first line it met it on
  // (so a retry that starts between two rows of a dead attempt counts as a clean run);
  // on a fact from before `first` was kept, by its last line, as before.
  const earlierInRun =
    seenHere &&
    (storedFirst !== undefined ? storedFirst < batchFirst : storedSeen?.line !== row.line);
  const first =
    !seenHere || storedFirst !== undefined
      ? Math.min(storedFirst ?? batchFirst, batchFirst)
      : undefined;
  // One object per row, and no `first: undefined` (the driver would store it as null).
  const seen: FactSeen = supersededByLater
    ? first !== undefined && first !== storedFirst
      ? { ...(storedSeen as FactSeen), first }
      : (storedSeen as FactSeen)
    : first !== undefined
      ? { run, line: row.line, first }
      : { run, line: row.line };
  const same =
    stored !== undefined &&
    sameEntry(stored, candidate.entry) &&
    sameNumbers(stored, candidate.resolved.row) &&
    stored.itemName === target.itemName;
  // A new revision when another run's value is replaced or the identity moves: a value
  // this run already wrote keeps its revision, so the revisions (and the entries) come
  // out the same however the file was cut into batches and invocations.
  const bump =
    !same && !supersededByLater && (stored?.run !== run || !sameEntry(stored, candidate.entry));
  const rev = bump ? (stored?.rev ?? 0) + 1 : (stored?.rev ?? 0);
  // A later row of this run placed the fact already: where it lives stays as that row left it.
  let stale: readonly EntryRef[] = NO_REFS;
  if (stored?.stale && stored.stale.length > 0) {
    stale = supersededByLater
      ? [...stored.stale]
      : stored.stale.filter((ref) => !sameEntry(ref, candidate.entry));
  }
  const entryChanged =
    !supersededByLater && stored !== undefined && !sameEntry(stored, candidate.entry);
  if (entryChanged && stored && !stale.some((ref) => sameEntry(ref, stored)))
    stale = [...stale, refOf(stored)];
  // Counted as a move once per run: against the value before this run. A retry meets the
  // very row its dead attempt placed (same run, same line): the move is the attempt's
  // from the value it replaced, and the retry counts it again as a clean run would.
  const retriedRow = seenHere && stored?.run === run && storedSeen?.line === row.line;
  const moved = retriedRow
    ? !supersededByLater &&
      stored.replaced !== null &&
      stored.replaced !== undefined &&
      !sameEntry(stored.replaced, candidate.entry)
    : entryChanged;
  // The value before the stored one lived elsewhere: the run that wrote it may have died
  // before settling, with its entry write landing after the move had taken the
  // contribution out of there. That entry is stale too, when this run is that run's retry
  // (another run replaced its value) or replaces the value itself: only the entry the
  // fact names may hold the identity, and the removal takes out only contributions
  // older than the fact's revision (a copy that is not there is a no-op).
  const late =
    stored?.run !== run && (stored?.replaced?.run === run || (!same && !supersededByLater))
      ? (stored?.replaced ?? undefined)
      : undefined;
  if (
    late &&
    !supersededByLater &&
    !sameEntry(late, candidate.entry) &&
    !stale.some((ref) => sameEntry(ref, late))
  ) {
    stale = [...stale, refOf(late)];
  }
  return {
    candidate,
    supersededByLater,
    earlierInRun,
    seen,
    same,
    rev,
    provenance:
      same && stored ? { rev, run: stored.run, line: stored.line } : { rev, run, line: row.line },
    stale,
    moved,
  };
}

/** Midnight of each report date, one Date per date (a file holds a handful of dates). */
const midnights = new Map<string, Date>();

/** The fact's `day`: never mutated, so the facts of one date share one Date. */
function dayOf(reportDate: string): Date {
  let day = midnights.get(reportDate);
  if (day === undefined) {
    if (midnights.size >= 1_000) midnights.clear();
    day = startOfDay(reportDate);
    midnights.set(reportDate, day);
  }
  return day;
}

/** The fact as a decision leaves it (`placedBy`: the placing batch's token, when written). */
export function nextFact(
  decision: Decision,
  stored: FactDocument | undefined,
  run: string,
  now: Date,
  placedBy?: string,
): FactDocument {
  const { candidate } = decision;
  const { row, target } = candidate.resolved;
  const { seen } = decision;
  if (stored && (decision.same || decision.supersededByLater)) {
    const { stale: _stale, seen: _seen, ...unchanged } = stored;
    const kept: FactDocument = unchanged;
    if (!impliedSeen(seen, stored.run, stored.line)) kept.seen = seen;
    if (decision.stale.length > 0) kept.stale = decision.stale;
    if (placedBy !== undefined) kept.placedBy = placedBy;
    return kept;
  }
  // One literal with every field that is always there (placedBy too): a field added
  // later would give each fact a second property store.
  const fact: FactDocument = {
    _id: candidate.id,
    day: dayOf(row.reportDate),
    rev: decision.rev,
    orderId: candidate.entry.orderId,
    itemPath: candidate.entry.itemPath,
    itemName: target.itemName,
    impressions: row.impressions,
    clicks: row.clicks,
    viewableImpressions: row.viewableImpressions,
    uniqueIps: row.uniqueIps,
    run,
    line: row.line,
    // Undefined only for the in-memory ledger of the tests, which never serializes a fact.
    placedBy,
    updatedAt: now,
  };
  if (!impliedSeen(seen, run, row.line)) fact.seen = seen;
  const replaced: FactValue | null | undefined =
    stored?.run === run
      ? stored.replaced
      : stored
        ? { ...placeAndNumbers(stored), run: stored.run, line: stored.line }
        : undefined;
  if (replaced) fact.replaced = replaced;
  if (decision.stale.length > 0) fact.stale = decision.stale;
  return fact;
}

/**
 * One batch's fact writes, each a compare-and-set: a new fact is an insert, which
 * collides on `_id` (E11000) when another run inserted it first; a stored one is an
 * upsert filtered on `_id` and the stored `rev` (`factUpdate`), which collides the same
 * way when another writer changed the revision in between. A batch of new and stored
 * facts is two commands, one of each kind; a first ingest is inserts only, a re-ingest
 * updates only. `insertAt` and `updateAt` give each write's index in the decisions.
 */
interface FactWrites {
  inserts: FactDocument[];
  insertAt: number[];
  updates: UpdateStatement[];
  updateAt: number[];
}

/** The update statement of a decision on a stored fact (see FactWrites). */
function factUpdate(
  decision: Decision,
  stored: FactDocument,
  run: string,
  now: Date,
  placedBy: string,
): UpdateStatement {
  const q = { _id: decision.candidate.id, rev: stored.rev };
  // What the fact no longer needs goes, so it ends as a clean run leaves it: the stale
  // entries once no move is pending (an empty list is no list), `seen` once it says no
  // more than the value's run and line.
  const unset: Document = isLegacy(stored) ? { ...LEGACY_FIELDS } : {};
  if (decision.stale.length === 0 && (stored.stale?.length ?? 0) > 0) unset.stale = "";
  if (decision.same || decision.supersededByLater) {
    // Only who saw it last (and what is still stale) changes: a small update.
    // A first-shape fact's nested value goes (LEGACY_FIELDS): it is kept at the top level.
    const set: Document = isLegacy(stored)
      ? { ...placeAndNumbers(stored), placedBy }
      : { placedBy };
    if (!impliedSeen(decision.seen, stored.run, stored.line)) set.seen = decision.seen;
    else if (stored.seen !== undefined) unset.seen = "";
    if (decision.stale.length > 0) set.stale = decision.stale;
    return { q, u: withUnset({ $set: set }, unset), upsert: true };
  }
  const { _id, ...fields } = nextFact(decision, stored, run, now, placedBy);
  if (fields.seen === undefined && stored.seen !== undefined) unset.seen = "";
  // A value this run already changed keeps what it replaced: the value before this run
  // (what an undo of this file restores), not this run's own earlier row.
  if (stored.run === run) delete (fields as Partial<FactDocument>).replaced;
  return { q, u: withUnset({ $set: fields }, unset), upsert: true };
}

function withUnset(update: Document, unset: Document): Document {
  return Object.keys(unset).length > 0 ? { ...update, $unset: unset } : update;
}

/** Entries to take each identity out of: its stale entries, grouped per entry and day. */
function removalsOf(
  items: readonly { key: string; reportDate: string; rev: number; from: readonly EntryRef[] }[],
): RemovalTarget[] {
  const targets = new Map<string, RemovalTarget>();
  for (const item of items) {
    for (const ref of item.from) {
      const id = JSON.stringify([ref.orderId, ref.itemPath, item.reportDate]);
      let target = targets.get(id);
      if (!target) {
        target = {
          key: {
            orderId: ref.orderId,
            itemPath: ref.itemPath,
            dateStart: startOfDay(item.reportDate),
            source: SOURCE,
          },
          removals: [],
        };
        targets.set(id, target);
      }
      target.removals.push({ key: item.key, rev: item.rev });
    }
  }
  return [...targets.values()];
}

export function ledgerBatch(decisions: readonly Decision[], superseded: number): LedgerBatch {
  const placed: PlacedRow[] = [];
  const unplaced: ResolvedRow[] = [];
  let warnings = superseded;
  let moved = 0;
  const stale: { key: string; reportDate: string; rev: number; from: readonly EntryRef[] }[] = [];
  for (const decision of decisions) {
    const { candidate } = decision;
    for (const earlier of candidate.earlierRows) unplaced.push(earlier);
    if (decision.earlierInRun) warnings++;
    if (decision.supersededByLater) {
      unplaced.push(candidate.resolved);
      continue;
    }
    if (decision.moved) moved++;
    // The caller's row itself, given its provenance (a copy per row is garbage to collect).
    const row = candidate.resolved as PlacedRow;
    row.provenance = decision.provenance;
    row.key = candidate.key;
    if (decision.sameAsThisRun) row.sameAsThisRun = true;
    placed.push(row);
    if (decision.stale.length > 0) {
      stale.push({
        key: candidate.key,
        reportDate: candidate.resolved.row.reportDate,
        rev: decision.rev,
        from: decision.stale,
      });
    }
  }
  return { placed, unplaced, superseded: warnings, moved, removals: removalsOf(stale) };
}

/** A placed batch, until it settles: its token and its facts' decisions. */
interface PlacedFacts {
  placedBy: string;
  decisions: Decision[];
  /** Facts whose entry update failed: their moves stay pending, nothing to settle. */
  failed: Set<string>;
}

/**
 * The ledger of a real run, in MongoDB. Per batch: one `find` of the batch's facts, an
 * unordered `insert` of the new facts and `update` of the stored ones (write-commands.ts)
 * that sets each fact by compare-and-set on its revision (an
 * insert, or an upsert filtered on `_id` and the stored `rev`: when another writer
 * changed the fact in between, the upsert collides on `_id` with E11000 and the row is
 * placed again from the fact as it is now). After the entries are written, one `find`
 * tells which facts moved on since: a contribution this batch wrote to an entry the
 * fact no longer points to is taken back out (the newer writer's revision is higher, so
 * nothing of its own is touched). Moves settle by clearing the fact's stale entries.
 */
export class MongoFactLedger implements FactLedger {
  private previous: Promise<unknown> = Promise.resolve();
  /** Per batch: its token (`placedBy`) and the facts it placed, until it settles. */
  private readonly written = new WeakMap<LedgerBatch, PlacedFacts>();
  /** This ledger's part of the batch tokens: unique per ledger (so per invocation). */
  private readonly nonce = randomBytes(9).toString("base64url");
  private batches = 0;
  /** The last batch's facts were (nearly) all new: the next one inserts first. */
  private expectNew = false;

  constructor(
    private readonly facts: Collection<FactDocument>,
    private readonly run: string,
    private readonly now: () => Date = () => new Date(),
  ) {}

  place(rows: readonly ResolvedRow[]): Promise<LedgerBatch> {
    const placing = this.previous.then(() => this.placeNow(rows));
    this.previous = placing.catch(() => {});
    return placing;
  }

  private async placeNow(rows: readonly ResolvedRow[]): Promise<LedgerBatch> {
    const { candidates, superseded } = candidatesOf(rows);
    const placedBy = `${this.nonce}.${++this.batches}`;
    // The decisions in the candidates' order; a lost compare-and-set is decided again.
    const decided: Decision[] = new Array(candidates.length);
    const positions = new Map<Candidate, number>();
    let pending = candidates;
    // Insert-first (no read) while the file's facts have turned out new: a first ingest's
    // batch is then one command. A fact that exists after all collides on `_id` and is
    // read and placed in the next round, as a lost compare-and-set is.
    let readFirst = !this.expectNew;
    for (let attempt = readFirst ? 1 : 0; pending.length > 0; attempt++) {
      if (attempt > MAX_PLACE_ATTEMPTS) {
        throw new MongoUnavailableError(
          `${pending.length} ledger facts kept changing under concurrent runs; the file is retried`,
        );
      }
      const stored = readFirst
        ? await this.read(pending.map((candidate) => candidate.id))
        : NO_FACTS;
      const now = this.now();
      const decisions: Decision[] = new Array(pending.length);
      const writes: FactWrites = { inserts: [], insertAt: [], updates: [], updateAt: [] };
      pending.forEach((candidate, index) => {
        const was = stored.get(candidate.id);
        const decision = decide(candidate, was, this.run);
        decisions[index] = decision;
        if (was === undefined) {
          writes.inserts.push(nextFact(decision, was, this.run, now, placedBy));
          writes.insertAt.push(index);
        } else {
          writes.updates.push(factUpdate(decision, was, this.run, now, placedBy));
          writes.updateAt.push(index);
        }
      });
      const conflicts = await this.write(writes);
      if (pending === candidates) {
        // How many of this batch's facts existed already: the next batch reads first if many did.
        const existing = readFirst ? stored.size : conflicts.size;
        this.expectNew = existing * EXISTING_FOR_READ_FIRST <= candidates.length;
      }
      readFirst = true;
      const retry: Candidate[] = [];
      const first = pending === candidates;
      decisions.forEach((decision, index) => {
        const position = first ? index : (positions.get(decision.candidate) as number);
        if (!conflicts.has(index)) {
          decided[position] = decision;
          return;
        }
        retry.push(decision.candidate);
        positions.set(decision.candidate, position);
      });
      pending = retry;
    }
    // In file order of the candidates (the batch's last row per identity and day).
    const decisions = decided;
    const batch = ledgerBatch(decisions, superseded);
    this.written.set(batch, {
      placedBy,
      decisions: decisions.filter((decision) => !decision.supersededByLater),
      failed: new Set(),
    });
    return batch;
  }

  writeFailed(batch: LedgerBatch, rows: readonly ResolvedRow[]): void {
    const ids = keepMovesPending(batch, rows);
    const written = this.written.get(batch);
    for (const id of ids) written?.failed.add(id);
  }

  async settle(batch: LedgerBatch): Promise<RemovalTarget[]> {
    const written = this.written.get(batch);
    if (!written) return [];
    const { placedBy, failed } = written;
    const mine =
      failed.size > 0
        ? written.decisions.filter((decision) => !failed.has(decision.candidate.id))
        : written.decisions;
    if (mine.length === 0) return [];
    // Only the facts another writer (another run, invocation or batch) placed since this
    // batch did: in a run nobody races, the answer is empty.
    const changed = await this.read(
      mine.map((decision) => decision.candidate.id),
      SETTLE_FIELDS,
      placedBy,
    );
    const takeBack: { key: string; reportDate: string; rev: number; from: EntryRef[] }[] = [];
    const clear: UpdateStatement[] = [];
    for (const decision of mine) {
      const { id, entry, key } = decision.candidate;
      const now = changed.get(id);
      if (now && now.rev !== decision.rev) {
        // A newer writer owns the fact: what this batch wrote where it no longer lives goes.
        if (!sameEntry(now, entry)) {
          takeBack.push({
            key,
            reportDate: decision.candidate.resolved.row.reportDate,
            rev: now.rev,
            from: [entry],
          });
        }
      } else if (decision.stale.length > 0) {
        clear.push({ q: { _id: id, rev: decision.rev }, u: { $unset: { stale: "" } } });
      }
    }
    if (clear.length > 0) {
      try {
        // A refused statement fails the batch, as bulkWrite's error did (the retry is idempotent).
        const refused = (await updateUnordered(this.facts, clear)).writeErrors[0];
        if (refused) {
          throw new MongoUnavailableError(
            `clearing settled moves in ${FACTS_COLLECTION}: ${refused.errmsg ?? `code ${refused.code}`}`,
          );
        }
      } catch (error) {
        throw asMongoUnavailable(error, `writing ${FACTS_COLLECTION}`);
      }
    }
    this.written.delete(batch);
    return removalsOf(takeBack);
  }

  /**
   * The stored facts of `ids`, with only what placing needs (`READ_FIELDS`), or settling
   * (`SETTLE_FIELDS`); with `notPlacedBy`, only those another batch placed last.
   */
  private async read(
    ids: string[],
    projection: Document = READ_FIELDS,
    notPlacedBy?: string,
  ): Promise<Map<string, FactDocument>> {
    const filter: Filter<FactDocument> = { _id: { $in: ids } };
    if (notPlacedBy !== undefined) filter.placedBy = { $ne: notPlacedBy };
    try {
      const documents = await this.facts
        .find(filter, { batchSize: ids.length + 1, projection })
        .toArray();
      return new Map(documents.map((document) => [document._id, readFact(document)]));
    } catch (error) {
      throw asMongoUnavailable(error, `reading ${FACTS_COLLECTION}`);
    }
  }

  /** The indexes (in the decisions) of the writes that lost a compare-and-set. */
  private async write({ inserts, insertAt, updates, updateAt }: FactWrites): Promise<Set<number>> {
    const conflicts = new Set<number>();
    const lost = (at: readonly number[], errors: readonly { index: number; code: number }[]) => {
      for (const error of errors) {
        if (error.code !== DUPLICATE_KEY) {
          throw new MongoUnavailableError(`writing ${FACTS_COLLECTION}: ${JSON.stringify(error)}`);
        }
        conflicts.add(at[error.index] as number);
      }
    };
    try {
      if (inserts.length > 0)
        lost(insertAt, (await insertUnordered(this.facts, inserts)).writeErrors);
      if (updates.length > 0)
        lost(updateAt, (await updateUnordered(this.facts, updates)).writeErrors);
    } catch (error) {
      throw asMongoUnavailable(error, `writing ${FACTS_COLLECTION}`);
    }
    return conflicts;
  }
}

/**
 * The ledger of a dry run: reads the stored facts, writes nothing. What this run would
 * have written is remembered compactly (`CompactMap`: a 64-bit digest of the fact id →
 * the value's digest, the line last seen, the provenance line and the revision), so
 * duplicates and unchanged values are judged across the whole file as a real run judges
 * them, at about 34 bytes per row identity (34 MB per million).
 */
export class DryRunFactLedger implements FactLedger {
  private readonly wrote: CompactMap;

  /** `memory`: what an earlier invocation of this dry run placed (its `memory()`). */
  constructor(
    private readonly facts: Collection<FactDocument>,
    private readonly run: string,
    memory?: CompactMap,
  ) {
    this.wrote = memory ?? new CompactMap();
  }

  memory(): CompactMap {
    return this.wrote;
  }

  async place(rows: readonly ResolvedRow[]): Promise<LedgerBatch> {
    const { candidates, superseded } = candidatesOf(rows);
    let stored: Map<string, FactDocument>;
    try {
      const documents = await this.facts
        .find({ _id: { $in: candidates.map((candidate) => candidate.id) } })
        .toArray();
      stored = new Map(documents.map((document) => [document._id, readFact(document)]));
    } catch (error) {
      throw asMongoUnavailable(error, `reading ${FACTS_COLLECTION}`);
    }
    const decisions: Decision[] = [];
    for (const candidate of candidates) {
      const id = digest64(candidate.id);
      const value = valueDigest(candidate);
      const fact = stored.get(candidate.id);
      const earlier = this.wrote.get(id);
      const decision = earlier
        ? this.decideAgain(candidate, value, earlier, fact)
        : decide(candidate, fact, this.run);
      if (earlier !== undefined && decision.same) decision.sameAsThisRun = true;
      if (!decision.supersededByLater) {
        const fromStored = decision.provenance.run !== this.run ? FROM_STORED : 0;
        this.wrote.set(id, [
          value,
          candidate.resolved.row.line,
          decision.provenance.line,
          (decision.rev | fromStored) >>> 0,
        ]);
      }
      decisions.push(decision);
    }
    return ledgerBatch(decisions, superseded);
  }

  /** A fact this run already placed: judged against what it placed, as the real run's stored fact. */
  private decideAgain(
    candidate: Candidate,
    value: number,
    earlier: Uint32Array,
    fact: FactDocument | undefined,
  ): Decision {
    const line = candidate.resolved.row.line;
    const [earlierValue, seenLine, provenanceLine, revAndFlag] = earlier as unknown as number[];
    const rev = ((revAndFlag as number) & ~FROM_STORED) >>> 0;
    const same = earlierValue === value;
    const fromStored = ((revAndFlag as number) & FROM_STORED) !== 0;
    const run = fromStored ? (fact?.run ?? this.run) : this.run;
    // As `decide`: a value this run already wrote keeps its revision.
    const nextRev = same || !fromStored ? rev : rev + 1;
    return {
      candidate,
      supersededByLater: (seenLine as number) > line,
      // A dry run is never retried from a dead attempt's facts: its memory is as clean.
      earlierInRun: (seenLine as number) !== line,
      seen: { run: this.run, line },
      same,
      rev: nextRev,
      provenance: same
        ? { rev, run, line: provenanceLine as number }
        : { rev: nextRev, run: this.run, line },
      stale: [],
      moved: false,
    };
  }

  writeFailed(batch: LedgerBatch, rows: readonly ResolvedRow[]): void {
    keepMovesPending(batch, rows);
  }

  async settle(): Promise<RemovalTarget[]> {
    return [];
  }
}

/** Flag in a remembered revision: the provenance is the stored fact's run, not this one. */
const FROM_STORED = 0x80000000;

/** 32 bits of a digest of where the row goes and its value: equal when the fact would stay. */
function valueDigest(candidate: Candidate): number {
  const { entry } = candidate;
  const numbers = candidate.resolved.row;
  return digest64(
    JSON.stringify([
      entry.orderId,
      entry.itemPath,
      candidate.resolved.target.itemName,
      numbers.impressions,
      numbers.clicks,
      numbers.viewableImpressions,
      numbers.uniqueIps,
    ]),
  )[1];
}

/** `tracking_sync_runs`: one document per file run, written only by real runs. */
export interface RunDocument {
  _id: string;
  source: { bucket: string; key: string; eTag: string; versionId?: string; size?: number };
  startedAt: Date;
  /** Set when the run ended (synced, rejected, failed, incomplete). */
  finishedAt?: Date;
  outcome: string;
  invocations: number;
  counts: Record<string, number>;
  queryExecutionId?: string;
}

/** What a run records: its document without `startedAt` (kept from the first invocation). */
export interface RunRecord extends Omit<RunDocument, "startedAt"> {
  startedAt: Date;
}

/**
 * Records a run: the first write sets `startedAt`, every write sets the rest (a
 * redelivered or retried run updates its own document, never adds one).
 */
export async function recordRun(runs: Collection<RunDocument>, record: RunRecord): Promise<void> {
  const { _id, startedAt, ...fields } = record;
  try {
    await runs.updateOne({ _id }, { $set: fields, $setOnInsert: { startedAt } }, { upsert: true });
  } catch (error) {
    throw asMongoUnavailable(error, `writing ${RUNS_COLLECTION}`);
  }
}

/**
 * "Where did the numbers of this entry come from": each contribution of the entries
 * `entry` matches, with its line and the file of its run (`tracking_sync_runs.source`).
 * The README gives the same pipeline for mongosh.
 */
export function provenancePipeline(entry: Document): Document[] {
  return [
    { $match: entry },
    { $unwind: "$contributions" },
    {
      $lookup: {
        from: RUNS_COLLECTION,
        localField: "contributions.run",
        foreignField: "_id",
        as: "run",
      },
    },
    {
      $project: {
        _id: 0,
        creativeId: "$contributions.creativeId",
        impressions: "$contributions.impressions",
        line: "$contributions.line",
        file: { $first: "$run.source" },
        runStartedAt: { $first: "$run.startedAt" },
      },
    },
  ];
}
