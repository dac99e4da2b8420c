import { randomUUID } from "node:crypto";
import { Query } from "mingo/query";
import { BSON, type Document } from "mongodb";
import { CommandError } from "./errors.js";
import { contextFor } from "./mingo-context.js";
import { encodeKey, formatKeyValue, isPlainObject, type StoredDocument } from "./values.js";

export interface IndexSpec {
  name: string;
  key: Record<string, unknown>;
  unique: boolean;
  /** Every other option the client gave (sparse, expireAfterSeconds...), echoed by listIndexes. */
  options: Document;
}

/** Values of the indexed fields, plus whether an array sits on one of the paths (multikey). */
interface KeyExtraction {
  values: unknown[];
  keyValue: Document;
  touchesArray: boolean;
  allMissing: boolean;
}

function extractKey(
  doc: StoredDocument,
  fields: readonly string[],
  paths: readonly (readonly string[])[],
): KeyExtraction {
  const values: unknown[] = [];
  const keyValue: Document = {};
  let touchesArray = false;
  let allMissing = true;
  for (const [position, field] of fields.entries()) {
    let current: unknown = doc;
    for (const part of paths[position] ?? []) {
      if (Array.isArray(current)) {
        touchesArray = true;
        current = undefined;
        break;
      }
      current =
        current !== null && typeof current === "object"
          ? (current as Record<string, unknown>)[part]
          : undefined;
    }
    if (Array.isArray(current)) touchesArray = true;
    if (current !== undefined) allMissing = false;
    values.push(current ?? null);
    keyValue[field] = current ?? null;
  }
  return { values, keyValue, touchesArray, allMissing };
}

/**
 * A unique index: a hash map from the canonical encoding of the key values to the _id key
 * of the document holding them, so enforcement and equality lookups are O(1).
 */
class UniqueIndex {
  readonly fields: string[];
  /** The fields split at their dots once, not for every document. */
  private readonly paths: string[][];
  readonly entries = new Map<string, string>();
  /** Documents whose key crosses an array: lookups would miss multikey matches, so scan. */
  multikeyDocs = 0;
  private readonly sparse: boolean;
  private readonly partial?: Query;

  constructor(readonly spec: IndexSpec) {
    this.fields = Object.keys(spec.key);
    this.paths = this.fields.map((field) => field.split("."));
    this.sparse = spec.options.sparse === true;
    const partialFilter = spec.options.partialFilterExpression;
    if (isPlainObject(partialFilter))
      this.partial = new Query(partialFilter, {
        context: contextFor(partialFilter),
        scriptEnabled: false,
      });
  }

  /** The entry key for a document, or undefined when the index does not cover it. */
  keyOf(doc: StoredDocument): { key: string; extraction: KeyExtraction } | undefined {
    const extraction = extractKey(doc, this.fields, this.paths);
    if (this.sparse && extraction.allMissing) return undefined;
    if (this.partial && !this.partial.test(doc)) return undefined;
    return { key: encodeKey(extraction.values), extraction };
  }

  get usableForLookup(): boolean {
    return this.multikeyDocs === 0 && !this.sparse && this.partial === undefined;
  }
}

/** Stored bytes keep Longs as Long, like commands; Int32/Double become JS numbers. */
const DECODE_OPTIONS = { promoteLongs: false } as const;
const ENCODE_OPTIONS = { ignoreUndefined: true } as const;
const MAX_DOCUMENT_SIZE = 16 * 1024 * 1024;

function decode(bytes: Uint8Array): StoredDocument {
  return BSON.deserialize(bytes, DECODE_OPTIONS);
}

function encode(doc: StoredDocument): Uint8Array {
  const bytes = BSON.serialize(doc, ENCODE_OPTIONS);
  if (bytes.byteLength > MAX_DOCUMENT_SIZE) {
    throw new CommandError(
      10334,
      `BSONObj size: ${bytes.byteLength} (0x${bytes.byteLength.toString(16)}) is invalid. Size must be between 0 and 16793600(16MB)`,
      {},
      "BSONObjectTooLarge",
    );
  }
  return bytes;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

interface IndexEntry {
  index: UniqueIndex;
  key: string;
  multikey: boolean;
}

export interface DocumentSnapshot {
  idKey: string;
  entries: Array<IndexEntry | undefined>;
  /** Keys in each non-unique index, in `secondaryIndexes` order. */
  secondary: string[][];
}

/**
 * A non-unique index, used the way mongod uses an index prefix: equality or `$in` on its
 * leading field narrows a query to the documents holding those values; the full filter is
 * then tested on them. Values are indexed as mongod's multikey indexes do: every value at
 * the path (arrays traversed), each array element, and the whole array as well, so the
 * candidates always include every document the filter can match.
 */
class LeadingFieldIndex {
  readonly entries = new Map<string, Set<string>>();
  private readonly path: string[];
  readonly usable: boolean;

  constructor(readonly spec: IndexSpec) {
    const [leading] = Object.keys(spec.key);
    this.path = (leading ?? "").split(".");
    // Sparse and partial indexes leave documents out; hashed/text/geo keys are not values.
    this.usable =
      leading !== undefined &&
      spec.options.sparse !== true &&
      spec.options.partialFilterExpression === undefined &&
      Object.values(spec.key).every((direction) => direction === 1 || direction === -1);
  }

  get field(): string {
    return this.path.join(".");
  }

  keysOf(doc: StoredDocument): string[] {
    const keys = new Set<string>();
    for (const value of valuesAlong(doc, this.path)) {
      keys.add(encodeKey([value]));
      if (Array.isArray(value)) for (const element of value) keys.add(encodeKey([element]));
    }
    return [...keys];
  }

  add(keys: readonly string[], idKey: string): void {
    for (const key of keys) {
      let holders = this.entries.get(key);
      if (!holders) {
        holders = new Set();
        this.entries.set(key, holders);
      }
      holders.add(idKey);
    }
  }

  remove(keys: readonly string[], idKey: string): void {
    for (const key of keys) {
      const holders = this.entries.get(key);
      if (!holders) continue;
      holders.delete(idKey);
      if (holders.size === 0) this.entries.delete(key);
    }
  }
}

/** Every value at a dotted path, descending into arrays of sub-documents; missing is null. */
function valuesAlong(value: unknown, path: readonly string[], depth = 0): unknown[] {
  if (depth === path.length) return [value ?? null];
  if (Array.isArray(value)) {
    const found = value.flatMap((element) =>
      isPlainObject(element) ? valuesAlong(element, path, depth) : [],
    );
    // A numeric path part may also address an element.
    const part = path[depth] as string;
    if (/^\d+$/.test(part)) found.push(...valuesAlong(value[Number(part)], path, depth + 1));
    return found.length > 0 ? found : [null];
  }
  if (value === null || typeof value !== "object") return [null];
  return valuesAlong((value as Record<string, unknown>)[path[depth] as string], path, depth + 1);
}

export function idKeyOf(id: unknown): string {
  return encodeKey([id]);
}

/**
 * Equality values a filter pins down, from top-level fields and `$and` members. Returns
 * whether every condition of the filter was such an equality (on distinct fields).
 */
function collectEqualities(filter: Document, into: Map<string, unknown>): boolean {
  let consumedAll = true;
  for (const [field, condition] of Object.entries(filter)) {
    if (field === "$and" && Array.isArray(condition)) {
      for (const member of condition) {
        if (!isPlainObject(member) || !collectEqualities(member, into)) consumedAll = false;
      }
      continue;
    }
    const value = field.startsWith("$") ? { ok: false as const } : equalityValue(condition);
    if (value.ok && !into.has(field)) into.set(field, value.value);
    else consumedAll = false;
  }
  return consumedAll;
}

/** The values of `{$in: [...]}` when every one is a plain equality value. */
function inList(condition: unknown): unknown[] | undefined {
  if (!isPlainObject(condition) || Object.keys(condition).length !== 1) return undefined;
  const list = condition.$in;
  if (!Array.isArray(list) || !list.every((value) => equalityValue(value).ok)) return undefined;
  return list;
}

function equalityValue(condition: unknown): { ok: true; value: unknown } | { ok: false } {
  if (condition instanceof RegExp || Array.isArray(condition)) return { ok: false };
  if (isPlainObject(condition)) {
    const keys = Object.keys(condition);
    if (keys.length === 0 || !keys.some((key) => key.startsWith("$"))) {
      return { ok: true, value: condition };
    }
    if (keys.length === 1 && keys[0] === "$eq") return equalityValue(condition.$eq);
    return { ok: false };
  }
  return { ok: true, value: condition };
}

/**
 * One collection. Documents are kept as BSON bytes, keyed by the canonical key of their
 * _id (Map order is insertion order, MongoDB's natural order): a million stored documents
 * are a million small buffers rather than tens of millions of JS objects for the garbage
 * collector to trace, and every reader gets its own copy, so nothing a command does to a
 * document it read can change the store.
 */
export class Collection {
  readonly uuid = randomUUID();
  private readonly stored = new Map<string, Uint8Array>();
  private readonly indexSpecs: IndexSpec[] = [
    { name: "_id_", key: { _id: 1 }, unique: true, options: {} },
  ];
  private readonly uniqueIndexes: UniqueIndex[] = [];
  private readonly secondaryIndexes: LeadingFieldIndex[] = [];

  constructor(
    readonly dbName: string,
    readonly name: string,
  ) {}

  get namespace(): string {
    return `${this.dbName}.${this.name}`;
  }

  get indexes(): readonly IndexSpec[] {
    return this.indexSpecs;
  }

  get size(): number {
    return this.stored.size;
  }

  /** Every document in natural order, decoded lazily; sees writes made while iterating. */
  *scan(): Generator<StoredDocument> {
    for (const bytes of this.stored.values()) yield decode(bytes);
  }

  private getByIdKey(idKey: string): StoredDocument | undefined {
    const bytes = this.stored.get(idKey);
    return bytes === undefined ? undefined : decode(bytes);
  }

  private duplicateKeyError(spec: IndexSpec, keyValue: Document, messagePrefix = ""): CommandError {
    return new CommandError(
      11000,
      `${messagePrefix}E11000 duplicate key error collection: ${this.namespace} index: ${spec.name} dup key: ${formatKeyValue(keyValue)}`,
      { keyPattern: { ...spec.key }, keyValue },
    );
  }

  /** Adds a document; throws 11000 (touching nothing) when a unique key is taken. */
  insert(doc: StoredDocument): void {
    const idKey = idKeyOf(doc._id);
    if (this.stored.has(idKey)) {
      throw this.duplicateKeyError(this.indexSpecs[0] as IndexSpec, { _id: doc._id });
    }
    const keys = this.uniqueKeysFor(doc, undefined);
    const bytes = encode(doc);
    this.stored.set(idKey, bytes);
    this.addIndexEntries(keys, idKey);
    for (const index of this.secondaryIndexes) index.add(index.keysOf(doc), idKey);
  }

  /**
   * Where a stored document sits in the indexes; taken before an update changes the
   * (decoded, private) document in place, so the old entries can be removed afterwards.
   */
  snapshot(doc: StoredDocument): DocumentSnapshot {
    return {
      idKey: idKeyOf(doc._id),
      entries: this.uniqueIndexes.map((index) => {
        const entry = index.keyOf(doc);
        return entry && { index, key: entry.key, multikey: entry.extraction.touchesArray };
      }),
      secondary: this.secondaryIndexes.map((index) => index.keysOf(doc)),
    };
  }

  /**
   * Replaces the stored document `previous` describes; throws 11000 (touching nothing).
   * Returns false, storing nothing, when the new bytes equal the stored ones (mongod's
   * test for "modified").
   */
  replace(previous: DocumentSnapshot, next: StoredDocument): boolean {
    const { idKey } = previous;
    const bytes = encode(next);
    const current = this.stored.get(idKey);
    if (current !== undefined && sameBytes(current, bytes)) return false;
    const keys = this.uniqueKeysFor(next, idKey);
    this.removeIndexEntries(previous);
    this.stored.set(idKey, bytes);
    this.addIndexEntries(keys, idKey);
    for (const index of this.secondaryIndexes) index.add(index.keysOf(next), idKey);
    return true;
  }

  remove(doc: StoredDocument): void {
    const snapshot = this.snapshot(doc);
    if (!this.stored.delete(snapshot.idKey)) return;
    this.removeIndexEntries(snapshot);
  }

  /** Checks every unique index for `doc` (owned by `ownIdKey` when it is an update). */
  private uniqueKeysFor(
    doc: StoredDocument,
    ownIdKey: string | undefined,
  ): Array<IndexEntry | undefined> {
    return this.uniqueIndexes.map((index) => {
      const entry = index.keyOf(doc);
      if (!entry) return undefined;
      const holder = index.entries.get(entry.key);
      if (holder !== undefined && holder !== ownIdKey) {
        throw this.duplicateKeyError(index.spec, entry.extraction.keyValue);
      }
      return { index, key: entry.key, multikey: entry.extraction.touchesArray };
    });
  }

  private addIndexEntries(keys: Array<IndexEntry | undefined>, idKey: string): void {
    for (const entry of keys) {
      if (!entry) continue;
      entry.index.entries.set(entry.key, idKey);
      if (entry.multikey) entry.index.multikeyDocs++;
    }
  }

  private removeIndexEntries({ idKey, entries, secondary }: DocumentSnapshot): void {
    for (const [position, index] of this.secondaryIndexes.entries()) {
      index.remove(secondary[position] ?? [], idKey);
    }
    for (const entry of entries) {
      if (!entry || entry.index.entries.get(entry.key) !== idKey) continue;
      entry.index.entries.delete(entry.key);
      if (entry.multikey) entry.index.multikeyDocs--;
    }
  }

  /**
   * Documents that can match `filter`, found through the _id or a unique index when the
   * filter pins all of its fields by equality; undefined means "scan the collection".
   * `exact` says the lookup consumed the whole filter (nothing else to test), which is
   * how mongod answers a point query on an index without a residual filter.
   */
  candidatesFor(
    filter: Document,
  ): { documents: StoredDocument[]; exact: boolean; residual?: Document } | undefined {
    const plan = this.plan(filter);
    if (!plan) return undefined;
    const documents: StoredDocument[] = [];
    for (const idKey of plan.idKeys) {
      const doc = this.getByIdKey(idKey);
      if (doc) documents.push(doc);
    }
    return plan.residual
      ? { documents, exact: plan.exact, residual: plan.residual }
      : { documents, exact: plan.exact };
  }

  /**
   * How many documents match `filter` when an index lookup consumes the whole filter
   * (read from the index and the store's keys, no document decoded); undefined otherwise.
   */
  exactMatchCount(filter: Document): number | undefined {
    const plan = this.plan(filter);
    if (!plan?.exact) return undefined;
    let n = 0;
    for (const idKey of plan.idKeys) if (this.stored.has(idKey)) n++;
    return n;
  }

  /**
   * The _id keys of the only documents that can match `filter` (possibly absent ones), or
   * undefined when no index narrows it down. Handles equality and `$in` on _id, equality
   * on every field of a unique index, `$in` on a single-field unique index, and `$or`
   * whose branches all do (the union, as mongod's OR plan over index scans).
   */
  private plan(
    filter: Document,
  ): { idKeys: Iterable<string>; exact: boolean; residual?: Document } | undefined {
    const filterFields = Object.keys(filter);
    const branches = filter.$or;
    if (Array.isArray(branches) && branches.length > 0) {
      const union = new Set<string>();
      let exact = filterFields.length === 1;
      for (const branch of branches) {
        const branchPlan = isPlainObject(branch) ? this.plan(branch) : undefined;
        if (!branchPlan) {
          // The other conditions beside $or may still narrow it down.
          const { $or: _ignored, ...rest } = filter;
          const restPlan = Object.keys(rest).length > 0 ? this.plan(rest) : undefined;
          return restPlan && { idKeys: restPlan.idKeys, exact: false };
        }
        for (const idKey of branchPlan.idKeys) union.add(idKey);
        if (!branchPlan.exact) exact = false;
      }
      return { idKeys: union, exact };
    }

    // An _id lookup consumes the _id condition; what else the filter asks is tested on
    // the documents found (the residual), as mongod's IDHACK or index bounds plus filter.
    const { _id: idCondition, ...residual } = filter;
    const exactById = filterFields.length === 1;
    const idEquality = equalityValue(idCondition);
    if (idCondition !== undefined && idEquality.ok) {
      const idKeys = [idKeyOf(idEquality.value)];
      return exactById ? { idKeys, exact: true } : { idKeys, exact: false, residual };
    }
    const idList = inList(idCondition);
    if (idList) {
      const idKeys = new Set(idList.map(idKeyOf));
      return exactById ? { idKeys, exact: true } : { idKeys, exact: false, residual };
    }

    if (this.uniqueIndexes.length === 0 && this.secondaryIndexes.length === 0) return undefined;
    const equalities = new Map<string, unknown>();
    const consumedAll = collectEqualities(filter, equalities);
    for (const index of this.uniqueIndexes) {
      if (!index.usableForLookup) continue;
      if (!index.fields.every((field) => equalities.has(field))) continue;
      const key = encodeKey(index.fields.map((field) => equalities.get(field) ?? null));
      const idKey = index.entries.get(key);
      return {
        idKeys: idKey === undefined ? [] : [idKey],
        exact: consumedAll && equalities.size === index.fields.length,
      };
    }
    for (const index of this.uniqueIndexes) {
      const [field] = index.fields;
      if (!index.usableForLookup || index.fields.length !== 1 || field === undefined) continue;
      const list = inList(filter[field]);
      if (!list) continue;
      const idKeys = new Set<string>();
      for (const value of list) {
        const idKey = index.entries.get(encodeKey([value]));
        if (idKey !== undefined) idKeys.add(idKey);
      }
      return { idKeys, exact: filterFields.length === 1 };
    }
    return this.planByLeadingField(filter, equalities);
  }

  /** Candidates from a non-unique index whose leading field the filter pins (never exact). */
  private planByLeadingField(
    filter: Document,
    equalities: Map<string, unknown>,
  ): { idKeys: Iterable<string>; exact: boolean } | undefined {
    for (const index of this.secondaryIndexes) {
      if (!index.usable) continue;
      const field = index.field;
      const values = equalities.has(field) ? [equalities.get(field)] : inList(filter[field]);
      if (!values) continue;
      const idKeys = new Set<string>();
      for (const value of values) {
        for (const idKey of index.entries.get(encodeKey([value])) ?? []) idKeys.add(idKey);
      }
      return { idKeys, exact: false };
    }
    return undefined;
  }

  findIndexByName(name: string): IndexSpec | undefined {
    return this.indexSpecs.find((spec) => spec.name === name);
  }

  findIndexByKey(key: Document): IndexSpec | undefined {
    const wanted = JSON.stringify(key);
    return this.indexSpecs.find((spec) => JSON.stringify(spec.key) === wanted);
  }

  /** Builds a new index over existing documents; an existing duplicate fails with 11000. */
  createIndex(spec: IndexSpec): void {
    if (spec.unique) {
      const index = new UniqueIndex(spec);
      for (const [idKey, bytes] of this.stored) {
        const doc = decode(bytes);
        const entry = index.keyOf(doc);
        if (!entry) continue;
        if (index.entries.has(entry.key)) {
          throw this.duplicateKeyError(
            spec,
            entry.extraction.keyValue,
            `Index build failed: ${this.uuid}: Collection ${this.namespace} ( ${this.uuid} ) :: caused by :: `,
          );
        }
        index.entries.set(entry.key, idKey);
        if (entry.extraction.touchesArray) index.multikeyDocs++;
      }
      this.uniqueIndexes.push(index);
    } else {
      const index = new LeadingFieldIndex(spec);
      for (const [idKey, bytes] of this.stored) index.add(index.keysOf(decode(bytes)), idKey);
      this.secondaryIndexes.push(index);
    }
    this.indexSpecs.push(spec);
  }

  dropIndex(name: string): void {
    const position = this.indexSpecs.findIndex((spec) => spec.name === name);
    if (position > 0) this.indexSpecs.splice(position, 1);
    const uniquePosition = this.uniqueIndexes.findIndex((index) => index.spec.name === name);
    if (uniquePosition >= 0) this.uniqueIndexes.splice(uniquePosition, 1);
    const secondaryPosition = this.secondaryIndexes.findIndex((index) => index.spec.name === name);
    if (secondaryPosition >= 0) this.secondaryIndexes.splice(secondaryPosition, 1);
  }
}
