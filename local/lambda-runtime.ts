import { randomUUID } from "node:crypto";
import type { Context, ScheduledEvent } from "aws-lambda";
import { redactSecrets } from "../handlers/shared/redact";

/**
 * How the local pipeline calls the handlers: the way Lambda does, in process.
 * A context shaped like Lambda's, and the asynchronous invocation S3 uses
 * (a throw is retried twice, then the event goes to the on-failure destination).
 */

export const LOCAL_ACCOUNT_ID = "000000000000";
export const LOCAL_REGION = "us-east-1";

// The deployed names (infra's default prefix), so local logs read like the real ones.
export const START_FUNCTION_NAME = "empowerlocal-tracking-sync-start";
export const INGEST_FUNCTION_NAME = "empowerlocal-tracking-sync-ingest";
export const SCHEDULE_RULE_NAME = "empowerlocal-tracking-sync-nightly";

/** An EventBridge scheduled event, shaped exactly like the one the nightly rule sends. */
export function scheduledEvent(options: { id?: string; time?: Date } = {}): ScheduledEvent {
  const time = options.time ?? new Date();
  return {
    version: "0",
    id: options.id ?? randomUUID(),
    "detail-type": "Scheduled Event",
    source: "aws.events",
    account: LOCAL_ACCOUNT_ID,
    // EventBridge sends the scheduled time: whole seconds, UTC.
    time: `${time.toISOString().slice(0, 19)}Z`,
    region: LOCAL_REGION,
    resources: [`arn:aws:events:${LOCAL_REGION}:${LOCAL_ACCOUNT_ID}:rule/${SCHEDULE_RULE_NAME}`],
    detail: {},
  };
}

export interface LambdaContextOptions {
  functionName: string;
  /** Lambda keeps the request id across the retries of one asynchronous event. */
  awsRequestId?: string;
  timeoutMs?: number;
  memoryLimitInMB?: number;
}

export function createLambdaContext(options: LambdaContextOptions): Context {
  const deadline = Date.now() + (options.timeoutMs ?? 300_000);
  const { functionName } = options;
  const day = new Date().toISOString().slice(0, 10).replaceAll("-", "/");
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:${LOCAL_REGION}:${LOCAL_ACCOUNT_ID}:function:${functionName}`,
    memoryLimitInMB: String(options.memoryLimitInMB ?? 512),
    awsRequestId: options.awsRequestId ?? randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: `${day}/[$LATEST]${randomUUID().replaceAll("-", "")}`,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

/** One attempt of an asynchronous invocation. */
export interface InvocationAttempt {
  attempt: number;
  startedAt: string;
  durationMs: number;
  error?: { errorType: string; errorMessage: string };
}

/** What Lambda sends to an on-failure destination when the retries are used up. */
export interface OnFailureRecord {
  version: "1.0";
  timestamp: string;
  requestContext: {
    requestId: string;
    functionArn: string;
    condition: "RetriesExhausted";
    approximateInvokeCount: number;
  };
  requestPayload: unknown;
  responseContext: { statusCode: 200; executedVersion: "$LATEST"; functionError: "Unhandled" };
  responsePayload: { errorType: string; errorMessage: string };
}

export interface AsyncInvocation<TEvent, TResult> {
  requestId: string;
  event: TEvent;
  attempts: InvocationAttempt[];
  /** The handler's return value when an attempt succeeded. */
  result?: TResult;
  /** Set when every attempt failed. */
  onFailure?: OnFailureRecord;
  /** Settles when the invocation is finished, successfully or not. Never rejects. */
  done: Promise<void>;
}

export interface AsyncInvokerOptions<TEvent, TResult> {
  functionName: string;
  handler: (event: TEvent, context: Context) => Promise<TResult>;
  /**
   * Waits before retry 1 and 2. Lambda waits about 1 and 2 minutes; locally a
   * fraction of a second keeps the same sequence without the wait.
   */
  retryDelaysMs?: readonly [number, number];
  onInvocation?: (invocation: AsyncInvocation<TEvent, TResult>) => void;
  onFailure?: (record: OnFailureRecord) => void;
}

const DEFAULT_RETRY_DELAYS_MS = [250, 500] as const;

/**
 * Lambda's asynchronous invocation: returns at once; the handler runs, and a throw is
 * retried twice with the same event and request id, then recorded as an on-failure.
 */
export function createAsyncInvoker<TEvent, TResult>(
  options: AsyncInvokerOptions<TEvent, TResult>,
): (event: TEvent) => AsyncInvocation<TEvent, TResult> {
  const delays = options.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
  return (event) => {
    const requestId = randomUUID();
    const invocation: AsyncInvocation<TEvent, TResult> = {
      requestId,
      event,
      attempts: [],
      done: Promise.resolve(),
    };
    const run = async () => {
      for (let attempt = 1; attempt <= 1 + delays.length; attempt++) {
        if (attempt > 1) await sleep(delays[attempt - 2] ?? 0);
        const started = Date.now();
        const record: InvocationAttempt = {
          attempt,
          startedAt: new Date(started).toISOString(),
          durationMs: 0,
        };
        invocation.attempts.push(record);
        try {
          const context = createLambdaContext({
            functionName: options.functionName,
            awsRequestId: requestId,
          });
          invocation.result = await options.handler(event, context);
          record.durationMs = Date.now() - started;
          return;
        } catch (error) {
          record.durationMs = Date.now() - started;
          record.error = describeError(error);
        }
      }
      const last = invocation.attempts.at(-1)?.error ?? describeError(undefined);
      invocation.onFailure = {
        version: "1.0",
        timestamp: new Date().toISOString(),
        requestContext: {
          requestId,
          functionArn: `arn:aws:lambda:${LOCAL_REGION}:${LOCAL_ACCOUNT_ID}:function:${options.functionName}:$LATEST`,
          condition: "RetriesExhausted",
          approximateInvokeCount: invocation.attempts.length,
        },
        requestPayload: event,
        responseContext: {
          statusCode: 200,
          executedVersion: "$LATEST",
          functionError: "Unhandled",
        },
        responsePayload: last,
      };
      options.onFailure?.(invocation.onFailure);
    };
    // Started on the next tick, as an async invoke returns before the function runs.
    invocation.done = Promise.resolve().then(run);
    options.onInvocation?.(invocation);
    return invocation;
  };
}

function describeError(error: unknown): { errorType: string; errorMessage: string } {
  if (error instanceof Error) {
    return { errorType: error.name, errorMessage: redactSecrets(error.message) };
  }
  return { errorType: "Error", errorMessage: redactSecrets(String(error)) };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
