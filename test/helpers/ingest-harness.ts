import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import type { Context, S3Event } from "aws-lambda";
import { type Db, MongoClient } from "mongodb";
import { vi } from "vitest";
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
 * Module-scope clients read the environment at import (and the SDK again per request),
 * so `loadHandler` sets it and re-imports the module; `stop()` puts `process.env` back.
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
  const savedEnv = { ...process.env };
  const logs: string[] = [];

  const harness: IngestHarness = {
    mongo,
    s3,
    client,
    db,
    dbName,
    env,
    logs,
    async loadHandler(extraEnv = {}) {
      process.env = { ...savedEnv, ...env };
      for (const [name, value] of Object.entries(extraEnv)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
      vi.resetModules();
      const module = await import("../../handlers/ingest-results");
      // The same (fresh) logger module instance the handler just imported.
      const { setDefaultLogWriter } = await import("../../handlers/shared/logger");
      setDefaultLogWriter((line) => logs.push(line));
      return module.handler as Handler;
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
        "publication_insertion_orders",
        "tracking_scripts",
        "publications",
      ]) {
        await db.collection(name).deleteMany({});
      }
    },
    async stop() {
      process.env = savedEnv;
      await client.close();
      await s3.stop();
      await mongo.stop();
    },
  };
  return harness;
}
