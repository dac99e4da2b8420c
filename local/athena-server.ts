import { createHash, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { type DuckDBConnection, DuckDBInstance, type DuckDBValue } from "@duckdb/node-api";
import type { EventBridgeEvent } from "aws-lambda";
import { athenaCsvLine, parseAthenaCsv } from "./athena/csv";
import { athenaText, athenaTypeName, installAthenaFunctions } from "./athena/duckdb-engine";
import { S3ResultWriter } from "./athena/result-writer";
import {
  bindParameters,
  InvalidParameterError,
  ParameterCountError,
  statementTypeOf,
} from "./athena/sql-text";
import { listen } from "./listen";

/**
 * An Athena stand-in: Athena's JSON 1.1 API (StartQueryExecution, GetQueryExecution,
 * StopQueryExecution, GetWorkGroup; GetQueryResults and ListQueryExecutions for people
 * using the AWS CLI against it) over HTTP, so the unchanged start Lambda reaches it
 * through `AWS_ENDPOINT_URL_ATHENA`. Queries run in an in-memory DuckDB after
 * StartQueryExecution returns; results are written through the S3 API as Athena writes
 * them (`<id>.csv` in Athena's CSV dialect, plus `<id>.csv.metadata`).
 *
 * Where it knowingly differs from Athena:
 * - The engine is DuckDB, not Trino: beyond the macros in ./athena/duckdb-engine.ts
 *   (DATE_FORMAT, from_iso8601_*), Trino-only functions are missing, and failure reasons
 *   are DuckDB's messages (AthenaError type 1000) rather than Trino's.
 * - Parameters are bound by substituting each value, checked to be one self-contained
 *   expression, in parentheses; Trino binds them during analysis.
 * - The catalog is ignored and the database becomes DuckDB's search path; one in-memory
 *   database serves every work group.
 * - Every statement's result is written as CSV (Athena writes DDL output as .txt), the
 *   `.csv.metadata` is not Athena's protobuf, and Statistics are timings only (no bytes scanned).
 */

export type QueryState = "QUEUED" | "RUNNING" | "SUCCEEDED" | "FAILED" | "CANCELLED";

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

export interface AthenaServerOptions {
  port?: number;
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
}

export interface QueryExecutionRecord {
  queryExecutionId: string;
  workGroup: string;
  query: string;
  executionParameters?: string[];
  state: QueryState;
  stateChangeReason?: string;
  outputLocation: string;
  reusedPreviousResult: boolean;
  rows?: number;
}

export interface AthenaServer {
  endpoint: string;
  port: number;
  /** The DuckDB database queries run against (the `setup` connection), for seeding later. */
  db: DuckDBConnection;
  /** Resolves when no query is running and no state-change callback is in flight. */
  idle(): Promise<void>;
  /** Holds new queries in QUEUED until `resumeQueue()` (to observe or stop a queued query). */
  pauseQueue(): void;
  resumeQueue(): void;
  executions(): QueryExecutionRecord[];
  /** Errors thrown by `onStateChange`; they never affect the query. */
  readonly stateChangeErrors: unknown[];
  stop(): Promise<void>;
}

interface AthenaErrorInfo {
  ErrorCategory: number;
  ErrorType: number;
  Retryable: boolean;
  ErrorMessage: string;
}

interface Execution {
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

class ApiError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
    readonly athenaErrorCode = "INVALID_INPUT",
  ) {
    super(message);
  }
}

const TERMINAL: readonly QueryState[] = ["SUCCEEDED", "FAILED", "CANCELLED"];
const MAX_BODY = 1024 * 1024;

export async function startAthenaServer(options: AthenaServerOptions): Promise<AthenaServer> {
  const region = options.region ?? "us-east-1";
  const accountId = options.accountId ?? "000000000000";
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

  const executions = new Map<string, Execution>();
  const byToken = new Map<string, Execution>();
  const inFlight = new Set<Promise<void>>();
  const stateChangeErrors: unknown[] = [];
  const waiting: Execution[] = [];
  let paused = false;

  function track(promise: Promise<void>): void {
    inFlight.add(promise);
    void promise.then(() => inFlight.delete(promise));
  }

  function transition(execution: Execution, state: QueryState): void {
    const previousState = execution.sequence === 0 ? undefined : execution.state;
    execution.state = state;
    execution.sequence += 1;
    if (TERMINAL.includes(state)) execution.completed = new Date();
    if (!options.onStateChange) return;
    const event = stateChangeEvent(execution, previousState);
    const callback = options.onStateChange;
    track(
      new Promise<void>((resolve) => {
        setImmediate(() => {
          Promise.resolve()
            .then(() => callback(event))
            .catch((error: unknown) => {
              stateChangeErrors.push(error);
            })
            .finally(resolve);
        });
      }),
    );
  }

  function stateChangeEvent(
    execution: Execution,
    previousState: QueryState | undefined,
  ): AthenaQueryStateChangeEvent {
    return {
      version: "0",
      id: randomUUID(),
      "detail-type": "Athena Query State Change",
      source: "aws.athena",
      account: accountId,
      time: new Date().toISOString().replace(/\.\d{3}Z$/, "Z"),
      region,
      resources: [],
      detail: {
        versionId: "0",
        currentState: execution.state,
        ...(previousState === undefined ? {} : { previousState }),
        statementType: execution.statementType,
        queryExecutionId: execution.id,
        workgroupName: execution.workGroup,
        sequenceNumber: String(execution.sequence),
        ...(execution.error
          ? {
              athenaError: {
                errorCategory: execution.error.ErrorCategory,
                errorType: execution.error.ErrorType,
                errorMessage: execution.error.ErrorMessage,
                retryable: execution.error.Retryable,
              },
            }
          : {}),
      },
    };
  }

  function fail(execution: Execution, error: AthenaErrorInfo, reason = error.ErrorMessage): void {
    execution.error = error;
    execution.reason = reason;
    transition(execution, "FAILED");
  }

  function launch(execution: Execution): void {
    track(
      new Promise<void>((resolve) => {
        setImmediate(() => {
          void runQuery(execution).finally(resolve);
        });
      }),
    );
  }

  async function runQuery(execution: Execution): Promise<void> {
    if (execution.state !== "QUEUED") return; // Stopped while queued.
    execution.started = new Date();
    transition(execution, "RUNNING");
    let sql: string;
    try {
      sql = bindParameters(execution.query, execution.parameters ?? []);
    } catch (error) {
      if (error instanceof ParameterCountError || error instanceof InvalidParameterError) {
        const message = error.message;
        fail(
          execution,
          { ErrorCategory: 2, ErrorType: 1006, Retryable: false, ErrorMessage: message },
          `${error instanceof ParameterCountError ? "INVALID_PARAMETER_USAGE" : "SYNTAX_ERROR"}: line 1:1: ${message}`,
        );
        return;
      }
      throw error;
    }

    const connection = await instance.connect();
    execution.connection = connection;
    const writer = new S3ResultWriter(
      s3,
      execution.bucket,
      execution.key,
      "text/csv",
      options.multipartThresholdBytes ?? 0,
    );
    let stage: "engine" | "output" = "engine";
    try {
      if (execution.database !== undefined) {
        if (!/^[A-Za-z0-9_]+$/.test(execution.database)) {
          throw new Error(`SCHEMA_NOT_FOUND: Schema '${execution.database}' does not exist`);
        }
        await connection.run(`SET search_path = '${execution.database.toLowerCase()},main'`);
      }
      const statements = await connection.extractStatements(sql);
      if (statements.count !== 1) {
        throw new Error(`Only one sql statement is allowed. Got: ${statements.count}`);
      }
      const result = await connection.stream(sql);
      const names = result.columnNames();
      const types = result.columnTypes();
      const render = types.map((type) => (value: DuckDBValue) => athenaText(value, type));
      const typeNames = types.map((type) => athenaTypeName(type));
      stage = "output";
      await writer.write(athenaCsvLine(names));
      let rows = 0;
      stage = "engine";
      for await (const chunk of result.yieldRows()) {
        if (execution.cancelRequested) break;
        stage = "output";
        for (const row of chunk) {
          await writer.write(
            athenaCsvLine(row.map((value, index) => render[index]?.(value) ?? null)),
          );
          rows += 1;
        }
        stage = "engine";
      }
      if (execution.cancelRequested) throw new Error("cancelled");
      stage = "output";
      await writer.finish();
      await s3.send(
        new PutObjectCommand({
          Bucket: execution.bucket,
          Key: `${execution.key}.metadata`,
          Body: resultMetadata(names, typeNames),
          ContentType: "application/octet-stream",
        }),
      );
      execution.rows = rows;
      execution.bytes = writer.bytesWritten;
      execution.columns = names.map((name, index) => ({
        name,
        type: typeNames[index] ?? "varchar",
      }));
      if (execution.cancelRequested) throw new Error("cancelled");
      transition(execution, "SUCCEEDED");
    } catch (error) {
      await writer.abort();
      if (execution.cancelRequested) {
        execution.reason = "Query cancelled by user";
        if (!TERMINAL.includes(execution.state)) transition(execution, "CANCELLED");
        return;
      }
      const message = error instanceof Error ? error.message : String(error);
      if (stage === "output") {
        fail(execution, {
          ErrorCategory: 1,
          ErrorType: 401,
          Retryable: true,
          ErrorMessage: `Unable to write query results to s3://${execution.bucket}/${execution.key}: ${message}`,
        });
      } else {
        fail(execution, {
          ErrorCategory: 2,
          ErrorType: 1000,
          Retryable: false,
          ErrorMessage: message,
        });
      }
    } finally {
      execution.connection = undefined;
      connection.closeSync();
    }
  }

  // --- API operations ----------------------------------------------------------------

  function startQueryExecution(input: Record<string, unknown>): unknown {
    const query = requireString(input, "QueryString", 1, 262144);
    const workGroup = optionalString(input, "WorkGroup") ?? "primary";
    const settings = workGroups.get(workGroup);
    if (!settings)
      throw new ApiError("InvalidRequestException", `WorkGroup ${workGroup} is not found.`);
    const parameters = optionalStringArray(input, "ExecutionParameters");
    for (const value of parameters ?? []) {
      if (value.length < 1 || value.length > 1024) {
        throw new ApiError(
          "InvalidRequestException",
          "ExecutionParameters values must be between 1 and 1024 characters long.",
        );
      }
    }
    const context = optionalObject(input, "QueryExecutionContext");
    const database = context ? optionalString(context, "Database") : undefined;
    const catalog = (context ? optionalString(context, "Catalog") : undefined) ?? "AwsDataCatalog";
    const requestedLocation = optionalString(
      optionalObject(input, "ResultConfiguration") ?? {},
      "OutputLocation",
    );
    const outputLocation =
      settings.enforceConfiguration === false && requestedLocation
        ? requestedLocation
        : settings.outputLocation;
    const { bucket, prefix } = parseS3Location(outputLocation, workGroup);
    const reuseByAge = optionalObject(
      optionalObject(input, "ResultReuseConfiguration") ?? {},
      "ResultReuseByAgeConfiguration",
    );
    const reuse = {
      enabled: reuseByAge?.Enabled === true,
      maxAgeMinutes:
        typeof reuseByAge?.MaxAgeInMinutes === "number" ? reuseByAge.MaxAgeInMinutes : 60,
    };

    // The SDK fills in a random token when the caller gives none.
    const token = optionalString(input, "ClientRequestToken") ?? randomUUID();
    if (token.length < 32 || token.length > 128) {
      throw new ApiError(
        "InvalidRequestException",
        "ClientRequestToken must be between 32 and 128 characters long.",
      );
    }
    const fingerprint = createHash("sha256")
      .update(
        JSON.stringify([
          query,
          parameters ?? null,
          workGroup,
          database ?? null,
          catalog,
          outputLocation,
        ]),
      )
      .digest("hex");
    const known = byToken.get(token);
    if (known) {
      if (known.fingerprint !== fingerprint) {
        throw new ApiError(
          "InvalidRequestException",
          "Idempotent parameters do not match: the ClientRequestToken was used with a different request.",
        );
      }
      return { QueryExecutionId: known.id };
    }

    const id = randomUUID();
    const execution: Execution = {
      id,
      token,
      fingerprint,
      query,
      parameters,
      workGroup,
      database,
      catalog,
      statementType: statementTypeOf(query),
      bucket,
      key: `${prefix}${id}.csv`,
      reuse,
      state: "QUEUED",
      sequence: 0,
      submitted: new Date(),
      cancelRequested: false,
    };
    executions.set(id, execution);
    byToken.set(token, execution);

    const reusable = reuse.enabled ? findReusable(execution) : undefined;
    if (reusable) {
      execution.reusedFrom = reusable;
      execution.rows = reusable.rows;
      transition(execution, "QUEUED");
      execution.started = new Date();
      transition(execution, "RUNNING");
      transition(execution, "SUCCEEDED");
      return { QueryExecutionId: id };
    }

    transition(execution, "QUEUED");
    if (paused) waiting.push(execution);
    else launch(execution);
    return { QueryExecutionId: id };
  }

  /** A previous successful run of the same request, young enough to reuse (no new file is written). */
  function findReusable(execution: Execution): Execution | undefined {
    const oldest = Date.now() - execution.reuse.maxAgeMinutes * 60_000;
    const candidates = [...executions.values()].filter(
      (other) =>
        other !== execution &&
        other.state === "SUCCEEDED" &&
        other.reusedFrom === undefined &&
        other.workGroup === execution.workGroup &&
        other.query === execution.query &&
        JSON.stringify(other.parameters ?? null) === JSON.stringify(execution.parameters ?? null) &&
        (other.completed?.getTime() ?? 0) >= oldest,
    );
    return candidates.at(-1);
  }

  function getExecution(input: Record<string, unknown>): Execution {
    const id = requireString(input, "QueryExecutionId", 1, 128);
    const execution = executions.get(id);
    if (!execution)
      throw new ApiError("InvalidRequestException", `QueryExecution ${id} was not found`);
    return execution;
  }

  function describe(execution: Execution): Record<string, unknown> {
    const source = execution.reusedFrom ?? execution;
    const completed = execution.completed?.getTime();
    const started = execution.started?.getTime();
    const submitted = execution.submitted.getTime();
    return {
      QueryExecutionId: execution.id,
      Query: execution.query,
      StatementType: execution.statementType,
      SubstatementType: execution.statementType === "DML" ? "SELECT" : undefined,
      ResultConfiguration: { OutputLocation: `s3://${source.bucket}/${source.key}` },
      ResultReuseConfiguration: {
        ResultReuseByAgeConfiguration: {
          Enabled: execution.reuse.enabled,
          ...(execution.reuse.enabled ? { MaxAgeInMinutes: execution.reuse.maxAgeMinutes } : {}),
        },
      },
      QueryExecutionContext: {
        ...(execution.database === undefined ? {} : { Database: execution.database }),
        Catalog: execution.catalog,
      },
      Status: {
        State: execution.state,
        ...(execution.reason === undefined ? {} : { StateChangeReason: execution.reason }),
        SubmissionDateTime: submitted / 1000,
        ...(completed === undefined ? {} : { CompletionDateTime: completed / 1000 }),
        ...(execution.error ? { AthenaError: execution.error } : {}),
      },
      Statistics: {
        EngineExecutionTimeInMillis:
          started !== undefined && completed !== undefined ? completed - started : 0,
        DataScannedInBytes: 0,
        TotalExecutionTimeInMillis:
          completed === undefined ? Date.now() - submitted : completed - submitted,
        QueryQueueTimeInMillis:
          started === undefined ? Date.now() - submitted : started - submitted,
        ServicePreProcessingTimeInMillis: 0,
        QueryPlanningTimeInMillis: 0,
        ServiceProcessingTimeInMillis: 0,
        ResultReuseInformation: { ReusedPreviousResult: execution.reusedFrom !== undefined },
      },
      WorkGroup: execution.workGroup,
      EngineVersion: {
        SelectedEngineVersion: "AUTO",
        EffectiveEngineVersion: "Athena engine version 3",
      },
      ...(execution.parameters === undefined ? {} : { ExecutionParameters: execution.parameters }),
    };
  }

  function stopQueryExecution(input: Record<string, unknown>): unknown {
    const execution = getExecution(input);
    if (TERMINAL.includes(execution.state)) return {};
    execution.cancelRequested = true;
    if (execution.state === "QUEUED") {
      const index = waiting.indexOf(execution);
      if (index >= 0) waiting.splice(index, 1);
      execution.reason = "Query cancelled by user";
      transition(execution, "CANCELLED");
    } else {
      execution.connection?.interrupt();
    }
    return {};
  }

  function getWorkGroup(input: Record<string, unknown>): unknown {
    const name = requireString(input, "WorkGroup", 1, 128);
    const settings = workGroups.get(name);
    if (!settings) throw new ApiError("InvalidRequestException", `WorkGroup ${name} is not found.`);
    return {
      WorkGroup: {
        Name: name,
        State: "ENABLED",
        Configuration: {
          ResultConfiguration: { OutputLocation: settings.outputLocation },
          EnforceWorkGroupConfiguration: settings.enforceConfiguration !== false,
          PublishCloudWatchMetricsEnabled: true,
          RequesterPaysEnabled: false,
          EngineVersion: {
            SelectedEngineVersion: "AUTO",
            EffectiveEngineVersion: "Athena engine version 3",
          },
        },
        Description: "Local Athena stand-in",
        CreationTime: startedAt.getTime() / 1000,
      },
    };
  }

  /**
   * Pages through the written CSV (streamed, only the requested page kept), as Athena
   * serves results: the header is the first row of the first page, NULL has no value.
   */
  async function getQueryResults(input: Record<string, unknown>): Promise<unknown> {
    const execution = getExecution(input);
    if (execution.state !== "SUCCEEDED") {
      throw new ApiError(
        "InvalidRequestException",
        TERMINAL.includes(execution.state)
          ? `Query did not finish successfully. Final query state: ${execution.state}`
          : `Query has not yet finished. Current state: ${execution.state}`,
      );
    }
    const source = execution.reusedFrom ?? execution;
    const maxResults = typeof input.MaxResults === "number" ? input.MaxResults : 1000;
    if (!Number.isInteger(maxResults) || maxResults < 1 || maxResults > 1000) {
      throw new ApiError("InvalidRequestException", "MaxResults must be between 1 and 1000.");
    }
    const token = optionalString(input, "NextToken");
    const offset =
      token === undefined ? 0 : Number(Buffer.from(token, "base64url").toString("utf8"));
    if (!Number.isInteger(offset) || offset < 0) {
      throw new ApiError("InvalidRequestException", "NextToken is not valid.");
    }
    const object = await s3.send(new GetObjectCommand({ Bucket: source.bucket, Key: source.key }));
    const body = object.Body as (AsyncIterable<Uint8Array> & { destroy?: () => void }) | undefined;
    const rows: (string | null)[][] = [];
    let index = 0;
    let more = false;
    if (body) {
      const decoder = new TextDecoder();
      const text = (async function* () {
        for await (const chunk of body) yield decoder.decode(chunk, { stream: true });
        yield decoder.decode();
      })();
      for await (const row of parseAthenaCsv(text)) {
        if (index >= offset + maxResults) {
          more = true;
          break;
        }
        if (index >= offset) rows.push(row);
        index += 1;
      }
      body.destroy?.();
    }
    return {
      UpdateCount: 0,
      ResultSet: {
        Rows: rows.map((row) => ({
          Data: row.map((value) => (value === null ? {} : { VarCharValue: value })),
        })),
        ResultSetMetadata: {
          ColumnInfo: (source.columns ?? []).map((column) => ({
            CatalogName: "hive",
            SchemaName: "",
            TableName: "",
            Name: column.name,
            Label: column.name,
            Type: column.type,
            Precision: 0,
            Scale: 0,
            Nullable: "UNKNOWN",
            CaseSensitive: column.type === "varchar",
          })),
        },
      },
      ...(more
        ? { NextToken: Buffer.from(String(offset + maxResults)).toString("base64url") }
        : {}),
    };
  }

  function listQueryExecutions(input: Record<string, unknown>): unknown {
    const workGroup = optionalString(input, "WorkGroup") ?? "primary";
    const maxResults = typeof input.MaxResults === "number" ? input.MaxResults : 50;
    const token = optionalString(input, "NextToken");
    const offset =
      token === undefined ? 0 : Number(Buffer.from(token, "base64url").toString("utf8"));
    const ids = [...executions.values()]
      .filter((execution) => execution.workGroup === workGroup)
      .reverse()
      .map((execution) => execution.id);
    const page = ids.slice(offset, offset + maxResults);
    return {
      QueryExecutionIds: page,
      ...(offset + maxResults < ids.length
        ? { NextToken: Buffer.from(String(offset + maxResults)).toString("base64url") }
        : {}),
    };
  }

  const operations: Record<string, (input: Record<string, unknown>) => unknown> = {
    GetQueryResults: getQueryResults,
    ListQueryExecutions: listQueryExecutions,
    StartQueryExecution: startQueryExecution,
    GetQueryExecution: (input) => ({ QueryExecution: describe(getExecution(input)) }),
    BatchGetQueryExecution: (input) => {
      const ids = optionalStringArray(input, "QueryExecutionIds") ?? [];
      return {
        QueryExecutions: ids.flatMap((id) => {
          const execution = executions.get(id);
          return execution ? [describe(execution)] : [];
        }),
        UnprocessedQueryExecutionIds: ids
          .filter((id) => !executions.has(id))
          .map((id) => ({
            QueryExecutionId: id,
            ErrorCode: "INVALID_INPUT",
            ErrorMessage: "not found",
          })),
      };
    },
    StopQueryExecution: stopQueryExecution,
    GetWorkGroup: getWorkGroup,
  };

  const startedAt = new Date();
  const server: Server = createServer((req, res) => {
    void handle(req, res);
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomUUID();
    try {
      const target = String(req.headers["x-amz-target"] ?? "");
      const body = await readBody(req);
      if (req.method !== "POST" || !target.startsWith("AmazonAthena.")) {
        throw new ApiError(
          "UnknownOperationException",
          "Only Athena JSON 1.1 requests are served here.",
        );
      }
      const operation = operations[target.slice("AmazonAthena.".length)];
      if (!operation) {
        throw new ApiError(
          "UnknownOperationException",
          `Operation ${target} is not supported by the stand-in.`,
        );
      }
      let input: unknown;
      try {
        input = body.length === 0 ? {} : JSON.parse(body);
      } catch {
        throw new ApiError("SerializationException", "Request body is not valid JSON.");
      }
      if (typeof input !== "object" || input === null || Array.isArray(input)) {
        throw new ApiError("SerializationException", "Request body must be a JSON object.");
      }
      sendJson(res, 200, await operation(input as Record<string, unknown>), requestId);
    } catch (error) {
      const apiError =
        error instanceof ApiError
          ? error
          : new ApiError(
              "InternalServerException",
              error instanceof Error ? error.message : String(error),
              500,
            );
      res.setHeader("x-amzn-ErrorType", apiError.type);
      sendJson(
        res,
        apiError.status,
        {
          __type: apiError.type,
          Message: apiError.message,
          ...(apiError.type === "InvalidRequestException"
            ? { AthenaErrorCode: apiError.athenaErrorCode }
            : {}),
        },
        requestId,
      );
    }
  }

  const port = await listen(server, { port: options.port });

  async function idle(): Promise<void> {
    while (inFlight.size > 0) await Promise.all([...inFlight]);
  }

  let stopped: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    db,
    idle,
    pauseQueue() {
      paused = true;
    },
    resumeQueue() {
      paused = false;
      for (const execution of waiting.splice(0)) launch(execution);
    },
    executions: () =>
      [...executions.values()].map((execution) => ({
        queryExecutionId: execution.id,
        workGroup: execution.workGroup,
        query: execution.query,
        ...(execution.parameters === undefined
          ? {}
          : { executionParameters: [...execution.parameters] }),
        state: execution.state,
        ...(execution.reason === undefined ? {} : { stateChangeReason: execution.reason }),
        outputLocation: `s3://${(execution.reusedFrom ?? execution).bucket}/${(execution.reusedFrom ?? execution).key}`,
        reusedPreviousResult: execution.reusedFrom !== undefined,
        ...(execution.rows === undefined ? {} : { rows: execution.rows }),
      })),
    stateChangeErrors,
    stop() {
      stopped ??= (async () => {
        // Queries held by pauseQueue() are cancelled rather than waited for.
        for (const execution of waiting.splice(0)) {
          execution.reason = "Query cancelled by user";
          transition(execution, "CANCELLED");
        }
        await idle();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        db.closeSync();
        instance.closeSync();
        if (ownsS3) s3.destroy();
      })();
      return stopped;
    },
  };
}

// --- helpers -------------------------------------------------------------------------

function parseS3Location(location: string, workGroup: string): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([^/]+)\/?(.*)$/.exec(location);
  if (!match?.[1]) {
    throw new Error(
      `Work group ${workGroup}: output location must be s3://bucket/prefix/, got ${location}`,
    );
  }
  const path = match[2] ?? "";
  return { bucket: match[1], prefix: path === "" || path.endsWith("/") ? path : `${path}/` };
}

/**
 * Athena's `.csv.metadata` is a binary (protobuf) description of the result columns
 * that only Athena's own readers use. This writes a small binary record with the same
 * information: nothing should parse it, it only has to exist beside the CSV.
 */
function resultMetadata(names: string[], types: string[]): Buffer {
  const json = Buffer.from(
    JSON.stringify({ columns: names.map((name, i) => ({ name, type: types[i] })) }),
  );
  const header = Buffer.alloc(8);
  header.write("ATHM", 0, "latin1");
  header.writeUInt32BE(json.length, 4);
  return Buffer.concat([header, json]);
}

function requireString(
  input: Record<string, unknown>,
  name: string,
  min: number,
  max: number,
): string {
  const value = input[name];
  if (typeof value !== "string" || value.length < min || value.length > max) {
    throw new ApiError(
      "InvalidRequestException",
      `${name} is required and must be a string of ${min} to ${max} characters.`,
    );
  }
  return value;
}

function optionalString(input: Record<string, unknown>, name: string): string | undefined {
  const value = input[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string")
    throw new ApiError("InvalidRequestException", `${name} must be a string.`);
  return value;
}

function optionalStringArray(input: Record<string, unknown>, name: string): string[] | undefined {
  const value = input[name];
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.some((item) => typeof item !== "string")) {
    throw new ApiError("InvalidRequestException", `${name} must be a list of strings.`);
  }
  return value as string[];
}

function optionalObject(
  input: Record<string, unknown>,
  name: string,
): Record<string, unknown> | undefined {
  const value = input[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new ApiError("InvalidRequestException", `${name} must be an object.`);
  }
  return value as Record<string, unknown>;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new ApiError("InvalidRequestException", "Request body too large.");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function sendJson(res: ServerResponse, status: number, body: unknown, requestId: string): void {
  const payload = Buffer.from(JSON.stringify(body), "utf8");
  res.statusCode = status;
  res.setHeader("Content-Type", "application/x-amz-json-1.1");
  res.setHeader("Content-Length", String(payload.length));
  res.setHeader("x-amzn-RequestId", requestId);
  res.end(payload);
}
