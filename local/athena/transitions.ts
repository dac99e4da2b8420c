import { randomUUID } from "node:crypto";
import type { AthenaErrorInfo } from "./errors";
import {
  type AthenaQueryStateChangeEvent,
  type AthenaState,
  type Execution,
  type QueryState,
  TERMINAL,
  track,
} from "./state";

export const CANCELLED_BY_USER = "Query cancelled by user";

/** Moves the query on and tells `onStateChange` on a later tick, as EventBridge would. */
export function transition(state: AthenaState, execution: Execution, next: QueryState): void {
  const previousState = execution.sequence === 0 ? undefined : execution.state;
  execution.state = next;
  execution.sequence += 1;
  if (TERMINAL.includes(next)) execution.completed = new Date();
  if (!state.onStateChange) return;
  const event = stateChangeEvent(state, execution, previousState);
  const callback = state.onStateChange;
  track(
    state,
    new Promise<void>((resolve) => {
      setImmediate(() => {
        Promise.resolve()
          .then(() => callback(event))
          .catch((error: unknown) => {
            state.stateChangeErrors.push(error);
          })
          .finally(resolve);
      });
    }),
  );
}

export function failExecution(
  state: AthenaState,
  execution: Execution,
  error: AthenaErrorInfo,
  reason = error.ErrorMessage,
): void {
  execution.error = error;
  execution.reason = reason;
  transition(state, execution, "FAILED");
}

function stateChangeEvent(
  state: AthenaState,
  execution: Execution,
  previousState: QueryState | undefined,
): AthenaQueryStateChangeEvent {
  return {
    version: "0",
    id: randomUUID(),
    "detail-type": "Athena Query State Change",
    source: "aws.athena",
    account: state.accountId,
    time: new Date().toISOString().replace(/\.\d{3}Z$/, "Z"),
    region: state.region,
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
