import { createHash } from "node:crypto";
import {
  AthenaClient,
  GetQueryExecutionCommand,
  GetQueryRuntimeStatisticsCommand,
  StartQueryExecutionCommand,
} from "@aws-sdk/client-athena";
import { CloudWatchClient, PutMetricDataCommand } from "@aws-sdk/client-cloudwatch";
import {
  GetObjectCommand,
  NoSuchKey,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from "@aws-sdk/client-s3";
import { SendMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import type { Context, SQSEvent } from "aws-lambda";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, afterEach, beforeAll, beforeEach, vi } from "vitest";
import type { RunManifest } from "../../../handlers/shared/run-manifest";
import { athenaStateChange } from "../../helpers/athena-events";

export const BUCKET = "tracking-results-test";
export const WORKGROUP = "tracking-sync-test";
export const QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/tracking-sync-retry";

/** The rows every SUCCEEDED query returned, as GetQueryRuntimeStatistics tells. */
export const SUCCEEDED_OUTPUT_ROWS = 42;

export const BASE_ENV: Record<string, string> = {
  ATHENA_WORKGROUP: WORKGROUP,
  RESULTS_BUCKET: BUCKET,
  RETRY_QUEUE_URL: QUEUE_URL,
  AWS_REGION: "us-east-1",
  AWS_ACCESS_KEY_ID: "test",
  AWS_SECRET_ACCESS_KEY: "test",
  LOG_LEVEL: "debug",
};

export type StartHandler = typeof import("../../../handlers/start-query").handler;

/**
 * Imports the real handler with `env` in place (its clients and config are read
 * at module scope, so env must be set first). Returns a restore function for afterAll.
 */
export async function loadHandler(
  env: Record<string, string | undefined> = {},
): Promise<{ handler: StartHandler; restoreEnv: () => void }> {
  const saved = { ...process.env };
  for (const [key, value] of Object.entries({ ...BASE_ENV, ...env })) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
  const restoreEnv = () => {
    process.env = saved;
  };
  vi.resetModules();
  try {
    const module = await import("../../../handlers/start-query");
    return { handler: module.handler, restoreEnv };
  } catch (error) {
    restoreEnv();
    throw error;
  }
}

export const athena = mockClient(AthenaClient);
export const s3 = mockClient(S3Client);
export const sqs = mockClient(SQSClient);
export const cloudwatch = mockClient(CloudWatchClient);

/** Athena's idempotency, faked: the same ClientRequestToken always names the same query. */
export function queryIdForToken(token: string | undefined): string {
  const hex = createHash("sha256")
    .update(token ?? "")
    .digest("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/**
 * Resets every client mock and gives the bucket an in-memory body per key, so
 * manifests written by one invocation are read by the next.
 */
export function resetAws(objects: Map<string, string> = new Map()): Map<string, string> {
  athena.reset();
  s3.reset();
  sqs.reset();
  cloudwatch.reset();
  objects.clear();
  athena
    .on(StartQueryExecutionCommand)
    .callsFake((input) => ({ QueryExecutionId: queryIdForToken(input.ClientRequestToken) }));
  athena.on(GetQueryExecutionCommand).resolves({
    QueryExecution: {
      Status: {
        State: "FAILED",
        StateChangeReason: "HIVE_CURSOR_ERROR: simulated",
        AthenaError: { ErrorCategory: 2, ErrorType: 1000, Retryable: false },
      },
    },
  });
  athena
    .on(GetQueryRuntimeStatisticsCommand)
    .resolves({ QueryRuntimeStatistics: { Rows: { OutputRows: SUCCEEDED_OUTPUT_ROWS } } });
  s3.on(GetObjectCommand).callsFake((input) => {
    const body = input.Bucket === BUCKET ? objects.get(input.Key) : undefined;
    if (body === undefined) {
      throw new NoSuchKey({
        message: "The specified key does not exist.",
        $metadata: { httpStatusCode: 404 },
      });
    }
    return {
      Body: { transformToString: async () => body },
      ETag: `"${createHash("md5").update(body).digest("hex")}"`,
    };
  });
  s3.on(PutObjectCommand).callsFake((input) => {
    if (input.Bucket !== BUCKET) throw new Error(`unexpected bucket ${input.Bucket}`);
    objects.set(String(input.Key), String(input.Body));
    return { ETag: '"etag"' };
  });
  sqs.on(SendMessageCommand).resolves({ MessageId: "sent-1" });
  cloudwatch.on(PutMetricDataCommand).resolves({});
  return objects;
}

export function accessDenied(): S3ServiceException {
  return new S3ServiceException({
    name: "AccessDenied",
    $fault: "client",
    message: "Access Denied",
    $metadata: { httpStatusCode: 403 },
  });
}

/**
 * The lifecycle every start-handler test file shares: the real handler loaded once with
 * BASE_ENV (restored afterwards), then before each test fresh client mocks, quiet logs and
 * a fixed "today" (`today`), real timers again after it. `objects` is the bucket's
 * in-memory content, emptied before each test.
 */
export function useStartHandler(
  today = "2025-12-11T06:00:00.000Z",
  env: Record<string, string | undefined> = {},
): {
  handler: StartHandler;
  objects: Map<string, string>;
} {
  let loaded: StartHandler | undefined;
  let restoreEnv = () => {};
  const objects = new Map<string, string>();
  beforeAll(async () => {
    ({ handler: loaded, restoreEnv } = await loadHandler(env));
  });
  afterAll(() => restoreEnv());
  beforeEach(() => {
    resetAws(objects);
    silenceLogs();
    setToday(today);
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  const handler = ((...args: Parameters<StartHandler>) => {
    if (!loaded) throw new Error("the start handler is loaded in beforeAll");
    return loaded(...args);
  }) as StartHandler;
  return { handler, objects };
}

/** Fixes the wall clock (Date only; timers stay real). */
export function setToday(isoInstant: string): void {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(new Date(isoInstant));
}

export function lambdaContext(awsRequestId = "11111111-2222-3333-4444-555555555555"): Context {
  return {
    awsRequestId,
    functionName: "empowerlocal-tracking-sync-start",
    functionVersion: "$LATEST",
    invokedFunctionArn:
      "arn:aws:lambda:us-east-1:123456789012:function:empowerlocal-tracking-sync-start",
    memoryLimitInMB: "256",
    logGroupName: "/aws/lambda/empowerlocal-tracking-sync-start",
    logStreamName: "stream",
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => 30_000,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

export function scheduledEvent(id: string, time: string) {
  return {
    version: "0",
    id,
    "detail-type": "Scheduled Event",
    source: "aws.events",
    account: "123456789012",
    time,
    region: "us-east-1",
    resources: ["arn:aws:events:us-east-1:123456789012:rule/empowerlocal-tracking-sync-schedule"],
    detail: {},
  };
}

export function queryStateChangeEvent(
  queryExecutionId: string,
  currentState: "FAILED" | "CANCELLED" | "SUCCEEDED",
  workgroupName = WORKGROUP,
) {
  return athenaStateChange(queryExecutionId, currentState, workgroupName);
}

/** The retry queue's delivery of messages the handler sent earlier. */
export function sqsEvent(bodies: string[]): SQSEvent {
  return {
    Records: bodies.map((body, index) => ({
      messageId: `message-${index + 1}`,
      receiptHandle: `receipt-${index + 1}`,
      body,
      attributes: {
        ApproximateReceiveCount: "1",
        SentTimestamp: "1765433100000",
        SenderId: "AROAEXAMPLE",
        ApproximateFirstReceiveTimestamp: "1765433160000",
      },
      messageAttributes: {},
      md5OfBody: "",
      eventSource: "aws:sqs",
      eventSourceARN: "arn:aws:sqs:us-east-1:123456789012:tracking-sync-retry",
      awsRegion: "us-east-1",
    })),
  };
}

export function manifestAt(objects: Map<string, string>, queryExecutionId: string): RunManifest {
  const body = objects.get(`runs/${queryExecutionId}.json`);
  if (body === undefined) throw new Error(`no manifest for ${queryExecutionId}`);
  return JSON.parse(body) as RunManifest;
}

export function putManifest(objects: Map<string, string>, manifest: RunManifest): void {
  objects.set(`runs/${manifest.queryExecutionId}.json`, JSON.stringify(manifest));
}

export function sentMessageBodies(): string[] {
  return sqs.commandCalls(SendMessageCommand).map((call) => String(call.args[0].input.MessageBody));
}

export function startCalls() {
  return athena.commandCalls(StartQueryExecutionCommand).map((call) => call.args[0].input);
}

export function manifestPuts() {
  return s3
    .commandCalls(PutObjectCommand)
    .map((call) => call.args[0].input)
    .filter((input) => String(input.Key).startsWith("runs/"));
}

/** Captures the JSON log lines written to stdout while `run` executes. */
export async function captureLogs<T>(
  run: () => Promise<T>,
): Promise<{ result: T; lines: Record<string, unknown>[] }> {
  const lines: Record<string, unknown>[] = [];
  const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    for (const line of String(chunk).split("\n")) {
      if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
    }
    return true;
  });
  try {
    return { result: await run(), lines };
  } finally {
    spy.mockRestore();
  }
}

/** Keeps the handler's JSON log lines out of the test output (restored after each test). */
export function silenceLogs(): void {
  vi.spyOn(process.stdout, "write").mockImplementation(() => true);
}
