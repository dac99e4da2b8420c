import { S3Client } from "@aws-sdk/client-s3";
import { type DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import type { EventBridgeEvent } from "aws-lambda";
import { installAthenaFunctions } from "./duckdb-engine";
import type { AthenaErrorInfo } from "./errors";
import { parseS3Location } from "./input";

export type QueryState = "QUEUED" | "RUNNING" | "SUCCEEDED" | "FAILED" | "CANCELLED";

export const TERMINAL: readonly QueryState[] = ["SUCCEEDED", "FAILED", "CANCELLED"];

export interface AthenaQueryStateChangeDetail {
  versionId: string;
  currentState: QueryState;
  previousState?: QueryState;
  statementType: string;
  queryExecutionId: string;
  workgroupName: string;
  sequenceNumber: string;
  athenaError?: {
    errorCategory: number;
    errorType: number;
    errorMessage: string;
    retryable: boolean;
  };
}

/** The EventBridge event Athena emits on every state change. */
export type AthenaQueryStateChangeEvent = EventBridgeEvent<
  "Athena Query State Change",
  AthenaQueryStateChangeDetail
>;

export interface WorkGroupSettings {
  /** `s3://bucket/prefix/`: where results go. */
  outputLocation: string;
  /** Like a workgroup that enforces its configuration (the default): the request's OutputLocation is ignored. */
  enforceConfiguration?: boolean;
}

export interface AthenaStateOptions {
  region?: string;
  /** Where results are written: an S3Client, or the endpoint of an S3 (stand-in) to reach path-style. */
  s3: S3Client | { endpoint: string; region?: string };
  workGroups: Record<string, WorkGroupSettings>;
  /** Creates and seeds tables; runs after the `ad_tracking` schema and the Athena functions exist. */
  setup?: (db: DuckDBConnection) => Promise<void>;
  /** Called after every state change, asynchronously, like EventBridge delivering Athena's events. */
  onStateChange?: (event: AthenaQueryStateChangeEvent) => Promise<unknown> | unknown;
  /**
   * Results larger than this go up by multipart upload. Default 0: always multipart, as
   * Athena does (S3 then reports `ObjectCreated:CompleteMultipartUpload`).
   */
  multipartThresholdBytes?: number;
  accountId?: string;
  /**
   * What GetQueryRuntimeStatistics reports as `OutputRows`, given the rows the query
   * really returned; default the true count. Tests use it to make a result look short.
   */
  reportOutputRows?: (queryExecutionId: string, rows: number) => number;
}

/** One query as the stand-in tracks it from StartQueryExecution on. */
export interface Execution {
  id: string;
  token: string;
  fingerprint: string;
  query: string;
  parameters: string[] | undefined;
  workGroup: string;
  database: string | undefined;
  catalog: string;
  statementType: "DDL" | "DML" | "UTILITY";
  bucket: string;
  key: string;
  reuse: { enabled: boolean; maxAgeMinutes: number };
  state: QueryState;
  sequence: number;
  reason?: string;
  error?: AthenaErrorInfo;
  submitted: Date;
  started?: Date;
  completed?: Date;
  reusedFrom?: Execution;
  rows?: number;
  bytes?: number;
  columns?: { name: string; type: string }[];
  connection?: DuckDBConnection;
  cancelRequested: boolean;
}

/** Everything the Athena stand-in knows; every operation reads and changes it through here. */
export interface AthenaState {
  readonly region: string;
  readonly accountId: string;
  readonly s3: S3Client;
  /** The S3 client is destroyed on stop only when the server made it. */
  readonly ownsS3: boolean;
  readonly workGroups: Map<string, WorkGroupSettings>;
  readonly multipartThresholdBytes: number;
  readonly onStateChange: AthenaStateOptions["onStateChange"];
  readonly reportOutputRows: NonNullable<AthenaStateOptions["reportOutputRows"]>;
  readonly instance: DuckDBInstance;
  /** The `setup` connection; each query runs on a connection of its own. */
  readonly db: DuckDBConnection;
  /** In submission order. */
  readonly executions: Map<string, Execution>;
  readonly byToken: Map<string, Execution>;
  /** Queries running and state-change callbacks being delivered. */
  readonly inFlight: Set<Promise<void>>;
  readonly stateChangeErrors: unknown[];
  /** Queries held in QUEUED while the queue is paused. */
  readonly waiting: Execution[];
  paused: boolean;
  /** Reported as every work group's CreationTime. */
  readonly startedAt: Date;
}

export async function createAthenaState(options: AthenaStateOptions): Promise<AthenaState> {
  const region = options.region ?? "us-east-1";
  const ownsS3 = !(options.s3 instanceof S3Client);
  const s3 =
    options.s3 instanceof S3Client
      ? options.s3
      : new S3Client({
          endpoint: options.s3.endpoint,
          region: options.s3.region ?? region,
          forcePathStyle: true,
          credentials: { accessKeyId: "test", secretAccessKey: "test" },
        });
  const workGroups = new Map(Object.entries(options.workGroups));
  for (const [name, settings] of workGroups) parseS3Location(settings.outputLocation, name);

  const instance = await DuckDBInstance.create(":memory:");
  const db = await instance.connect();
  await db.run("CREATE SCHEMA IF NOT EXISTS ad_tracking");
  await installAthenaFunctions(db);
  await options.setup?.(db);

  return {
    region,
    accountId: options.accountId ?? "000000000000",
    s3,
    ownsS3,
    workGroups,
    multipartThresholdBytes: options.multipartThresholdBytes ?? 0,
    onStateChange: options.onStateChange,
    reportOutputRows: options.reportOutputRows ?? ((_, rows) => rows),
    instance,
    db,
    executions: new Map(),
    byToken: new Map(),
    inFlight: new Set(),
    stateChangeErrors: [],
    waiting: [],
    paused: false,
    startedAt: new Date(),
  };
}

/** Counts `promise` as in flight until it settles, for `idle()`. */
export function track(state: AthenaState, promise: Promise<void>): void {
  state.inFlight.add(promise);
  void promise.then(() => state.inFlight.delete(promise));
}

export async function waitForIdle(state: AthenaState): Promise<void> {
  while (state.inFlight.size > 0) await Promise.all([...state.inFlight]);
}
