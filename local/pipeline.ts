import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AthenaClient } from "@aws-sdk/client-athena";
import { CloudWatchClient } from "@aws-sdk/client-cloudwatch";
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import type { Context, S3Event } from "aws-lambda";
import { type Db, MongoClient } from "mongodb";
import { composeIngest, createIngestClients } from "../handlers/ingest/compose";
import { loadIngestConfig } from "../handlers/ingest/config";
import { createIngestHandler, type IngestHandler } from "../handlers/ingest/ingest-event";
import { ATHENA_RESULTS_PREFIX, DEFAULT_INGEST_PREFIXES } from "../handlers/shared/bucket-layout";
import { addDays, toIsoDate } from "../handlers/shared/dates";
import { createLogger, setDefaultLogWriter } from "../handlers/shared/logger";
import { isNotFound } from "../handlers/shared/s3";
import { loadStartConfig } from "../handlers/start/config";
import {
  composeStart,
  createStartClients,
  createStartHandler,
  type StartHandler,
} from "../handlers/start/start-handler";
import {
  type AthenaQueryStateChangeEvent,
  type AthenaServer,
  startAthenaServer,
} from "./athena-server";
import {
  type CloudWatchServer,
  type PublishedMetric,
  startCloudWatchServer,
} from "./cloudwatch-server";
import {
  type AsyncInvocation,
  createAsyncInvoker,
  createLambdaContext,
  INGEST_FUNCTION_NAME,
  LOCAL_REGION,
  type OnFailureRecord,
  START_FUNCTION_NAME,
} from "./lambda-runtime";
import { type MongoServer, startMongoServer } from "./mongo-server";
import { decodeS3EventKey } from "./s3-events";
import { type S3Server, startS3Server } from "./s3-server";
import { generateSampleData, type SampleData } from "./sample-data";
import { seedDuckDb, seedMongo, TRACKING_SCHEMA, TRACKING_TABLE } from "./seed";

/**
 * The whole pipeline on one machine, shared by `npm run demo` and `npm run local`:
 * the embedded MongoDB, the S3, Athena and CloudWatch stand-ins, seeded with the
 * generated sample data, and the two real, unchanged handlers wired as AWS wires
 * them (S3 ObjectCreated → ingest as an asynchronous invoke; the start handler
 * invoked with EventBridge's event or a SyncEvent).
 */

export interface LocalPipelineOptions {
  /** Last day of sample data, `YYYY-MM-DD`; default yesterday (UTC), what the schedule asks for. */
  endDate?: string;
  /** Days of sample data ending on `endDate`; default 7. */
  days?: number;
  seed?: number;
  bucket?: string;
  workGroup?: string;
  dbName?: string;
  /** Fixed ports (`npm run local`); 0 or unset picks free ones. */
  ports?: { mongo?: number; s3?: number; athena?: number; cloudwatch?: number };
  /** Lambda retries a failed async invoke after ~1 and ~2 minutes; locally much sooner. */
  retryDelaysMs?: readonly [number, number];
  /** Where the handlers' JSON log lines go; default stderr. */
  logWriter?: (line: string) => void;
  /** What Athena's GetQueryRuntimeStatistics says a query returned (default: the truth). */
  reportOutputRows?: (queryExecutionId: string, rows: number) => number;
  /** The start function's MAX_CONCURRENT_QUERIES (default: the process's, else 5). */
  maxConcurrentQueries?: number;
}

/** The most queries and ingests that were in flight at once, since the pipeline started. */
export interface Concurrency {
  maxQueriesInFlight: number;
  maxIngestsInFlight: number;
}

export type IngestInvocation = AsyncInvocation<S3Event, unknown>;

export interface LocalPipeline {
  bucket: string;
  workGroup: string;
  dbName: string;
  sample: SampleData;
  endpoints: { mongoUri: string; s3: string; athena: string; cloudwatch: string };
  /** The environment both handlers run with (what `npm run local` tells people to export). */
  env: Record<string, string>;
  /** Clients for looking at the results (not the handlers' own). */
  s3: S3Client;
  db: Db;
  /** Every asynchronous ingest invocation so far, in order. */
  readonly ingestInvocations: IngestInvocation[];
  /** What reached the ingest's on-failure destination. */
  readonly onFailure: OnFailureRecord[];
  /** What the handlers published to CloudWatch. */
  readonly metrics: PublishedMetric[];
  /** Peak concurrency so far; `resetConcurrency` starts counting again. */
  concurrency(): Concurrency;
  resetConcurrency(): void;
  /** Invokes the start handler as Lambda does (synchronously, with a fresh context unless given). */
  invokeStart(event: unknown, context?: Context): Promise<unknown>;
  /** Invokes the ingest handler as S3 does (asynchronously, with retries). */
  invokeIngest(event: S3Event): IngestInvocation;
  /** The decoded object keys an ingest invocation was for. */
  keysOf(invocation: IngestInvocation): string[];
  /** Resolves when no query runs, no notification is in flight and every ingest has finished. */
  settle(): Promise<void>;
  /** Resolves with the finished ingest invocation for `key` (the next one, when `after` is given). */
  waitForIngest(key: string, options?: WaitForIngestOptions): Promise<IngestInvocation>;
  /** PutObject, as `aws s3 cp` / `aws s3api put-object --tagging` would. */
  putObject(key: string, body: string | Uint8Array, tags?: Record<string, string>): Promise<void>;
  /** An object's text, or undefined when it does not exist. */
  getText(key: string): Promise<string | undefined>;
  stop(): Promise<void>;
}

export interface WaitForIngestOptions {
  timeoutMs?: number;
  /** Only invocations started after this many invocations in total (see `ingestInvocations.length`). */
  after?: number;
}

export class IngestNotStartedError extends Error {
  constructor(
    message: string,
    readonly key: string,
  ) {
    super(message);
    this.name = "IngestNotStartedError";
  }
}

/**
 * The two real handlers, composed as their Lambda roots compose them, but from this
 * pipeline's configuration and with clients pointed at its stand-ins.
 */
function buildHandlers(
  env: Record<PipelineEnvName, string>,
  writeLog: (line: string) => void,
  settings: Record<string, string> = {},
): {
  start: StartHandler;
  ingest: IngestHandler;
  close: () => Promise<void>;
} {
  const aws = {
    region: env.AWS_REGION,
    credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
  };
  const s3 = new S3Client({ ...aws, endpoint: env.AWS_ENDPOINT_URL_S3, forcePathStyle: true });
  const cloudwatch = new CloudWatchClient({ ...aws, endpoint: env.AWS_ENDPOINT_URL_CLOUDWATCH });
  const athena = new AthenaClient({ ...aws, endpoint: env.AWS_ENDPOINT_URL_ATHENA });
  // The process's own settings (BATCH_SIZE, PUBLICATION_CODE_MAP, …) apply, under the pipeline's.
  const handlerEnv = { ...process.env, ...env, ...settings };
  const ingestConfig = loadIngestConfig(handlerEnv);
  const ingestDeps = composeIngest(
    ingestConfig,
    createIngestClients(ingestConfig, {
      s3,
      cloudwatch,
      logger: createLogger({ function: "ingestResults" }, { write: writeLog }),
    }),
  );
  const start = createStartHandler(
    composeStart(
      loadStartConfig(handlerEnv),
      createStartClients({
        s3,
        cloudwatch,
        athena,
        logger: createLogger({ function: "start-query" }, { write: writeLog }),
      }),
    ),
  );
  return {
    start,
    ingest: createIngestHandler(ingestDeps),
    async close() {
      await ingestDeps.mongo.close();
      for (const client of [s3, cloudwatch, athena]) client.destroy();
    },
  };
}

/** Starts, seeds and wires everything; `stop()` undoes all of it, also after a failure. */
export async function startLocalPipeline(
  options: LocalPipelineOptions = {},
): Promise<LocalPipeline> {
  const names = {
    bucket: options.bucket ?? "tracking-sync-local",
    workGroup: options.workGroup ?? "tracking-sync",
    dbName: options.dbName ?? "tracking-sync-local",
  };
  const sample = generateSampleData({
    endDate: options.endDate ?? addDays(toIsoDate(new Date()), -1),
    days: options.days ?? 7,
    ...(options.seed !== undefined ? { seed: options.seed } : {}),
  });
  const cleanups = new Cleanups();
  const previousEnv = snapshotEnv([...Object.keys(LOCAL_ONLY_ENV), ...POINTS_ELSEWHERE]);
  cleanups.add(() => restoreEnv(previousEnv));
  // Before any AWS client exists (the Athena stand-in creates one).
  for (const name of POINTS_ELSEWHERE) delete process.env[name];
  Object.assign(process.env, LOCAL_ONLY_ENV);

  try {
    const write = options.logWriter ?? ((line: string) => process.stderr.write(`${line}\n`));
    setDefaultLogWriter(write);
    cleanups.add(() => setDefaultLogWriter(undefined));
    // EventBridge's rule, locally: Athena's SUCCEEDED events of the workgroup go to the start
    // function as asynchronous invokes. FAILED and CANCELLED need the retry queue, which has
    // no local stand-in, so they stay with the Athena stand-in's record.
    const stateChanges = new StateChangeRoute(names.workGroup);
    const standIns = await startStandIns(options, names, sample, cleanups, stateChanges);
    const mongoClient = new MongoClient(standIns.mongo.uri, { serverSelectionTimeoutMS: 5_000 });
    cleanups.add(() => mongoClient.close());
    const db = mongoClient.db(names.dbName);
    await seedMongo(db, sample.fixtures);

    const env = pipelineEnv(standIns, names);
    const handlers = buildHandlers(
      env,
      write,
      options.maxConcurrentQueries !== undefined
        ? { MAX_CONCURRENT_QUERIES: String(options.maxConcurrentQueries) }
        : {},
    );
    cleanups.add(() => handlers.close());
    stateChanges.deliverTo(
      createAsyncInvoker<AthenaQueryStateChangeEvent, unknown>({
        functionName: START_FUNCTION_NAME,
        handler: handlers.start,
        ...(options.retryDelaysMs ? { retryDelaysMs: options.retryDelaysMs } : {}),
      }),
    );
    const s3 = new S3Client({
      region: LOCAL_REGION,
      endpoint: standIns.s3.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: "local", secretAccessKey: "local" },
    });
    cleanups.add(() => s3.destroy());
    const ingest = wireIngest(handlers.ingest, standIns.s3, names.bucket, options, cleanups);

    return {
      ...names,
      sample,
      endpoints: {
        mongoUri: standIns.mongo.uri,
        s3: standIns.s3.endpoint,
        athena: standIns.athena.endpoint,
        cloudwatch: standIns.cloudwatch.endpoint,
      },
      env,
      s3,
      db,
      ingestInvocations: ingest.invocations,
      onFailure: ingest.onFailure,
      metrics: standIns.cloudwatch.metrics,
      concurrency: () => ({
        maxQueriesInFlight: stateChanges.maxInFlight,
        maxIngestsInFlight: ingest.maxInFlight(),
      }),
      resetConcurrency() {
        stateChanges.resetMax();
        ingest.resetMax();
      },
      invokeStart: (event, context) =>
        handlers.start(
          event,
          context ?? createLambdaContext({ functionName: START_FUNCTION_NAME }),
        ),
      invokeIngest: ingest.invoke,
      keysOf: ingest.keysOf,
      async settle() {
        await standIns.athena.idle();
        await standIns.s3.idle();
        await Promise.all(ingest.invocations.map((invocation) => invocation.done));
      },
      waitForIngest: createIngestWaiter(ingest, standIns.athena, names.bucket),
      putObject: (key, body, tags) => putLocalObject(s3, names.bucket, key, body, tags),
      getText: (key) => getLocalText(s3, names.bucket, key),
      stop: () => cleanups.run(),
    };
  } catch (error) {
    await cleanups.run().catch(() => undefined);
    throw error;
  }
}

/** Undo steps, run last-first; every step runs even when an earlier one fails. */
class Cleanups {
  private readonly steps: (() => Promise<void> | void)[] = [];

  add(step: () => Promise<void> | void): void {
    this.steps.push(step);
  }

  async run(): Promise<void> {
    const errors: unknown[] = [];
    for (const step of this.steps.splice(0).reverse()) {
      try {
        await step();
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, "stopping the local pipeline failed");
  }
}

interface StandIns {
  mongo: MongoServer;
  s3: S3Server;
  cloudwatch: CloudWatchServer;
  athena: AthenaServer;
}

/** MongoDB, S3 (with the bucket), CloudWatch and Athena (with the sample rows), each stopped on cleanup. */
async function startStandIns(
  options: LocalPipelineOptions,
  names: { bucket: string; workGroup: string },
  sample: SampleData,
  cleanups: Cleanups,
  stateChanges: StateChangeRoute,
): Promise<StandIns> {
  const mongo = await startMongoServer({ port: options.ports?.mongo ?? 0 });
  cleanups.add(() => mongo.stop());
  // Our own temp dir for the object bytes, removed by us: also when the S3 stand-in
  // fails to start (a taken port), which would leave its own dir behind.
  const dir = await mkdtemp(join(tmpdir(), "tracking-sync-local-"));
  cleanups.add(() => rm(dir, { recursive: true, force: true }));
  const s3 = await startS3Server({ port: options.ports?.s3 ?? 0, dir });
  cleanups.add(() => s3.stop());
  s3.createBucket(names.bucket);
  const cloudwatch = await startCloudWatchServer({ port: options.ports?.cloudwatch ?? 0 });
  cleanups.add(() => cloudwatch.stop());
  const athena = await startAthenaServer({
    port: options.ports?.athena ?? 0,
    s3: { endpoint: s3.endpoint, region: LOCAL_REGION },
    workGroups: {
      [names.workGroup]: { outputLocation: `s3://${names.bucket}/${ATHENA_RESULTS_PREFIX}` },
    },
    setup: (connection) =>
      seedDuckDb(
        connection,
        sample.rows.map((r) => r.row),
      ),
    // Returned, so the stand-in's idle() waits for the start function's run too.
    onStateChange: (event) => stateChanges.route(event),
    ...(options.reportOutputRows ? { reportOutputRows: options.reportOutputRows } : {}),
  });
  cleanups.add(() => athena.stop());
  return { mongo, s3, cloudwatch, athena };
}

/** The environment both handlers are configured from (and what `npm run local` prints). */
function pipelineEnv(
  standIns: StandIns,
  names: { bucket: string; workGroup: string; dbName: string },
): Record<PipelineEnvName, string> {
  return {
    AWS_REGION: LOCAL_REGION,
    // The AWS CLI v1 reads only this one; `npm run local` prints both.
    AWS_DEFAULT_REGION: LOCAL_REGION,
    AWS_ACCESS_KEY_ID: "local",
    AWS_SECRET_ACCESS_KEY: "local",
    AWS_ENDPOINT_URL_S3: standIns.s3.endpoint,
    AWS_ENDPOINT_URL_ATHENA: standIns.athena.endpoint,
    AWS_ENDPOINT_URL_CLOUDWATCH: standIns.cloudwatch.endpoint,
    S3_FORCE_PATH_STYLE: "true",
    RESULTS_BUCKET: names.bucket,
    ATHENA_WORKGROUP: names.workGroup,
    ATHENA_DATABASE: TRACKING_SCHEMA,
    ATHENA_TABLE: TRACKING_TABLE,
    INGEST_PREFIXES: DEFAULT_INGEST_PREFIXES.join(","),
    MONGODB_URI: standIns.mongo.uri,
    MONGODB_DB_NAME: names.dbName,
  };
}

/** Athena's state changes the stack's rule sends to the start function, once it exists. */
class StateChangeRoute {
  private invoke:
    | ((
        event: AthenaQueryStateChangeEvent,
      ) => AsyncInvocation<AthenaQueryStateChangeEvent, unknown>)
    | undefined;

  private readonly active = new Set<string>();
  /** The most queries of the workgroup queued or running at once. */
  maxInFlight = 0;

  constructor(private readonly workGroup: string) {}

  resetMax(): void {
    this.maxInFlight = this.active.size;
  }

  deliverTo(
    invoke: (
      event: AthenaQueryStateChangeEvent,
    ) => AsyncInvocation<AthenaQueryStateChangeEvent, unknown>,
  ): void {
    this.invoke = invoke;
  }

  async route(event: AthenaQueryStateChangeEvent): Promise<void> {
    const { currentState, workgroupName, queryExecutionId } = event.detail;
    if (workgroupName === this.workGroup) {
      if (currentState === "QUEUED" || currentState === "RUNNING")
        this.active.add(queryExecutionId);
      else this.active.delete(queryExecutionId);
      this.maxInFlight = Math.max(this.maxInFlight, this.active.size);
    }
    if (currentState !== "SUCCEEDED" || workgroupName !== this.workGroup || !this.invoke) return;
    await this.invoke(event).done;
  }
}

interface IngestWiring {
  invocations: IngestInvocation[];
  onFailure: OnFailureRecord[];
  invoke: (event: S3Event) => IngestInvocation;
  keysOf: (invocation: IngestInvocation) => string[];
  /** Called after every new invocation; returns the unsubscribe. */
  onInvocation: (listener: () => void) => () => void;
  maxInFlight: () => number;
  resetMax: () => void;
}

/** S3 ObjectCreated → the ingest handler as an asynchronous invoke, one rule per ingest prefix. */
function wireIngest(
  handler: IngestHandler,
  s3Server: S3Server,
  bucket: string,
  options: Pick<LocalPipelineOptions, "retryDelaysMs">,
  cleanups: Cleanups,
): IngestWiring {
  const invocations: IngestInvocation[] = [];
  const onFailure: OnFailureRecord[] = [];
  const listeners = new Set<() => void>();
  let active = 0;
  let maxActive = 0;
  const invoke = createAsyncInvoker<S3Event, unknown>({
    functionName: INGEST_FUNCTION_NAME,
    handler,
    ...(options.retryDelaysMs ? { retryDelaysMs: options.retryDelaysMs } : {}),
    onInvocation: (invocation) => {
      invocations.push(invocation);
      active += 1;
      maxActive = Math.max(maxActive, active);
      void invocation.done.finally(() => {
        active -= 1;
      });
      for (const listener of listeners) listener();
    },
    onFailure: (record) => onFailure.push(record),
  });
  // S3 delivers and forgets; wait for the functions still running before the stand-ins go.
  cleanups.add(async () => {
    await s3Server.idle();
    await Promise.all(invocations.map((i) => i.done));
  });
  for (const prefix of DEFAULT_INGEST_PREFIXES) {
    s3Server.addNotification({
      id: `ingest-${prefix.replace("/", "")}`, // as the stack names them: one rule per prefix
      bucket,
      prefix,
      suffix: ".csv",
      deliver: (event) => {
        invoke(event);
      },
    });
  }
  return {
    invocations,
    onFailure,
    invoke,
    keysOf: (invocation) =>
      (invocation.event.Records ?? []).map((record) => decodeS3EventKey(record.s3.object.key)),
    onInvocation(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    maxInFlight: () => maxActive,
    resetMax() {
      maxActive = active;
    },
  };
}

/**
 * `waitForIngest`: the finished ingest invocation for a key. Athena names its result
 * `<QueryExecutionId>.csv`; the query's state explains a missing file, at once when the
 * query failed rather than at the timeout.
 */
function createIngestWaiter(
  ingest: IngestWiring,
  athena: AthenaServer,
  bucket: string,
): LocalPipeline["waitForIngest"] {
  const queryOf = (key: string) => {
    const queryId = /^athena-results\/(.+)\.csv$/.exec(key)?.[1];
    return queryId ? athena.executions().find((e) => e.queryExecutionId === queryId) : undefined;
  };
  const describeQuery = (key: string): string => {
    const query = queryOf(key);
    if (!query) return "";
    return ` (Athena says the query is ${query.state}${query.stateChangeReason ? `: ${query.stateChangeReason}` : ""})`;
  };
  const queryEnded = (key: string) => {
    const state = queryOf(key)?.state;
    return state === "FAILED" || state === "CANCELLED";
  };

  return async (key, { timeoutMs = 60_000, after = 0 } = {}) => {
    const find = () => ingest.invocations.slice(after).find((i) => ingest.keysOf(i).includes(key));
    const invocation =
      find() ??
      (await new Promise<IngestInvocation | undefined>((resolve) => {
        const finish = (value: IngestInvocation | undefined) => {
          clearTimeout(timer);
          clearInterval(poll);
          unsubscribe();
          resolve(value);
        };
        const unsubscribe = ingest.onInvocation(() => {
          const found = find();
          if (found) finish(found);
        });
        const timer = setTimeout(() => finish(undefined), timeoutMs);
        // A failed or cancelled query writes no file.
        const poll = setInterval(() => {
          if (queryEnded(key)) finish(undefined);
        }, 200);
      }));
    if (!invocation) {
      const when = queryEnded(key) ? "" : ` within ${timeoutMs / 1000} s`;
      throw new IngestNotStartedError(
        `No ingest of s3://${bucket}/${key} started${when}${describeQuery(key)}`,
        key,
      );
    }
    await invocation.done;
    return invocation;
  };
}

/** PutObject, as `aws s3 cp` / `aws s3api put-object --tagging` would. */
async function putLocalObject(
  s3: S3Client,
  bucket: string,
  key: string,
  body: string | Uint8Array,
  tags: Record<string, string> | undefined,
): Promise<void> {
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: body,
      ContentType: "text/csv",
      ...(tags ? { Tagging: new URLSearchParams(tags).toString() } : {}),
    }),
  );
}

async function getLocalText(
  s3: S3Client,
  bucket: string,
  key: string,
): Promise<string | undefined> {
  try {
    const response = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return await response.Body?.transformToString("utf-8");
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

// Local runs only: the SDK's notice that Node 20 support ends says nothing about the
// pipeline (Lambda runs Node 22), and there is no instance metadata service to ask.
const LOCAL_ONLY_ENV = {
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
  AWS_EC2_METADATA_DISABLED: "true",
};

// Settings of a real deployment a developer may have exported; any of them would send
// the local handlers to AWS (a secret ARN wins over MONGODB_URI). Unset while running.
const POINTS_ELSEWHERE = [
  "MONGODB_URI_SECRET_ARN",
  "RETRY_QUEUE_URL",
  "AWS_PROFILE",
  "AWS_SESSION_TOKEN",
  "AWS_ENDPOINT_URL",
];

// Every variable the handlers' configuration and clients get from the pipeline.
const PIPELINE_ENV_NAMES = [
  "AWS_REGION",
  "AWS_DEFAULT_REGION",
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_ENDPOINT_URL_S3",
  "AWS_ENDPOINT_URL_ATHENA",
  "AWS_ENDPOINT_URL_CLOUDWATCH",
  "S3_FORCE_PATH_STYLE",
  "RESULTS_BUCKET",
  "ATHENA_WORKGROUP",
  "ATHENA_DATABASE",
  "ATHENA_TABLE",
  "INGEST_PREFIXES",
  "MONGODB_URI",
  "MONGODB_DB_NAME",
] as const;
type PipelineEnvName = (typeof PIPELINE_ENV_NAMES)[number];

function snapshotEnv(names: readonly string[]): Record<string, string | undefined> {
  return Object.fromEntries(names.map((name) => [name, process.env[name]]));
}

function restoreEnv(snapshot: Record<string, string | undefined>): void {
  for (const [name, value] of Object.entries(snapshot)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
}
