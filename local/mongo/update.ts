import { Aggregator } from "mingo/aggregator";
import * as updateOperators from "mingo/operators/update";
import type { Options } from "mingo/types";
import { update as applyModifier } from "mingo/updater";
import { BSON, type Document, ObjectId, Timestamp } from "mongodb";
import { badValue, CommandError, failedToParse, typeMismatch } from "./errors.js";
import { contextFor } from "./mingo-context.js";
import {
  bsonTypeOf,
  cloneValue,
  getPath,
  isPlainObject,
  type StoredDocument,
  setPath,
} from "./values.js";

const UPDATE_OPERATORS = new Set([
  "$addToSet",
  "$bit",
  "$currentDate",
  "$inc",
  "$max",
  "$min",
  "$mul",
  "$pop",
  "$pull",
  "$pullAll",
  "$push",
  "$rename",
  "$set",
  "$setOnInsert",
  "$unset",
]);

const PIPELINE_UPDATE_STAGES = new Set([
  "$addFields",
  "$set",
  "$project",
  "$unset",
  "$replaceRoot",
  "$replaceWith",
]);

type OperatorFactory = (
  expr: Record<string, unknown>,
  arrayFilters?: Document[],
) => (doc: Record<string, unknown>) => string[];

/** Plain copy: looking operators up on the module namespace goes through getters. */
const OPERATOR_FACTORIES = { ...updateOperators } as unknown as Record<string, OperatorFactory>;

export type ParsedUpdate =
  | { kind: "operators"; operators: Record<string, Record<string, unknown>>; positional: boolean }
  | { kind: "pipeline"; stages: Document[] }
  | { kind: "replacement"; replacement: Document };

/** Validates an update document the way mongod does before touching any document. */
export function parseUpdate(update: unknown, now: Date): ParsedUpdate {
  if (Array.isArray(update)) return { kind: "pipeline", stages: parsePipeline(update) };
  if (!isPlainObject(update)) {
    throw failedToParse("Update argument must be either an object or an array");
  }
  const keys = Object.keys(update);
  if (keys.length === 0 || !keys[0]?.startsWith("$")) {
    const dollarKey = keys.find((key) => key.startsWith("$"));
    if (dollarKey !== undefined) {
      throw new CommandError(
        52,
        `The dollar ($) prefixed field '${dollarKey}' in '${dollarKey}' is not allowed in the context of an update's replacement document. Consider using an aggregation pipeline with $replaceWith.`,
      );
    }
    return { kind: "replacement", replacement: update };
  }
  const operators: Record<string, Record<string, unknown>> = {};
  for (const key of keys) {
    if (!UPDATE_OPERATORS.has(key)) {
      throw failedToParse(
        `Unknown modifier: ${key}. Expected a valid update modifier or pipeline-style update specified as an array`,
      );
    }
    const fields = update[key];
    if (!isPlainObject(fields)) {
      throw failedToParse(
        `Modifiers operate on fields but we found type ${describeType(fields)} instead. For example: {$mod: {<field>: ...}} not {${key}: ${describeType(fields)}}`,
      );
    }
    for (const field of Object.keys(fields)) {
      if (field === "" || field.startsWith(".") || field.endsWith(".") || field.includes("..")) {
        throw failedToParse("An empty update path is not valid.");
      }
    }
    operators[key] = fields;
  }
  checkConflicts(operators);
  checkNumericArguments(operators);
  bindCurrentDate(operators, now);
  const positional = Object.values(operators).some((fields) =>
    Object.keys(fields).some(isPositionalPath),
  );
  return { kind: "operators", operators, positional };
}

/**
 * `$currentDate` becomes a `$set` of the command's clock reading: one instant per command,
 * and a real BSON Timestamp for `{$type: "timestamp"}` (mingo would store a number).
 */
function bindCurrentDate(operators: Record<string, Record<string, unknown>>, now: Date): void {
  const fields = operators.$currentDate;
  if (!fields) return;
  const values: Record<string, unknown> = {};
  for (const [path, spec] of Object.entries(fields)) {
    if (spec === true || (isPlainObject(spec) && spec.$type === "date")) {
      values[path] = new Date(now.getTime());
    } else if (isPlainObject(spec) && spec.$type === "timestamp") {
      values[path] = new Timestamp({ t: Math.floor(now.getTime() / 1000), i: 1 });
    } else {
      throw badValue(
        `${path} is not valid type for $currentDate. Please use a boolean ('true') or a $type expression ({$type: 'timestamp/date'}).`,
      );
    }
  }
  delete operators.$currentDate;
  operators.$set = { ...operators.$set, ...values };
}

function describeType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "int" : "double";
  if (typeof value === "boolean") return "bool";
  return bsonTypeOf(value)?.toLowerCase() ?? typeof value;
}

/** Whether a path uses the positional `$` (which needs the statement's filter). */
function isPositionalPath(path: string): boolean {
  return path === "$" || path.startsWith("$.") || path.endsWith(".$") || path.includes(".$.");
}

/** Two operators may not touch the same path, nor a path and its prefix (code 40). */
function checkConflicts(operators: Record<string, Record<string, unknown>>): void {
  // Linear in the paths' length; only a conflict pays the pairwise search for its message.
  if (hasConflict(operators)) reportConflict(operators);
}

function hasConflict(operators: Record<string, Record<string, unknown>>): boolean {
  const seen = new Set<string>();
  const prefixes = new Set<string>();
  const visit = (path: string): boolean => {
    if (seen.has(path) || prefixes.has(path)) return true;
    for (let dot = path.indexOf("."); dot >= 0; dot = path.indexOf(".", dot + 1)) {
      const prefix = path.slice(0, dot);
      if (seen.has(prefix)) return true;
      prefixes.add(prefix);
    }
    seen.add(path);
    return false;
  };
  for (const [operator, fields] of Object.entries(operators)) {
    for (const path of Object.keys(fields)) if (visit(path)) return true;
    if (operator !== "$rename") continue;
    for (const target of Object.values(fields)) {
      if (typeof target === "string" && visit(target)) return true;
    }
  }
  return false;
}

function reportConflict(operators: Record<string, Record<string, unknown>>): void {
  const seen: string[] = [];
  for (const [operator, fields] of Object.entries(operators)) {
    const paths = Object.keys(fields);
    if (operator === "$rename") {
      for (const target of Object.values(fields))
        if (typeof target === "string") paths.push(target);
    }
    for (const path of paths) {
      for (const earlier of seen) {
        const shorter = earlier.length <= path.length ? earlier : path;
        const longer = shorter === earlier ? path : earlier;
        if (longer === shorter || longer.startsWith(`${shorter}.`)) {
          throw new CommandError(
            40,
            `Updating the path '${path}' would create a conflict at '${shorter}'`,
          );
        }
      }
      seen.push(path);
    }
  }
}

function checkNumericArguments(operators: Record<string, Record<string, unknown>>): void {
  for (const operator of ["$inc", "$mul"]) {
    const fields = operators[operator];
    if (!fields) continue;
    for (const [path, amount] of Object.entries(fields)) {
      if (typeof amount !== "number") {
        const verb = operator === "$inc" ? "increment" : "multiply";
        throw typeMismatch(
          `Cannot ${verb} with non-numeric argument: {${path}: ${JSON.stringify(amount) ?? String(amount)}}`,
        );
      }
    }
  }
}

/** `$$NOW` is left to the command's compute options (see `commandClock`). */
function parsePipeline(stages: unknown[]): Document[] {
  return stages.map((stage) => {
    if (!isPlainObject(stage) || Object.keys(stage).length !== 1) {
      throw failedToParse("A pipeline stage specification object must contain exactly one field.");
    }
    const name = Object.keys(stage)[0] as string;
    if (!PIPELINE_UPDATE_STAGES.has(name)) {
      throw new CommandError(72, `${name} is not allowed to be used within an update`);
    }
    return stage;
  });
}

/**
 * Replaces `$$NOW` with one literal Date so the whole aggregation sees one instant.
 * `$literal` contents are data and stay.
 */
export function bindNow(expression: unknown, now: Date): unknown {
  if (expression === "$$NOW") return { $literal: now };
  if (Array.isArray(expression)) return expression.map((item) => bindNow(item, now));
  if (isPlainObject(expression)) {
    if ("$literal" in expression) return expression;
    const bound: Record<string, unknown> = {};
    for (const key of Object.keys(expression)) bound[key] = bindNow(expression[key], now);
    return bound;
  }
  return expression;
}

/** The document an upsert starts from: the filter's equality fields (and `$and` members). */
export function upsertSeed(filter: Document): StoredDocument {
  const seed: StoredDocument = {};
  addEqualities(filter, seed);
  return seed;
}

function addEqualities(filter: Document, seed: StoredDocument): void {
  for (const [field, condition] of Object.entries(filter)) {
    if (field === "$and" && Array.isArray(condition)) {
      for (const member of condition) if (isPlainObject(member)) addEqualities(member, seed);
      continue;
    }
    if (field.startsWith("$")) continue;
    if (isPlainObject(condition)) {
      const keys = Object.keys(condition);
      if (keys.some((key) => key.startsWith("$"))) {
        if (keys.length === 1 && keys[0] === "$eq") setPath(seed, field, cloneValue(condition.$eq));
        continue;
      }
    }
    if (condition instanceof RegExp) continue;
    setPath(seed, field, cloneValue(condition));
  }
}

export interface ApplyContext {
  /** The statement's filter: needed by the positional `$` operator. */
  filter: Document;
  arrayFilters?: Document[];
  /** True when the document is being created by an upsert. */
  inserting: boolean;
  /** The command's mingo options (`commandClock`): pipelines read `$$NOW` from them. */
  computeOptions: Options;
}

/**
 * Applies a parsed update to `original`, which the caller owns (a private copy decoded
 * from the store, or an upsert seed) and which may be changed in place. Returns the new
 * document and whether it may have changed (false only when no operator changed a field).
 * Nothing reaches the store until the caller stores the result, so a failed statement
 * leaves it untouched.
 */
export function applyUpdate(
  original: StoredDocument,
  parsed: ParsedUpdate,
  context: ApplyContext,
): { doc: StoredDocument; changed: boolean } {
  // A copy: a pipeline may change a sub-document _id of `original` in place.
  const originalId = cloneValue(original._id);
  let next: StoredDocument;
  let changed: boolean | undefined;
  switch (parsed.kind) {
    case "replacement": {
      const { _id: replacementId, ...rest } = cloneValue(parsed.replacement);
      if (replacementId !== undefined && original._id !== undefined) {
        checkIdUnchanged(original._id, replacementId);
      }
      const id = original._id ?? replacementId;
      next = id === undefined ? rest : { _id: id, ...rest };
      break;
    }
    case "pipeline": {
      const aggregator = new Aggregator(parsed.stages, context.computeOptions);
      const [result] = aggregator.run([original]);
      if (!isPlainObject(result)) {
        throw new CommandError(2, "The update pipeline must produce a document");
      }
      next = result;
      break;
    }
    case "operators": {
      next = original;
      changed = applyOperators(next, parsed, context);
      break;
    }
  }
  if (originalId !== undefined && !context.inserting) checkIdUnchanged(originalId, next._id);
  // Pipelines and replacements may rewrite a document to the same bytes: the store compares.
  return { doc: next, changed: context.inserting || (changed ?? true) };
}

/**
 * Since MongoDB 5.0 an operator's fields are applied in lexicographic order (numeric names
 * numerically), which decides where new fields land in the stored document.
 */
function inFieldOrder(fields: Record<string, unknown>): Record<string, unknown> {
  const names = Object.keys(fields);
  if (names.length < 2) return fields;
  let inOrder = true;
  for (let i = 1; i < names.length && inOrder; i++) {
    inOrder = compareFieldNames(names[i - 1] as string, names[i] as string) <= 0;
  }
  if (inOrder) return fields;
  const sorted = [...names].sort(compareFieldNames);
  const ordered: Record<string, unknown> = {};
  for (const name of sorted) ordered[name] = fields[name];
  return ordered;
}

function compareFieldNames(a: string, b: string): number {
  if (isDigits(a) && isDigits(b)) return Number(a) - Number(b);
  return a < b ? -1 : a > b ? 1 : 0;
}

function isDigits(name: string): boolean {
  const first = name.charCodeAt(0);
  return first >= 48 && first <= 57 && /^\d+$/.test(name);
}

/**
 * `$set` of plain top-level fields is what every upsert of the ingest does, and mingo's
 * general path (dotted-path parsing, array filters, graph building) costs more than the
 * rest of the statement together. For plain names the operation is an assignment. Whether
 * it modified the document is left to the store's byte comparison, which is mongod's rule
 * (mingo's `isEqual` ignores field order inside sub-documents, mongod does not). Returns
 * undefined (use mingo) for any other kind of path.
 */
function setTopLevelFields(
  doc: StoredDocument,
  fields: Record<string, unknown>,
): boolean | undefined {
  const names = Object.keys(fields);
  for (const name of names) {
    if (name.includes(".") || name.startsWith("$") || name === "__proto__") return undefined;
  }
  for (const name of names) doc[name] = fields[name];
  return names.length > 0;
}

/** Runs mingo's update operators on `doc` in place; true when a field changed. */
function applyOperators(
  doc: StoredDocument,
  parsed: Extract<ParsedUpdate, { kind: "operators" }>,
  context: ApplyContext,
): boolean {
  const { $setOnInsert, ...modifier } = parsed.operators;
  if (context.inserting && $setOnInsert) {
    modifier.$set = { ...modifier.$set, ...$setOnInsert };
  }
  checkNumericTargets(doc, modifier);
  try {
    if (parsed.positional && !context.inserting) {
      // The positional `$` needs the statement's filter: go through mingo's full updater.
      const modified = applyModifier(doc, modifier, context.arrayFilters, context.filter, {
        cloneMode: "copy",
        queryOptions: { context: contextFor(context.filter), scriptEnabled: false },
      });
      return modified.length > 0;
    }
    let changed = false;
    for (const [operator, fields] of Object.entries(modifier)) {
      const ordered = inFieldOrder(fields);
      const topLevel = operator === "$set" ? setTopLevelFields(doc, ordered) : undefined;
      if (topLevel !== undefined) {
        changed ||= topLevel;
        continue;
      }
      const factory = OPERATOR_FACTORIES[operator] as OperatorFactory;
      if (factory(ordered, context.arrayFilters)(doc).length > 0) changed = true;
    }
    return changed;
  } catch (error) {
    // mingo checks _id itself; answer with mongod's code rather than BadValue.
    if (error instanceof Error && error.message.includes("immutable field")) {
      throw immutableIdError();
    }
    throw error;
  }
}

function checkIdUnchanged(before: unknown, after: unknown): void {
  // The same primitive or ObjectId (immutable) is unchanged; a sub-document _id could
  // have been changed in place, so only bytes can tell.
  const immutable = typeof before !== "object" || before instanceof ObjectId;
  if (before === after && before !== undefined && immutable) return;
  if (
    after === undefined ||
    !bytesEqual(BSON.serialize({ v: before }), BSON.serialize({ v: after }))
  ) {
    throw immutableIdError();
  }
}

function immutableIdError(): CommandError {
  return new CommandError(
    66,
    "Performing an update on the path '_id' would modify the immutable field '_id'",
  );
}

/** mingo silently skips `$inc` on a non-number; mongod refuses with TypeMismatch. */
function checkNumericTargets(doc: StoredDocument, modifier: Record<string, Document>): void {
  for (const operator of ["$inc", "$mul"]) {
    for (const path of Object.keys(modifier[operator] ?? {})) {
      if (path.includes("$")) continue;
      const current = getPath(doc, path);
      if (current === undefined || typeof current === "number") continue;
      throw typeMismatch(
        `Cannot apply ${operator} to a value of non-numeric type. {_id: ${formatId(doc._id)}} has the field '${path.split(".").pop()}' of non-numeric type ${describeType(current)}`,
      );
    }
  }
}

function formatId(id: unknown): string {
  if (id instanceof ObjectId) return `ObjectId('${id.toHexString()}')`;
  return JSON.stringify(id) ?? String(id);
}

/** Puts `_id` first (generating an ObjectId when absent), as mongod stores inserts. */
export function withIdFirst(doc: StoredDocument): StoredDocument {
  const names = Object.keys(doc);
  if (names[0] === "_id" && doc._id !== undefined && doc._id !== null) return doc;
  const ordered: StoredDocument = { _id: doc._id ?? new ObjectId() };
  for (const name of names) if (name !== "_id") ordered[name] = doc[name];
  return ordered;
}

/**
 * Whether the update can change no document it matches: operators that are all
 * `$setOnInsert`, which only an inserting upsert applies. Such a statement only counts
 * its matches, so the stored document need not even be read.
 */
export function isNoOpOnMatch(parsed: ParsedUpdate): boolean {
  if (parsed.kind !== "operators") return false;
  for (const operator of Object.keys(parsed.operators)) {
    if (operator !== "$setOnInsert") return false;
  }
  return true;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}
