import { PutObjectCommand } from "@aws-sdk/client-s3";
import type { DuckDBConnection, DuckDBValue } from "@duckdb/node-api";
import { athenaCsvLine } from "./csv";
import { athenaText, athenaTypeName } from "./duckdb-engine";
import { S3ResultWriter } from "./result-writer";
import { bindParameters, InvalidParameterError, ParameterCountError } from "./sql-text";
import { type AthenaState, type Execution, TERMINAL, track } from "./state";
import { CANCELLED_BY_USER, failExecution, transition } from "./transitions";

/** Which side a failure came from: DuckDB (the query's fault) or S3 (retryable). */
type Stage = "engine" | "output";

/** Runs the query on a later tick, so StartQueryExecution answers first. */
export function launchQuery(state: AthenaState, execution: Execution): void {
  track(
    state,
    new Promise<void>((resolve) => {
      setImmediate(() => {
        void runQuery(state, execution).finally(resolve);
      });
    }),
  );
}

/** Runs the query now, or holds it while the queue is paused. */
export function enqueueQuery(state: AthenaState, execution: Execution): void {
  if (state.paused) state.waiting.push(execution);
  else launchQuery(state, execution);
}

async function runQuery(state: AthenaState, execution: Execution): Promise<void> {
  if (execution.state !== "QUEUED") return; // Stopped while queued.
  execution.started = new Date();
  transition(state, execution, "RUNNING");
  const sql = bindOrFail(state, execution);
  if (sql === undefined) return;

  const connection = await state.instance.connect();
  execution.connection = connection;
  const writer = new S3ResultWriter(
    state.s3,
    execution.bucket,
    execution.key,
    "text/csv",
    state.multipartThresholdBytes,
  );
  const progress: { stage: Stage } = { stage: "engine" };
  try {
    await writeResults(state, execution, connection, writer, sql, progress);
    if (execution.cancelRequested) throw new Error("cancelled");
    transition(state, execution, "SUCCEEDED");
  } catch (error) {
    await writer.abort();
    settleFailure(state, execution, error, progress.stage);
  } finally {
    execution.connection = undefined;
    connection.closeSync();
  }
}

/** The SQL with its parameters bound, or undefined when they do not bind (the query failed). */
function bindOrFail(state: AthenaState, execution: Execution): string | undefined {
  try {
    return bindParameters(execution.query, execution.parameters ?? []);
  } catch (error) {
    if (error instanceof ParameterCountError || error instanceof InvalidParameterError) {
      const message = error.message;
      failExecution(
        state,
        execution,
        { ErrorCategory: 2, ErrorType: 1006, Retryable: false, ErrorMessage: message },
        `${error instanceof ParameterCountError ? "INVALID_PARAMETER_USAGE" : "SYNTAX_ERROR"}: line 1:1: ${message}`,
      );
      return undefined;
    }
    throw error;
  }
}

/** Streams the result as Athena's CSV, then its `.metadata`; `progress` says which side is busy. */
async function writeResults(
  state: AthenaState,
  execution: Execution,
  connection: DuckDBConnection,
  writer: S3ResultWriter,
  sql: string,
  progress: { stage: Stage },
): Promise<void> {
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
  progress.stage = "output";
  await writer.write(athenaCsvLine(names));
  let rows = 0;
  progress.stage = "engine";
  for await (const chunk of result.yieldRows()) {
    if (execution.cancelRequested) break;
    progress.stage = "output";
    for (const row of chunk) {
      await writer.write(athenaCsvLine(row.map((value, index) => render[index]?.(value) ?? null)));
      rows += 1;
    }
    progress.stage = "engine";
  }
  if (execution.cancelRequested) throw new Error("cancelled");
  progress.stage = "output";
  await writer.finish();
  await state.s3.send(
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
}

function settleFailure(
  state: AthenaState,
  execution: Execution,
  error: unknown,
  stage: Stage,
): void {
  if (execution.cancelRequested) {
    execution.reason = CANCELLED_BY_USER;
    if (!TERMINAL.includes(execution.state)) transition(state, execution, "CANCELLED");
    return;
  }
  const message = error instanceof Error ? error.message : String(error);
  if (stage === "output") {
    failExecution(state, execution, {
      ErrorCategory: 1,
      ErrorType: 401,
      Retryable: true,
      ErrorMessage: `Unable to write query results to s3://${execution.bucket}/${execution.key}: ${message}`,
    });
  } else {
    failExecution(state, execution, {
      ErrorCategory: 2,
      ErrorType: 1000,
      Retryable: false,
      ErrorMessage: message,
    });
  }
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
