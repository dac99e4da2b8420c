import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { DuckDBConnection } from "@duckdb/node-api";
import { ApiError } from "./athena/errors";
import { parseInput, readBody, sendApiError, sendJson } from "./athena/http";
import { findOperation, TARGET_PREFIX } from "./athena/routes";
import { launchQuery } from "./athena/run-query";
import {
  type AthenaQueryStateChangeDetail,
  type AthenaQueryStateChangeEvent,
  type AthenaState,
  type AthenaStateOptions,
  createAthenaState,
  type Execution,
  type QueryState,
  type WorkGroupSettings,
  waitForIdle,
} from "./athena/state";
import { CANCELLED_BY_USER, transition } from "./athena/transitions";
import { listen } from "./listen";

export type {
  AthenaQueryStateChangeDetail,
  AthenaQueryStateChangeEvent,
  QueryState,
  WorkGroupSettings,
};

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

export interface AthenaServerOptions extends AthenaStateOptions {
  port?: number;
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

export async function startAthenaServer(options: AthenaServerOptions): Promise<AthenaServer> {
  const state = await createAthenaState(options);
  const server = createServer((req, res) => {
    void handleRequest(state, req, res);
  });
  const port = await listen(server, { port: options.port });

  const idle = () => waitForIdle(state);
  let stopped: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    db: state.db,
    idle,
    pauseQueue() {
      state.paused = true;
    },
    resumeQueue() {
      state.paused = false;
      for (const execution of state.waiting.splice(0)) launchQuery(state, execution);
    },
    executions: () => [...state.executions.values()].map(toExecutionRecord),
    stateChangeErrors: state.stateChangeErrors,
    stop() {
      stopped ??= (async () => {
        // Queries held by pauseQueue() are cancelled rather than waited for.
        for (const execution of state.waiting.splice(0)) {
          execution.reason = CANCELLED_BY_USER;
          transition(state, execution, "CANCELLED");
        }
        await idle();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        state.db.closeSync();
        state.instance.closeSync();
        if (state.ownsS3) state.s3.destroy();
      })();
      return stopped;
    },
  };
}

async function handleRequest(
  state: AthenaState,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const requestId = randomUUID();
  try {
    const target = String(req.headers["x-amz-target"] ?? "");
    const body = await readBody(req);
    if (req.method !== "POST" || !target.startsWith(TARGET_PREFIX)) {
      throw new ApiError(
        "UnknownOperationException",
        "Only Athena JSON 1.1 requests are served here.",
      );
    }
    const operation = findOperation(target);
    if (!operation) {
      throw new ApiError(
        "UnknownOperationException",
        `Operation ${target} is not supported by the stand-in.`,
      );
    }
    sendJson(res, 200, await operation(state, parseInput(body)), requestId);
  } catch (error) {
    sendApiError(res, error, requestId);
  }
}

function toExecutionRecord(execution: Execution): QueryExecutionRecord {
  const source = execution.reusedFrom ?? execution;
  return {
    queryExecutionId: execution.id,
    workGroup: execution.workGroup,
    query: execution.query,
    ...(execution.parameters === undefined
      ? {}
      : { executionParameters: [...execution.parameters] }),
    state: execution.state,
    ...(execution.reason === undefined ? {} : { stateChangeReason: execution.reason }),
    outputLocation: `s3://${source.bucket}/${source.key}`,
    reusedPreviousResult: execution.reusedFrom !== undefined,
    ...(execution.rows === undefined ? {} : { rows: execution.rows }),
  };
}
