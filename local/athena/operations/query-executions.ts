import { ApiError } from "../errors";
import {
  nextTokenOf,
  optionalString,
  optionalStringArray,
  pageOffsetOf,
  requireString,
} from "../input";
import { type AthenaState, type Execution, TERMINAL } from "../state";
import { CANCELLED_BY_USER, transition } from "../transitions";

export function findExecution(state: AthenaState, input: Record<string, unknown>): Execution {
  const id = requireString(input, "QueryExecutionId", 1, 128);
  const execution = state.executions.get(id);
  if (!execution)
    throw new ApiError("InvalidRequestException", `QueryExecution ${id} was not found`);
  return execution;
}

export function getQueryExecution(state: AthenaState, input: Record<string, unknown>): unknown {
  return { QueryExecution: describeExecution(findExecution(state, input)) };
}

export function batchGetQueryExecution(
  state: AthenaState,
  input: Record<string, unknown>,
): unknown {
  const ids = optionalStringArray(input, "QueryExecutionIds") ?? [];
  return {
    QueryExecutions: ids.flatMap((id) => {
      const execution = state.executions.get(id);
      return execution ? [describeExecution(execution)] : [];
    }),
    UnprocessedQueryExecutionIds: ids
      .filter((id) => !state.executions.has(id))
      .map((id) => ({
        QueryExecutionId: id,
        ErrorCode: "INVALID_INPUT",
        ErrorMessage: "not found",
      })),
  };
}

export function stopQueryExecution(state: AthenaState, input: Record<string, unknown>): unknown {
  const execution = findExecution(state, input);
  if (TERMINAL.includes(execution.state)) return {};
  execution.cancelRequested = true;
  if (execution.state === "QUEUED") {
    const index = state.waiting.indexOf(execution);
    if (index >= 0) state.waiting.splice(index, 1);
    execution.reason = CANCELLED_BY_USER;
    transition(state, execution, "CANCELLED");
  } else {
    execution.connection?.interrupt();
  }
  return {};
}

export function listQueryExecutions(state: AthenaState, input: Record<string, unknown>): unknown {
  const workGroup = optionalString(input, "WorkGroup") ?? "primary";
  const maxResults = typeof input.MaxResults === "number" ? input.MaxResults : 50;
  const offset = pageOffsetOf(optionalString(input, "NextToken"));
  const ids = [...state.executions.values()]
    .filter((execution) => execution.workGroup === workGroup)
    .reverse()
    .map((execution) => execution.id);
  const page = ids.slice(offset, offset + maxResults);
  return {
    QueryExecutionIds: page,
    ...(offset + maxResults < ids.length ? { NextToken: nextTokenOf(offset + maxResults) } : {}),
  };
}

/** The QueryExecution structure of GetQueryExecution and BatchGetQueryExecution. */
function describeExecution(execution: Execution): Record<string, unknown> {
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
      QueryQueueTimeInMillis: started === undefined ? Date.now() - submitted : started - submitted,
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

/**
 * Runtime statistics once a query has SUCCEEDED or FAILED, as Athena answers them; only
 * `Rows` is filled (`OutputRows`: the result's data rows, the header not counted).
 */
export function getQueryRuntimeStatistics(
  state: AthenaState,
  input: Record<string, unknown>,
): unknown {
  const execution = findExecution(state, input);
  if (execution.state !== "SUCCEEDED" && execution.state !== "FAILED") {
    throw new ApiError(
      "InvalidRequestException",
      `Query ${execution.id} is ${execution.state}: statistics are available once it SUCCEEDED or FAILED`,
    );
  }
  const rows = (execution.reusedFrom ?? execution).rows ?? 0;
  return {
    QueryRuntimeStatistics: {
      Rows: {
        OutputRows: state.reportOutputRows(execution.id, rows),
        OutputBytes: execution.bytes ?? 0,
      },
    },
  };
}
