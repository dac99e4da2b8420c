import {
  type Collection,
  type Document,
  MongoError,
  MongoNetworkError,
  MongoServerError,
  MongoWriteConcernError,
  WriteConcern,
} from "mongodb";
import { MongoUnavailableError } from "./errors";

/**
 * Unordered `insert`, `update` and `delete` commands, sent as MongoDB's own write commands
 * (`db.command`) rather than through `collection.bulkWrite`.
 *
 * The server gets the same statements (bulkWrite sends them as a document sequence, with
 * a transaction number; a command in its body). What differs is the client's work per
 * statement: bulkWrite wraps every operation, serializes it into a buffer of its own (for
 * the size check and the batch split), copies those buffers into the message and builds a
 * result that names every inserted or upserted id. A command is one document, serialized
 * in one pass. The ingest writes one fact and about one entry statement per row, and on
 * the benchmark that per-statement work cost more than the ledger's own logic
 * (BENCHMARKS.md, "Write commands").
 *
 * What bulkWrite did that these do here:
 * - **Splitting.** A command holds at most `MAX_STATEMENTS` statements. A command too
 *   large for one BSON document is refused as a whole before anything is applied: the
 *   client refuses past its 17 MB buffer while serializing, before a byte is written; the
 *   server refuses past 16 MB + 16 KB with `BSONObjectTooLarge`. It is then sent again in
 *   two halves. (bulkWrite sends document sequences of up to 48 MB; a batch of the ingest
 *   is a few MB.)
 * - **Write concern and BSON options** of the collection go with each command.
 * - **One retry** after a network error or a primary stepping down, as a retryable write.
 *   bulkWrite's retry carries a transaction number, so the server knows a statement it
 *   already applied; these commands carry none, which is safe because every caller's
 *   statements are idempotent: an entry upsert or removal applied twice leaves what it
 *   left once, and a fact insert that landed before the connection broke answers E11000,
 *   a lost compare-and-set, and is placed again from the fact as it is. Only the counts
 *   of that batch can then differ (an entry inserted by the lost attempt counts as
 *   updated or unchanged).
 * - **Errors.** Statement errors come back indexed into the caller's list. A write
 *   concern error throws `MongoUnavailableError` (the statements may be applied; the
 *   file's retry is safe for the same reason).
 */

/** What a command needs of a collection (any schema): its database, name, write concern and BSON options. */
export type CommandTarget = Pick<
  Collection,
  "db" | "collectionName" | "writeConcern" | "bsonOptions"
>;

/** Statements per command at most (the server takes up to 100,000). */
export const MAX_STATEMENTS = 10_000;

/** A statement the server refused, by its index in the caller's list. */
export interface StatementError {
  index: number;
  code: number;
  errmsg?: string;
}

/** One statement of an `update` command (never `multi`). */
export interface UpdateStatement {
  q: Document;
  u: Document | Document[];
  upsert?: boolean;
}

export interface InsertOutcome {
  inserted: number;
  writeErrors: StatementError[];
}

export interface UpdateOutcome {
  /** Statements whose filter matched a document (upserts that inserted are not counted). */
  matched: number;
  modified: number;
  /** Indexes of the statements that inserted a document (upserts). */
  upserted: number[];
  writeErrors: StatementError[];
}

/** `insert` of `documents`, unordered: a failing document does not stop the others. */
export async function insertUnordered(
  collection: CommandTarget,
  documents: readonly Document[],
): Promise<InsertOutcome> {
  let inserted = 0;
  const writeErrors = await sendAll(
    {
      collection,
      command: "insert",
      field: "documents",
      onReply: (reply) => (inserted += reply.n ?? 0),
    },
    documents,
  );
  return { inserted, writeErrors };
}

/** `update` of `statements`, unordered: a failing statement does not stop the others. */
export async function updateUnordered(
  collection: CommandTarget,
  statements: readonly UpdateStatement[],
): Promise<UpdateOutcome> {
  const outcome: Omit<UpdateOutcome, "writeErrors"> = { matched: 0, modified: 0, upserted: [] };
  const onReply = (reply: Document, offset: number) => {
    const upserted = (reply.upserted ?? []) as { index: number }[];
    outcome.matched += (reply.n ?? 0) - upserted.length;
    outcome.modified += reply.nModified ?? 0;
    for (const { index } of upserted) outcome.upserted.push(offset + index);
  };
  const writeErrors = await sendAll(
    { collection, command: "update", field: "updates", onReply },
    statements,
  );
  return { ...outcome, writeErrors };
}

/** `delete` of one document per filter, unordered; returns how many were deleted. */
export async function deleteOneEach(
  collection: CommandTarget,
  filters: readonly Document[],
): Promise<{ deleted: number; writeErrors: StatementError[] }> {
  let deleted = 0;
  const writeErrors = await sendAll(
    {
      collection,
      command: "delete",
      field: "deletes",
      onReply: (reply) => (deleted += reply.n ?? 0),
    },
    filters.map((q) => ({ q, limit: 1 })),
  );
  return { deleted, writeErrors };
}

function addErrors(into: StatementError[], reply: Document, offset: number): void {
  for (const error of (reply.writeErrors ?? []) as StatementError[]) {
    into.push({ index: offset + error.index, code: error.code, errmsg: error.errmsg });
  }
}

/** One kind of write command to one collection, and what to do with each reply. */
interface WriteCommand {
  collection: CommandTarget;
  command: "insert" | "update" | "delete";
  field: "documents" | "updates" | "deletes";
  /** `offset`: the index in the caller's list of the reply's first statement. */
  onReply: (reply: Document, offset: number) => void;
}

/** Sends `items` in as many commands as it takes; returns the refused statements. */
async function sendAll(write: WriteCommand, items: readonly Document[]): Promise<StatementError[]> {
  const writeErrors: StatementError[] = [];
  const collecting: WriteCommand = {
    ...write,
    onReply: (reply, offset) => {
      write.onReply(reply, offset);
      addErrors(writeErrors, reply, offset);
    },
  };
  for (let start = 0; start < items.length; start += MAX_STATEMENTS) {
    await send(collecting, items.slice(start, start + MAX_STATEMENTS), start);
  }
  return writeErrors;
}

async function send(write: WriteCommand, items: readonly Document[], offset: number) {
  const { collection, command, field } = write;
  const body: Document = { [command]: collection.collectionName, [field]: items, ordered: false };
  // As bulkWrite would: the collection's write concern (the client's or the URI's).
  if (collection.writeConcern) WriteConcern.apply(body, collection.writeConcern);
  let reply: Document;
  try {
    reply = await runOnce(collection, body, command);
  } catch (error) {
    if (items.length > 1 && tooLarge(error)) {
      const half = Math.ceil(items.length / 2);
      await send(write, items.slice(0, half), offset);
      await send(write, items.slice(half), offset + half);
      return;
    }
    throw error;
  }
  write.onReply(reply, offset);
}

/**
 * The command, sent again once after a failure a retryable write survives (a network
 * error or a primary stepping down), as bulkWrite's retryable writes would: every caller's
 * statements are idempotent. A write concern error fails: the statements may be applied.
 */
async function runOnce(collection: CommandTarget, body: Document, command: string) {
  const options = bsonOptionsOf(collection);
  try {
    return writeConcernChecked(await collection.db.command(body, options), collection, command);
  } catch (error) {
    if (!retryable(error)) throw writeConcernFailure(error, collection, command);
  }
  return writeConcernChecked(await collection.db.command(body, options), collection, command);
}

/** The driver throws MongoWriteConcernError itself; a reply that carries one fails too. */
function writeConcernChecked(reply: Document, collection: CommandTarget, command: string) {
  if (reply.writeConcernError) {
    throw concernNotSatisfied(collection, command, reply.writeConcernError as Document);
  }
  return reply;
}

function writeConcernFailure(error: unknown, collection: CommandTarget, command: string): unknown {
  if (!(error instanceof MongoWriteConcernError)) return error;
  return concernNotSatisfied(collection, command, error.result?.writeConcernError ?? error);
}

function concernNotSatisfied(collection: CommandTarget, command: string, error: Document) {
  return new MongoUnavailableError(
    `${command} on ${collection.collectionName}: write concern not satisfied (${String(
      error.errmsg ?? error.code,
    )})`,
    { code: error.code },
  );
}

/** What bulkWrite would serialize with: the collection's BSON options (ignoreUndefined, …). */
function bsonOptionsOf(collection: CommandTarget): Document {
  const { ignoreUndefined, serializeFunctions, checkKeys } = collection.bsonOptions ?? {};
  const options: Document = {};
  if (ignoreUndefined !== undefined) options.ignoreUndefined = ignoreUndefined;
  if (serializeFunctions !== undefined) options.serializeFunctions = serializeFunctions;
  if (checkKeys !== undefined) options.checkKeys = checkKeys;
  return options;
}

/** Server errors a retryable write is retried on (the retryable-writes specification). */
const RETRYABLE_CODES = new Set([6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436]);

function retryable(error: unknown): boolean {
  if (error instanceof MongoWriteConcernError) return false;
  if (error instanceof MongoNetworkError) return true;
  if (!(error instanceof MongoError)) return false;
  if (error.hasErrorLabel("RetryableWriteError")) return true;
  return typeof error.code === "number" && RETRYABLE_CODES.has(error.code);
}

/** A command refused whole for its size: the client's buffer, or the server's limit. */
function tooLarge(error: unknown): boolean {
  if (error instanceof RangeError) return true;
  return error instanceof MongoServerError && error.code === BSON_OBJECT_TOO_LARGE;
}

const BSON_OBJECT_TOO_LARGE = 10334;
