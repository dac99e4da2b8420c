/** A JSON 1.1 error answer: `__type` is `type`, and the SDK names the exception after it. */
export class ApiError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
    readonly athenaErrorCode = "INVALID_INPUT",
  ) {
    super(message);
  }
}

/** Why a query failed, as Athena reports it in `Status.AthenaError`. */
export interface AthenaErrorInfo {
  ErrorCategory: number;
  ErrorType: number;
  Retryable: boolean;
  ErrorMessage: string;
}
