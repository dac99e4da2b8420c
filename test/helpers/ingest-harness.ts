import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import type { Context, S3Event } from "aws-lambda";
import { type Db, type Document, MongoClient } from "mongodb";
import { composeIngest, createIngestClients } from "../../handlers/ingest/compose";
import { loadIngestConfig } from "../../handlers/ingest/config";
import { createIngestHandler } from "../../handlers/ingest/ingest-event";
import type { MongoConnection } from "../../handlers/ingest/mongo";
import { createLogger } from "../../handlers/shared/logger";
import { startTestMongo, type TestMongo } from "./mongo";
import { startTestS3, type TestS3 } from "./s3";
import { s3Event } from "./s3-event";

export const BUCKET = "tracking-sync-results";

type Handler = (event: S3Event, context: Context) => Promise<unknown>;

export const lambdaContext = {
  awsRequestId: "test-request",
  functionName: "ingestResults",
} as Context;

/**
 * The real ingest handler against the S3 stand-in and the embedded MongoDB over TCP.
 * `loadHandler` builds it as the Lambda's root does, from a configuration read from the
 * harness's environment plus `extraEnv`, with the stand-in's S3 client; `process.env` is
 * never changed. `stop()` closes every handler's MongoDB connection.
 */
export interface IngestHarness {
  mongo: TestMongo;
  s3: TestS3;
  client: MongoClient;
  db: Db;
  dbName: string;
  env: Record<string, string>;
  /** Log lines the handler wrote (JSON), captured instead of printed. */
  logs: string[];
  loadHandler(extraEnv?: Record<string, string | undefined>): Promise<Handler>;
  putObject(key: string, body: string, options?: { tagging?: string }): Promise<S3Event>;
  readText(key: string): Promise<string | undefined>;
  readJson<T = Record<string, unknown>>(key: string): Promise<T | undefined>;
  clearDb(): Promise<void>;
  stop(): Promise<void>;
}

export async function startIngestHarness(): Promise<IngestHarness> {
  const mongo = await startTestMongo();
  const s3 = await startTestS3({ buckets: [BUCKET] });
  const dbName = mongo.freshDbName("ingest");
  const client = new MongoClient(mongo.uri, { serverSelectionTimeoutMS: 5_000 });
  await client.connect();
  const db = client.db(dbName);
  const env = {
    ...s3.env,
    MONGODB_URI: mongo.uri,
    MONGODB_DB_NAME: dbName,
    AWS_REGION: "us-east-1",
  };
  const logs: string[] = [];
  const connections: MongoConnection[] = [];

  const harness: IngestHarness = {
    mongo,
    s3,
    client,
    db,
    dbName,
    env,
    logs,
    async loadHandler(extraEnv = {}) {
      const handlerEnv: Record<string, string | undefined> = { ...env, ...extraEnv };
      const config = loadIngestConfig(handlerEnv);
      const deps = composeIngest(
        config,
        createIngestClients(config, {
          s3: s3.client,
          logger: createLogger({ function: "ingestResults" }, { write: (line) => logs.push(line) }),
        }),
      );
      connections.push(deps.mongo);
      return createIngestHandler(deps) as Handler;
    },
    async putObject(key, body, options = {}) {
      const response = await s3.client.send(
        new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body, Tagging: options.tagging }),
      );
      return s3Event(BUCKET, key, {
        size: Buffer.byteLength(body),
        eTag: response.ETag ?? "",
      });
    },
    async readText(key) {
      try {
        const response = await s3.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
        return await response.Body?.transformToString("utf-8");
      } catch (error) {
        if ((error as { name?: string }).name === "NoSuchKey") return undefined;
        throw error;
      }
    },
    async readJson(key) {
      const text = await harness.readText(key);
      return text === undefined ? undefined : JSON.parse(text);
    },
    async clearDb() {
      for (const name of [
        "performance_entries",
        "tracking_sync_facts",
        "tracking_sync_runs",
        "publication_insertion_orders",
        "tracking_scripts",
        "publications",
      ]) {
        await db.collection(name).deleteMany({});
      }
    },
    async stop() {
      for (const connection of connections.splice(0)) await connection.close();
      await client.close();
      await s3.stop();
      await mongo.stop();
    },
  };
  return harness;
}

/**
 * The entries without their clocks, sorted by upsert key, each contribution's `run` checked
 * to be the one run of the file and then left out: the same rows ingested under two keys
 * are two runs, and otherwise equal.
 */
export async function comparableEntries(db: Db): Promise<Document[]> {
  const stored = await db
    .collection("performance_entries")
    .find({}, { projection: { _id: 0, createdAt: 0, updatedAt: 0, enteredAt: 0 } })
    .sort({ orderId: 1, itemPath: 1, dateStart: 1 })
    .toArray();
  const runs = new Set(stored.flatMap((entry) => entry.contributions.map((c: Document) => c.run)));
  if (runs.size > 1) throw new Error(`contributions name ${runs.size} runs, expected one`);
  return stored.map((entry) => ({
    ...entry,
    contributions: entry.contributions.map(({ run, ...contribution }: Document) => contribution),
  }));
}

/** The facts without their clock, sorted by id, `run` and `seen.run` left out (see comparableEntries). */
export async function comparableFacts(db: Db): Promise<Document[]> {
  const stored = await db.collection("tracking_sync_facts").find().sort({ _id: 1 }).toArray();
  return stored.map(({ updatedAt, run, seen, replaced, placedBy, ...fact }) => ({
    ...fact,
    // A fact without `seen` was seen last on the line that wrote it (seenOf).
    seenLine: (seen ?? fact).line,
    replaced: replaced ? { ...replaced, run: undefined } : null,
  }));
}

/** Empties the entries and the ledger: the next run starts from an empty database. */
export async function clearEntriesAndLedger(db: Db): Promise<void> {
  for (const name of ["performance_entries", "tracking_sync_facts", "tracking_sync_runs"]) {
    await db.collection(name).deleteMany({});
  }
}
