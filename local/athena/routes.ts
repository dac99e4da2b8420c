import { getQueryResults } from "./operations/get-query-results";
import {
  batchGetQueryExecution,
  getQueryExecution,
  getQueryRuntimeStatistics,
  listQueryExecutions,
  stopQueryExecution,
} from "./operations/query-executions";
import { startQueryExecution } from "./operations/start-query-execution";
import { getWorkGroup } from "./operations/work-groups";
import type { AthenaState } from "./state";

/** An operation takes the parsed JSON body and returns the JSON answer. */
export type AthenaOperation = (
  state: AthenaState,
  input: Record<string, unknown>,
) => Promise<unknown> | unknown;

/** JSON 1.1 routes by `X-Amz-Target: AmazonAthena.<operation>`; these are the ones served. */
export const OPERATIONS: Readonly<Record<string, AthenaOperation>> = {
  GetQueryResults: getQueryResults,
  ListQueryExecutions: listQueryExecutions,
  StartQueryExecution: startQueryExecution,
  GetQueryExecution: getQueryExecution,
  GetQueryRuntimeStatistics: getQueryRuntimeStatistics,
  BatchGetQueryExecution: batchGetQueryExecution,
  StopQueryExecution: stopQueryExecution,
  GetWorkGroup: getWorkGroup,
};

export const TARGET_PREFIX = "AmazonAthena.";

/** The operation an `X-Amz-Target` names, or undefined when it is not Athena's or not served. */
export function findOperation(target: string): AthenaOperation | undefined {
  if (!target.startsWith(TARGET_PREFIX)) return undefined;
  const name = target.slice(TARGET_PREFIX.length);
  return Object.hasOwn(OPERATIONS, name) ? OPERATIONS[name] : undefined;
}
