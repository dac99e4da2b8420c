import { Aggregator } from "mingo/aggregator";
import { Query } from "mingo/query";
import { type Document, Long } from "mongodb";
import { Collection, type IndexSpec } from "./collection.js";
import { CursorRegistry } from "./cursors.js";
import { badValue, CommandError, failedToParse, toCommandError, typeMismatch } from "./errors.js";
import { type CommandClock, commandClock, contextFor, FULL_CONTEXT } from "./mingo-context.js";
import { RetryableWrites } from "./retryable-writes.js";
import { isPromise, runStatements } from "./statements.js";
import {
  applyUpdate,
  bindNow,
  isNoOpOnMatch,
  type ParsedUpdate,
  parseUpdate,
  upsertSeed,
  withIdFirst,
} from "./update.js";
import {
  cloneValue,
  encodeKey,
  getPath,
  isPlainObject,
  type StoredDocument,
  toNumber,
} from "./values.js";
import { MAX_BSON_OBJECT_SIZE, MAX_MESSAGE_SIZE, statementValue } from "./wire.js";

export const MAX_WIRE_VERSION = 21;
export const MAX_WRITE_BATCH_SIZE = 100_000;
const REPLICA_SET_NAME = "tracking-sync";
/** Client-supplied JavaScript ($where, $function) never runs inside the test process. */
function queryOptions(...trees: unknown[]) {
  return { context: contextFor(trees), scriptEnabled: false };
}

/** What a handler needs to know about the connection a command arrived on. */
export interface CommandContext {
  connectionId: number;
}

type Handler = (
  command: Document,
  db: string,
  context: CommandContext,
) => Document | Promise<Document>;

/**
 * The command layer: storage (databases of {@link Collection}s), cursors and one handler
 * per supported command. Query, update and aggregation semantics come from mingo.
 */
export class MongoEngine {
  private readonly databases = new Map<string, Map<string, Collection>>();
  readonly cursors = new CursorRegistry();
  private readonly retryableWrites = new RetryableWrites();
  private readonly handlers: Record<string, Handler>;
  /** Moves on every reset: a write command paused across one stops there. */
  private generation = 0;

  constructor(private readonly hostAndPort: () => string) {
    const hello: Handler = (command, _db, context) => this.hello(command, context);
    this.handlers = {
      hello,
      isMaster: hello,
      ismaster: hello,
      ping: () => ({ ok: 1 }),
      buildInfo: () => this.buildInfo(),
      buildinfo: () => this.buildInfo(),
      endSessions: (command) => {
        this.retryableWrites.forget(command);
        return { ok: 1 };
      },
      killCursors: (command) => this.killCursors(command),
      insert: (command, db) => this.insert(command, db),
      update: (command, db) => this.update(command, db),
      delete: (command, db) => this.delete(command, db),
      findAndModify: (command, db) => this.findAndModify(command, db, "findAndModify"),
      findandmodify: (command, db) => this.findAndModify(command, db, "findandmodify"),
      find: (command, db) => this.find(command, db),
      getMore: (command, db) => this.getMore(command, db),
      aggregate: (command, db) => this.aggregate(command, db),
      count: (command, db) => this.count(command, db),
      distinct: (command, db) => this.distinct(command, db),
      create: (command, db) => this.create(command, db),
      createIndexes: (command, db) => this.createIndexes(command, db),
      listIndexes: (command, db) => this.listIndexes(command, db),
      dropIndexes: (command, db) => this.dropIndexes(command, db),
      listCollections: (command, db) => this.listCollections(command, db),
      drop: (command, db) => this.drop(command, db),
      dropDatabase: (_command, db) => this.dropDatabase(db),
      listDatabases: (command) => this.listDatabases(command),
    };
  }

  /**
   * Runs one command; never throws: failures become `{ok: 0, code, errmsg}` replies. A
   * write command long enough to yield to other connections answers with a promise.
   */
  execute(command: Document, context: CommandContext): Document | Promise<Document> {
    const name = commandName(command);
    try {
      const handler = name === undefined ? undefined : this.handlers[name];
      if (!handler) {
        throw new CommandError(59, `no such command: '${name ?? ""}'`);
      }
      const db = typeof command.$db === "string" ? command.$db : "test";
      const reply = this.retryableWrites.run(name as string, command, () =>
        handler(command, db, context),
      );
      return isPromise(reply)
        ? reply.catch((error: unknown) => toCommandError(error).toReply())
        : reply;
    } catch (error) {
      return toCommandError(error).toReply();
    }
  }

  /**
   * The statements of a write command, one `step` each, in order (see `runStatements`).
   * Each processed statement is dropped from the command, so a long command's
   * statements can be collected as it goes rather than all at its end. A statement may
   * still be bytes (`RawStatement`): the step decodes it with `statementValue`.
   */
  private runStatements(
    statements: unknown[],
    step: (statement: unknown, index: number) => boolean,
    finish: () => Document,
  ): Document | Promise<Document> {
    const generation = this.generation;
    return runStatements(
      statements.length,
      (index) => {
        const statement = statements[index];
        statements[index] = undefined;
        return step(statement, index);
      },
      finish,
      () => this.generation !== generation,
    );
  }

  reset(): void {
    this.generation++;
    this.databases.clear();
    this.cursors.clear();
    this.retryableWrites.clear();
  }

  // ---- storage helpers -------------------------------------------------------------

  private collection(db: string, name: string): Collection | undefined {
    return this.databases.get(db)?.get(name);
  }

  private ensureCollection(db: string, name: string): { collection: Collection; created: boolean } {
    validateCollectionName(db, name);
    let database = this.databases.get(db);
    if (!database) {
      database = new Map();
      this.databases.set(db, database);
    }
    const existing = database.get(name);
    if (existing) return { collection: existing, created: false };
    const collection = new Collection(db, name);
    database.set(name, collection);
    return { collection, created: true };
  }

  /** Live documents matching `filter`, through an index when the filter allows it. */
  private *matching(
    collection: Collection | undefined,
    filter: Document,
  ): Generator<StoredDocument> {
    if (!collection) return;
    const lookup = collection.candidatesFor(filter);
    // An index lookup that consumed the whole filter needs no further matching.
    if (lookup?.exact) {
      yield* lookup.documents;
      return;
    }
    const query = new Query(lookup?.residual ?? filter, queryOptions(filter));
    for (const doc of lookup?.documents ?? collection.scan()) {
      if (query.test(doc)) yield doc;
    }
  }

  /**
   * How many documents match `filter` (at most `limit`, 0 for all). An exact index lookup
   * is answered from the index alone, without reading the documents.
   */
  private countMatching(
    collection: Collection | undefined,
    filter: Document,
    limit: number,
  ): number {
    if (!collection) return 0;
    const exact = collection.exactMatchCount(filter);
    if (exact !== undefined) return limit > 0 ? Math.min(exact, limit) : exact;
    let n = 0;
    for (const _doc of this.matching(collection, filter)) {
      n++;
      if (limit > 0 && n >= limit) break;
    }
    return n;
  }

  // ---- handshake and admin -----------------------------------------------------------

  private hello(command: Document, context: CommandContext): Document {
    const me = this.hostAndPort();
    const legacy = command.hello === undefined;
    return {
      ...(command.helloOk === true || !legacy ? { helloOk: true } : {}),
      ...(legacy ? { ismaster: true } : { isWritablePrimary: true }),
      // A single-node replica set, like the Atlas clusters the ingest writes to: the
      // driver then uses sessions and retryable writes exactly as in production.
      setName: REPLICA_SET_NAME,
      setVersion: 1,
      hosts: [me],
      primary: me,
      me,
      secondary: false,
      maxBsonObjectSize: MAX_BSON_OBJECT_SIZE,
      maxMessageSizeBytes: MAX_MESSAGE_SIZE,
      maxWriteBatchSize: MAX_WRITE_BATCH_SIZE,
      localTime: new Date(),
      logicalSessionTimeoutMinutes: 30,
      connectionId: context.connectionId,
      minWireVersion: 0,
      maxWireVersion: MAX_WIRE_VERSION,
      readOnly: false,
      ok: 1,
    };
  }

  private buildInfo(): Document {
    return {
      version: "7.0.0",
      gitVersion: "tracking-sync-embedded",
      versionArray: [7, 0, 0, 0],
      bits: 64,
      debug: false,
      maxBsonObjectSize: MAX_BSON_OBJECT_SIZE,
      storageEngines: ["embedded"],
      ok: 1,
    };
  }

  private listDatabases(command: Document): Document {
    const databases = [...this.databases.entries()].map(([name, collections]) => ({
      name,
      sizeOnDisk: 0,
      empty: [...collections.values()].every((collection) => collection.size === 0),
    }));
    const filter = isPlainObject(command.filter) ? command.filter : {};
    const query = new Query(filter, queryOptions(filter));
    const selected = databases.filter((database) => query.test(database));
    if (command.nameOnly === true) {
      return { databases: selected.map(({ name }) => ({ name })), ok: 1 };
    }
    return { databases: selected, totalSize: 0, totalSizeMb: 0, ok: 1 };
  }

  // ---- writes ------------------------------------------------------------------------

  private insert(command: Document, db: string): Document | Promise<Document> {
    const name = requireCollectionName(command, "insert");
    const documents = requireArray(command.documents, "documents");
    const ordered = command.ordered !== false;
    this.ensureCollection(db, name);
    const writeErrors: Document[] = [];
    let n = 0;
    return this.runStatements(
      documents,
      (statement, index) => {
        try {
          const raw = statementValue(statement);
          if (!isPlainObject(raw)) throw typeMismatch("Each document to insert must be an object");
          // Looked up per statement: a drop while the command yields must not lose inserts.
          this.ensureCollection(db, name).collection.insert(withIdFirst(raw));
          n++;
        } catch (error) {
          writeErrors.push(toCommandError(error).toWriteError(index));
          if (ordered) return false;
        }
        return true;
      },
      () => withWriteErrors({ n, ok: 1 }, writeErrors),
    );
  }

  private update(command: Document, db: string): Document | Promise<Document> {
    const name = requireCollectionName(command, "update");
    const statements = requireArray(command.updates, "updates");
    const ordered = command.ordered !== false;
    // One clock reading per command: every statement's $$NOW is the same instant.
    const clock = commandClock();
    const writeErrors: Document[] = [];
    const upserted: Document[] = [];
    let n = 0;
    let nModified = 0;
    return this.runStatements(
      statements,
      (statement, index) => {
        try {
          const result = this.updateOne(db, name, statementValue(statement), clock);
          n += result.matched;
          nModified += result.modified;
          if (result.upsertedId !== undefined) {
            n++;
            upserted.push({ index, _id: result.upsertedId });
          }
        } catch (error) {
          writeErrors.push(toCommandError(error).toWriteError(index));
          if (ordered) return false;
        }
        return true;
      },
      () => {
        const reply: Document = { n, nModified, ok: 1 };
        if (upserted.length > 0) reply.upserted = upserted;
        return withWriteErrors(reply, writeErrors);
      },
    );
  }

  private updateOne(
    db: string,
    name: string,
    statement: unknown,
    clock: CommandClock,
  ): { matched: number; modified: number; upsertedId?: unknown } {
    if (!isPlainObject(statement)) throw failedToParse("Update statement must be an object");
    const filter = statement.q ?? {};
    if (!isPlainObject(filter))
      throw typeMismatch("BSON field 'update.updates.q' is the wrong type");
    const parsed: ParsedUpdate = parseUpdate(statement.u, clock.now);
    const computeOptions = clock.options;
    const multi = statement.multi === true;
    if (multi && parsed.kind === "replacement") {
      throw failedToParse("multi update is not supported for replacement-style update");
    }
    const arrayFilters = Array.isArray(statement.arrayFilters)
      ? (statement.arrayFilters as Document[])
      : undefined;
    const collection = this.collection(db, name);
    let matched = 0;
    let modified = 0;
    let targets: StoredDocument[] = [];
    if (isNoOpOnMatch(parsed)) {
      // Nothing to apply, only matches to count (an insert-first upsert finding its key).
      matched = this.countMatching(collection, filter, multi ? 0 : 1);
    } else {
      // Collect first: a multi-update must not see the documents it has just rewritten.
      targets = multi
        ? [...this.matching(collection, filter)]
        : takeFirst(this.matching(collection, filter));
    }
    for (const doc of targets) {
      matched++;
      // Documents read from the store are private copies: the update may change them in place.
      const before = (collection as Collection).snapshot(doc);
      const next = applyUpdate(doc, parsed, {
        filter,
        arrayFilters,
        inserting: false,
        computeOptions,
      });
      if (!next.changed) continue;
      if ((collection as Collection).replace(before, next.doc)) modified++;
    }
    if (matched > 0 || statement.upsert !== true) return { matched, modified };

    const seed = upsertSeed(filter);
    const inserted = withIdFirst(
      applyUpdate(seed, parsed, { filter, arrayFilters, inserting: true, computeOptions }).doc,
    );
    this.ensureCollection(db, name).collection.insert(inserted);
    return { matched: 0, modified: 0, upsertedId: inserted._id };
  }

  /** findOneAndUpdate / findOneAndReplace / findOneAndDelete. */
  private findAndModify(command: Document, db: string, commandField: string): Document {
    const name = requireCollectionName(command, commandField);
    const filter = optionalObject(command.query, "query");
    const sort = optionalObject(command.sort, "sort");
    const projection = optionalObject(command.fields, "fields");
    const remove = command.remove === true;
    const returnNew = command.new === true;
    const upsert = command.upsert === true;
    if (remove && (command.update !== undefined || upsert || returnNew)) {
      throw failedToParse("Cannot specify both an update and remove=true");
    }
    if (!remove && command.update === undefined) {
      throw failedToParse("Either an update or remove=true must be specified");
    }
    const collection = this.collection(db, name);
    const target = hasKeys(sort)
      ? firstInOrder([...this.matching(collection, filter)], sort)
      : takeFirst(this.matching(collection, filter))[0];
    const shape = (doc: Document | undefined): Document | null => {
      if (!doc) return null;
      if (!hasKeys(projection)) return doc;
      const projected = new Query({}, queryOptions(projection)).find([doc], projection);
      return projected.hasNext() ? restoreFieldOrder(projected.next() as Document) : null;
    };

    if (remove) {
      if (target) collection?.remove(target);
      return { lastErrorObject: { n: target ? 1 : 0 }, value: shape(target), ok: 1 };
    }
    const { now, options: computeOptions } = commandClock();
    const parsed = parseUpdate(command.update, now);
    const arrayFilters = Array.isArray(command.arrayFilters)
      ? (command.arrayFilters as Document[])
      : undefined;
    if (target && collection) {
      const before = collection.snapshot(target);
      // The update changes `target` in place; keep the pre-image the client asked for.
      const original = returnNew ? undefined : cloneValue(target);
      const next = applyUpdate(target, parsed, {
        filter,
        arrayFilters,
        inserting: false,
        computeOptions,
      });
      if (next.changed) collection.replace(before, next.doc);
      return {
        lastErrorObject: { n: 1, updatedExisting: true },
        value: shape(returnNew ? next.doc : original),
        ok: 1,
      };
    }
    if (!upsert) return { lastErrorObject: { n: 0, updatedExisting: false }, value: null, ok: 1 };
    const seed = upsertSeed(filter);
    const inserted = withIdFirst(
      applyUpdate(seed, parsed, { filter, arrayFilters, inserting: true, computeOptions }).doc,
    );
    this.ensureCollection(db, name).collection.insert(inserted);
    return {
      lastErrorObject: { n: 1, updatedExisting: false, upserted: inserted._id },
      value: returnNew ? shape(inserted) : null,
      ok: 1,
    };
  }

  private delete(command: Document, db: string): Document | Promise<Document> {
    const name = requireCollectionName(command, "delete");
    const statements = requireArray(command.deletes, "deletes");
    const ordered = command.ordered !== false;
    const writeErrors: Document[] = [];
    let n = 0;
    return this.runStatements(
      statements,
      (raw, index) => {
        try {
          const statement = statementValue(raw);
          if (!isPlainObject(statement) || !isPlainObject(statement.q)) {
            throw failedToParse("BSON field 'delete.deletes.q' is missing but a required field");
          }
          const limit = toNumber(statement.limit) ?? 0;
          if (limit !== 0 && limit !== 1) {
            throw failedToParse(`The limit field in delete objects must be 0 or 1. Got ${limit}`);
          }
          const collection = this.collection(db, name);
          const matches = this.matching(collection, statement.q);
          const targets = limit === 1 ? takeFirst(matches) : [...matches];
          for (const doc of targets) {
            collection?.remove(doc);
            n++;
          }
        } catch (error) {
          writeErrors.push(toCommandError(error).toWriteError(index));
          if (ordered) return false;
        }
        return true;
      },
      () => withWriteErrors({ n, ok: 1 }, writeErrors),
    );
  }

  // ---- reads -------------------------------------------------------------------------

  private find(command: Document, db: string): Document {
    const name = requireCollectionName(command, "find");
    const filter = optionalObject(command.filter, "filter");
    const projection = optionalObject(command.projection, "projection");
    const sort = optionalObject(command.sort, "sort");
    const skip = nonNegative(command.skip, "skip");
    const rawLimit = toNumber(command.limit) ?? 0;
    const limit = Math.abs(rawLimit);
    const batchSize = nonNegativeOrUndefined(command.batchSize, "batchSize");

    const collection = this.collection(db, name);
    const lookup = collection?.candidatesFor(filter);
    // An exact index lookup already is the match (mongod's numeric equality included).
    const query = new Query(
      lookup?.exact ? {} : (lookup?.residual ?? filter),
      queryOptions(filter, projection),
    );
    const source = lookup?.documents ?? collection?.scan() ?? [];
    let cursor = query.find<Document>(source, hasKeys(projection) ? projection : undefined);
    if (hasKeys(sort)) cursor = cursor.sort(sort as Record<string, 1 | -1>);
    if (skip > 0) cursor = cursor.skip(skip);
    if (limit > 0) cursor = cursor.limit(limit);
    const reorder = hasKeys(projection);
    const results: Iterator<Document> = {
      next: () =>
        cursor.hasNext()
          ? { done: false, value: reorder ? restoreFieldOrder(cursor.next()) : cursor.next() }
          : { done: true, value: undefined },
    };
    return {
      cursor: this.cursors.firstBatch(`${db}.${name}`, results, {
        batchSize: batchSize ?? (limit > 0 ? Math.min(limit, 101) : undefined),
        limit,
        singleBatch: command.singleBatch === true || rawLimit < 0,
      }),
      ok: 1,
    };
  }

  private getMore(command: Document, db: string): Document {
    const id = command.getMore;
    if (!(id instanceof Long) && typeof id !== "number") {
      throw typeMismatch("BSON field 'getMore.getMore' is the wrong type, expected type 'long'");
    }
    const collection = command.collection;
    if (typeof collection !== "string") {
      throw typeMismatch("BSON field 'getMore.collection' is missing or the wrong type");
    }
    const batchSize = nonNegativeOrUndefined(command.batchSize, "batchSize");
    return {
      cursor: this.cursors.getMore(
        id instanceof Long ? id : Long.fromNumber(id),
        `${db}.${collection}`,
        batchSize,
      ),
      ok: 1,
    };
  }

  private killCursors(command: Document): Document {
    const ids = requireArray(command.cursors, "cursors").map((id) =>
      id instanceof Long ? id : Long.fromNumber(toNumber(id) ?? 0),
    );
    const { killed, notFound } = this.cursors.kill(ids);
    return {
      cursorsKilled: killed,
      cursorsNotFound: notFound,
      cursorsAlive: [],
      cursorsUnknown: [],
      ok: 1,
    };
  }

  private aggregate(command: Document, db: string): Document {
    const target = command.aggregate;
    if (typeof target !== "string") {
      throw badValue("aggregate with a database-level pipeline ({aggregate: 1}) is not supported");
    }
    const pipeline = requireArray(command.pipeline, "pipeline");
    for (const stage of pipeline) {
      if (!isPlainObject(stage) || Object.keys(stage).length !== 1) {
        throw new CommandError(
          40323,
          "A pipeline stage specification object must contain exactly one field.",
          {},
          "Location40323",
        );
      }
      const stageName = Object.keys(stage)[0] as string;
      if (stageName === "$out" || stageName === "$merge") {
        throw badValue(`${stageName} is not supported by the embedded server`);
      }
    }
    if (!isPlainObject(command.cursor)) {
      throw failedToParse(
        "The 'cursor' option is required, except for aggregate with the explain argument",
      );
    }
    const batchSize = nonNegativeOrUndefined(command.cursor.batchSize, "cursor.batchSize");
    const collection = this.collection(db, target);
    const aggregator = new Aggregator(bindNow(pipeline, new Date()) as Document[], {
      context: FULL_CONTEXT,
      scriptEnabled: false,
      collectionResolver: (name: string) => [...(this.collection(db, name)?.scan() ?? [])],
    });
    const output = aggregator.stream(collection ? collection.scan() : []);
    const iterator: Iterator<Document> = {
      next: () => {
        const result = output.next();
        return result.done
          ? { done: true, value: undefined }
          : { done: false, value: result.value as Document };
      },
    };
    return {
      cursor: this.cursors.firstBatch(`${db}.${target}`, iterator, { batchSize }),
      ok: 1,
    };
  }

  private count(command: Document, db: string): Document {
    const name = requireCollectionName(command, "count");
    const filter = optionalObject(command.query, "query");
    const skip = nonNegative(command.skip, "skip");
    const limit = Math.abs(toNumber(command.limit) ?? 0);
    let n = 0;
    let skipped = 0;
    for (const _doc of this.matching(this.collection(db, name), filter)) {
      if (skipped < skip) {
        skipped++;
        continue;
      }
      n++;
      if (limit > 0 && n >= limit) break;
    }
    return { n, ok: 1 };
  }

  private distinct(command: Document, db: string): Document {
    const name = requireCollectionName(command, "distinct");
    const key = command.key;
    if (typeof key !== "string" || key === "") {
      throw failedToParse("BSON field 'distinct.key' is missing but a required field");
    }
    const filter = optionalObject(command.query, "query");
    const values = new Map<string, unknown>();
    const add = (value: unknown) => {
      if (value === undefined) return;
      const encoded = encodeKey([value]);
      if (!values.has(encoded)) values.set(encoded, value);
    };
    for (const doc of this.matching(this.collection(db, name), filter)) {
      for (const value of valuesAtPath(doc, key.split("."))) add(value);
    }
    return { values: [...values.values()], ok: 1 };
  }

  // ---- collections and indexes -------------------------------------------------------

  private create(command: Document, db: string): Document {
    const name = requireCollectionName(command, "create");
    if (this.collection(db, name)) {
      throw new CommandError(48, `Collection ${db}.${name} already exists.`);
    }
    this.ensureCollection(db, name);
    return { ok: 1 };
  }

  private createIndexes(command: Document, db: string): Document {
    const name = requireCollectionName(command, "createIndexes");
    const specs = requireArray(command.indexes, "indexes").map(parseIndexSpec);
    const { collection, created } = this.ensureCollection(db, name);
    const before = collection.indexes.length;
    const added: string[] = [];
    try {
      for (const spec of specs) {
        const sameName = collection.findIndexByName(spec.name);
        if (sameName) {
          if (equivalentIndexes(sameName, spec)) continue;
          throw new CommandError(
            86,
            `An existing index has the same name as the requested index. When index names are not specified, they are auto generated and can cause conflicts. Please refer to our documentation. Requested index: ${describeIndex(spec)}, existing index: ${describeIndex(sameName)}`,
          );
        }
        const sameKey = collection.findIndexByKey(spec.key);
        if (sameKey) {
          throw new CommandError(85, `Index already exists with a different name: ${sameKey.name}`);
        }
        collection.createIndex(spec);
        added.push(spec.name);
      }
    } catch (error) {
      // createIndexes is all or nothing.
      for (const indexName of added) collection.dropIndex(indexName);
      throw error;
    }
    const reply: Document = {
      numIndexesBefore: before,
      numIndexesAfter: collection.indexes.length,
      createdCollectionAutomatically: created,
      ok: 1,
    };
    if (added.length === 0) reply.note = "all indexes already exist";
    return reply;
  }

  private listIndexes(command: Document, db: string): Document {
    const name = requireCollectionName(command, "listIndexes");
    const collection = this.collection(db, name);
    if (!collection) throw new CommandError(26, `ns does not exist: ${db}.${name}`);
    const indexes = collection.indexes.map((spec) => ({
      v: 2,
      key: spec.key,
      name: spec.name,
      ...(spec.unique && spec.name !== "_id_" ? { unique: true } : {}),
      ...spec.options,
    }));
    const batchSize = isPlainObject(command.cursor)
      ? nonNegativeOrUndefined(command.cursor.batchSize, "cursor.batchSize")
      : undefined;
    return {
      cursor: this.cursors.firstBatch(`${db}.$cmd.listIndexes.${name}`, indexes.values(), {
        batchSize,
      }),
      ok: 1,
    };
  }

  private dropIndexes(command: Document, db: string): Document {
    const name = requireCollectionName(command, "dropIndexes");
    const collection = this.collection(db, name);
    if (!collection) throw new CommandError(26, `ns not found ${db}.${name}`);
    const nIndexesWas = collection.indexes.length;
    const requested = command.index;
    let names: string[];
    if (requested === "*") {
      names = collection.indexes
        .map((spec) => spec.name)
        .filter((indexName) => indexName !== "_id_");
    } else if (typeof requested === "string") {
      names = [requested];
    } else if (Array.isArray(requested)) {
      names = requested.map(String);
    } else if (isPlainObject(requested)) {
      const spec = collection.findIndexByKey(requested);
      if (!spec) {
        throw new CommandError(27, `can't find index with key: ${JSON.stringify(requested)}`);
      }
      names = [spec.name];
    } else {
      throw typeMismatch("BSON field 'dropIndexes.index' is the wrong type");
    }
    for (const indexName of names) {
      if (indexName === "_id_") throw new CommandError(72, "cannot drop _id index");
      if (!collection.findIndexByName(indexName)) {
        throw new CommandError(27, `index not found with name [${indexName}]`);
      }
    }
    for (const indexName of names) collection.dropIndex(indexName);
    return { nIndexesWas, ok: 1 };
  }

  private listCollections(command: Document, db: string): Document {
    const filter = optionalObject(command.filter, "filter");
    const nameOnly = command.nameOnly === true;
    const infos = [...(this.databases.get(db)?.values() ?? [])].map((collection) => ({
      name: collection.name,
      type: "collection",
      options: {},
      info: { readOnly: false, uuid: collection.uuid },
      idIndex: { v: 2, key: { _id: 1 }, name: "_id_" },
    }));
    const query = new Query(filter, queryOptions(filter));
    const selected = infos
      .filter((info) => query.test(info))
      .map((info) => (nameOnly ? { name: info.name, type: info.type } : info));
    const batchSize = isPlainObject(command.cursor)
      ? nonNegativeOrUndefined(command.cursor.batchSize, "cursor.batchSize")
      : undefined;
    return {
      cursor: this.cursors.firstBatch(`${db}.$cmd.listCollections`, selected.values(), {
        batchSize,
      }),
      ok: 1,
    };
  }

  private drop(command: Document, db: string): Document {
    const name = requireCollectionName(command, "drop");
    const collection = this.collection(db, name);
    if (!collection) return { ok: 1 };
    this.databases.get(db)?.delete(name);
    return { ns: collection.namespace, nIndexesWas: collection.indexes.length, ok: 1 };
  }

  private dropDatabase(db: string): Document {
    this.databases.delete(db);
    return { dropped: db, ok: 1 };
  }
}

// ---- helpers ---------------------------------------------------------------------------

/** The command name is the first field, as mongod reads it. */
export function commandName(command: Document): string | undefined {
  for (const key of Object.keys(command)) return key;
  return undefined;
}

function validateCollectionName(db: string, name: string): void {
  if (db === "" || /[/\\. "$]/.test(db)) {
    throw new CommandError(73, `Invalid database name: '${db}'`);
  }
  if (name === "" || name.includes("$") || name.includes("\0")) {
    throw new CommandError(73, `Invalid collection name: ${name}`);
  }
}

function requireCollectionName(command: Document, commandField: string): string {
  const name = command[commandField];
  if (typeof name !== "string") {
    throw new CommandError(
      73,
      `collection name has invalid type ${Array.isArray(name) ? "array" : typeof name}`,
    );
  }
  return name;
}

function requireArray(value: unknown, field: string): unknown[] {
  if (!Array.isArray(value)) {
    throw failedToParse(`BSON field '${field}' is missing or is not an array`);
  }
  return value;
}

function optionalObject(value: unknown, field: string): Document {
  if (value === undefined || value === null) return {};
  if (!isPlainObject(value)) {
    throw typeMismatch(`BSON field '${field}' is the wrong type, expected type 'object'`);
  }
  return value;
}

function nonNegative(value: unknown, field: string): number {
  return nonNegativeOrUndefined(value, field) ?? 0;
}

function nonNegativeOrUndefined(value: unknown, field: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  const number = toNumber(value);
  if (number === undefined || !Number.isFinite(number)) {
    throw typeMismatch(`BSON field '${field}' is the wrong type, expected a number`);
  }
  if (number < 0) {
    throw new CommandError(
      51024,
      `BSON field '${field}' value must be >= 0, actual value '${number}'`,
      {},
      "Location51024",
    );
  }
  return Math.floor(number);
}

/** The first document in `sort` order (mingo's sort semantics). */
function firstInOrder(docs: Document[], sort: Document): Document | undefined {
  const cursor = new Query({}, queryOptions(sort))
    .find<Document>(docs)
    .sort(sort as Record<string, 1 | -1>)
    .limit(1);
  return cursor.hasNext() ? cursor.next() : undefined;
}

function takeFirst<T>(iterator: Iterator<T>): T[] {
  const first = iterator.next();
  return first.done ? [] : [first.value];
}

function hasKeys(value: Document): boolean {
  return Object.keys(value).length > 0;
}

function withWriteErrors(reply: Document, writeErrors: Document[]): Document {
  if (writeErrors.length > 0) reply.writeErrors = writeErrors;
  return reply;
}

/**
 * mingo's projections list `_id` last; mongod keeps `_id` first. Put `_id` back in front
 * so documents read back look like what the server stored.
 */
function restoreFieldOrder(doc: Document): Document {
  if (!("_id" in doc)) return doc;
  const { _id, ...rest } = doc;
  return { _id, ...rest };
}

/** Values at a dotted path with arrays unwound, as `distinct` counts them. */
function valuesAtPath(value: unknown, parts: string[]): unknown[] {
  if (parts.length === 0) return Array.isArray(value) ? value : [value];
  if (Array.isArray(value)) return value.flatMap((item) => valuesAtPath(item, parts));
  if (!isPlainObject(value)) return [];
  const [head, ...tail] = parts;
  return valuesAtPath(getPath(value, head as string), tail);
}

function parseIndexSpec(raw: unknown): IndexSpec {
  if (!isPlainObject(raw) || !isPlainObject(raw.key) || Object.keys(raw.key).length === 0) {
    throw new CommandError(67, "Index keys cannot be an empty field.");
  }
  if (typeof raw.name !== "string" || raw.name === "") {
    throw failedToParse("The index name must be a non-empty string");
  }
  const { key, name, unique, v: _version, ...options } = raw;
  const normalizedKey: Record<string, unknown> = {};
  for (const [field, direction] of Object.entries(key)) {
    const number = toNumber(direction);
    normalizedKey[field] = number ?? direction;
  }
  return { name, key: normalizedKey, unique: unique === true, options };
}

function equivalentIndexes(a: IndexSpec, b: IndexSpec): boolean {
  // The implicit _id index is unique without saying so: {key: {_id: 1}, name: "_id_"} is it.
  if (a.name === "_id_") return JSON.stringify(a.key) === JSON.stringify(b.key);
  return (
    JSON.stringify(a.key) === JSON.stringify(b.key) &&
    a.unique === b.unique &&
    JSON.stringify(a.options) === JSON.stringify(b.options)
  );
}

function describeIndex(spec: IndexSpec): string {
  return JSON.stringify({
    key: spec.key,
    name: spec.name,
    ...(spec.unique ? { unique: true } : {}),
  });
}
