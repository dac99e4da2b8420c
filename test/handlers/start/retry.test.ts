import { GetQueryExecutionCommand, StartQueryExecutionCommand } from "@aws-sdk/client-athena";
import { PutMetricDataCommand } from "@aws-sdk/client-cloudwatch";
import { SendMessageCommand } from "@aws-sdk/client-sqs";
import { describe, expect, it } from "vitest";
import type { RunManifest } from "../../../handlers/shared/run-manifest";
import {
  athena,
  captureLogs,
  cloudwatch,
  lambdaContext,
  manifestAt,
  manifestPuts,
  putManifest,
  QUEUE_URL,
  queryStateChangeEvent,
  s3,
  sentMessageBodies,
  setToday,
  sqs,
  sqsEvent,
  startCalls,
  useStartHandler,
} from "./harness";

const { handler, objects } = useStartHandler();

const FAILED_QUERY = "aaaaaaaa-0000-4000-8000-000000000001";

function failedRun(overrides: Partial<RunManifest> = {}): RunManifest {
  const manifest: RunManifest = {
    version: 1,
    queryExecutionId: FAILED_QUERY,
    request: { days: 2, publicationCode: "WBEZ", dryRun: true },
    dateRange: { start: "2025-12-09", end: "2025-12-10" },
    publicationCode: "wbez",
    dryRun: true,
    attempt: 1,
    trigger: { kind: "manual", id: "req-original" },
    startedAt: "2025-12-11T06:00:00.000Z",
    ...overrides,
  };
  putManifest(objects, manifest);
  return manifest;
}

const context = lambdaContext("req-retry");

describe("a FAILED query of our workgroup", () => {
  it("after attempt 1 is scheduled for attempt 2 in 60 s on the retry queue, from its manifest", async () => {
    failedRun();
    const outcome = await handler(queryStateChangeEvent(FAILED_QUERY, "FAILED"), context);

    expect(outcome).toEqual({
      action: "retry-scheduled",
      queryExecutionId: FAILED_QUERY,
      nextAttempt: 2,
      delaySeconds: 60,
    });
    expect(sqs).toHaveReceivedCommandTimes(SendMessageCommand, 1);
    expect(sqs).toHaveReceivedCommandWith(SendMessageCommand, {
      QueueUrl: QUEUE_URL,
      DelaySeconds: 60,
    });
    expect(JSON.parse(sentMessageBodies()[0] ?? "")).toEqual({
      kind: "restart-failed-query",
      version: 1,
      previousQueryExecutionId: FAILED_QUERY,
      attempt: 2,
      request: { days: 2, publicationCode: "WBEZ", dryRun: true },
      dateRange: { start: "2025-12-09", end: "2025-12-10" },
      publicationCode: "wbez",
      dryRun: true,
    });
    // Only scheduled: the restart itself waits for the queue.
    expect(athena).not.toHaveReceivedCommand(StartQueryExecutionCommand);
  });

  it("after attempt 2 is scheduled for attempt 3 with a longer delay (300 s)", async () => {
    failedRun({ attempt: 2 });
    const outcome = await handler(queryStateChangeEvent(FAILED_QUERY, "FAILED"), context);
    expect(outcome).toMatchObject({ action: "retry-scheduled", nextAttempt: 3, delaySeconds: 300 });
    expect(sqs).toHaveReceivedCommandWith(SendMessageCommand, { DelaySeconds: 300 });
  });

  it("logs Athena's failure reason with the query id", async () => {
    failedRun();
    const { lines } = await captureLogs(() =>
      handler(queryStateChangeEvent(FAILED_QUERY, "FAILED"), context),
    );
    expect(athena).toHaveReceivedCommandWith(GetQueryExecutionCommand, {
      QueryExecutionId: FAILED_QUERY,
    });
    expect(lines.find((line) => line.message === "Query failed; restart scheduled")).toMatchObject({
      level: "warn",
      queryExecutionId: FAILED_QUERY,
      failure: { reason: "HIVE_CURSOR_ERROR: simulated", retryable: false },
      attempt: 1,
    });
  });

  it("is still restarted when the failure reason cannot be read", async () => {
    failedRun();
    athena.on(GetQueryExecutionCommand).rejects(new Error("throttled"));
    const outcome = await handler(queryStateChangeEvent(FAILED_QUERY, "FAILED"), context);
    expect(outcome).toMatchObject({ action: "retry-scheduled" });
  });

  it("after attempt 3 is not restarted: it emits QueryRetriesExhausted for the alarm and logs an error", async () => {
    failedRun({ attempt: 3 });
    const { result, lines } = await captureLogs(() =>
      handler(queryStateChangeEvent(FAILED_QUERY, "FAILED"), context),
    );

    expect(result).toEqual({
      action: "retries-exhausted",
      queryExecutionId: FAILED_QUERY,
      attempts: 3,
    });
    expect(sqs).not.toHaveReceivedCommand(SendMessageCommand);
    expect(cloudwatch).toHaveReceivedCommandWith(PutMetricDataCommand, {
      Namespace: "EmpowerLocal/TrackingSync",
      MetricData: [{ MetricName: "QueryRetriesExhausted", Value: 1, Unit: "Count" }],
    });
    expect(
      lines.some((line) => line.level === "error" && line.queryExecutionId === FAILED_QUERY),
    ).toBe(true);
  });

  it("throws when the exhaustion metric cannot be published, so Lambda retries the event", async () => {
    failedRun({ attempt: 3 });
    cloudwatch.on(PutMetricDataCommand).rejects(new Error("cloudwatch down"));
    await expect(handler(queryStateChangeEvent(FAILED_QUERY, "FAILED"), context)).rejects.toThrow(
      "cloudwatch down",
    );
  });

  it("throws when the retry cannot be queued, so Lambda retries the event", async () => {
    failedRun();
    sqs.on(SendMessageCommand).rejects(new Error("sqs down"));
    await expect(handler(queryStateChangeEvent(FAILED_QUERY, "FAILED"), context)).rejects.toThrow(
      "sqs down",
    );
  });
});

describe("state changes that start nothing", () => {
  it("a CANCELLED query is logged and not restarted (a person cancelled it)", async () => {
    failedRun();
    const { result, lines } = await captureLogs(() =>
      handler(queryStateChangeEvent(FAILED_QUERY, "CANCELLED"), context),
    );
    expect(result).toEqual({ action: "cancelled", queryExecutionId: FAILED_QUERY });
    expect(sqs.calls()).toHaveLength(0);
    expect(cloudwatch.calls()).toHaveLength(0);
    expect(
      lines.some((line) => line.level === "warn" && line.queryExecutionId === FAILED_QUERY),
    ).toBe(true);
  });

  it("a query without a run manifest is ignored with a log line", async () => {
    const { result, lines } = await captureLogs(() =>
      handler(queryStateChangeEvent("bbbbbbbb-0000-4000-8000-00000000000b", "FAILED"), context),
    );
    expect(result).toMatchObject({
      action: "ignored",
      reason: expect.stringContaining("no run manifest"),
    });
    expect(sqs.calls()).toHaveLength(0);
    expect(lines.find((line) => line.message === "Query state change ignored")).toMatchObject({
      queryExecutionId: "bbbbbbbb-0000-4000-8000-00000000000b",
    });
  });

  it("a query of another workgroup is ignored without reading anything", async () => {
    failedRun();
    const result = await handler(queryStateChangeEvent(FAILED_QUERY, "FAILED", "primary"), context);
    expect(result).toMatchObject({ action: "ignored" });
    expect(s3.calls()).toHaveLength(0);
    expect(sqs.calls()).toHaveLength(0);
  });

  it("a SUCCEEDED query is not restarted: its row count is recorded instead (reconcile.test.ts)", async () => {
    failedRun();
    expect(await handler(queryStateChangeEvent(FAILED_QUERY, "SUCCEEDED"), context)).toMatchObject({
      action: "output-rows-recorded",
    });
    expect(sqs.calls()).toHaveLength(0);
  });
});

describe("the retry queue's messages", () => {
  it("restart the failed query with the same range and request, as attempt 2 with a retry manifest", async () => {
    const original = failedRun();
    await handler(queryStateChangeEvent(FAILED_QUERY, "FAILED"), context);
    // The restart runs on a later day: the range must still be the original one.
    setToday("2025-12-12T01:00:00.000Z");

    const response = await handler(sqsEvent(sentMessageBodies()), lambdaContext("req-sqs"));

    expect(response).toEqual({ batchItemFailures: [] });
    const [input] = startCalls();
    expect(input?.ExecutionParameters).toEqual([
      "DATE '2025-12-09'",
      "DATE '2025-12-10'",
      "'wbez'",
    ]);
    const restarted = manifestPuts()[0];
    const manifest = JSON.parse(String(restarted?.Body)) as RunManifest;
    expect(manifest).toEqual({
      version: 1,
      queryExecutionId: expect.stringMatching(/^[0-9a-f-]{36}$/),
      request: original.request,
      dateRange: original.dateRange,
      publicationCode: "wbez",
      dryRun: true,
      attempt: 2,
      trigger: { kind: "retry", id: FAILED_QUERY },
      previousQueryExecutionId: FAILED_QUERY,
      startedAt: "2025-12-12T01:00:00.000Z",
    });
    expect(manifest.queryExecutionId).not.toBe(FAILED_QUERY);
  });

  it("start one query only when the FAILED event arrives twice", async () => {
    failedRun();
    await handler(queryStateChangeEvent(FAILED_QUERY, "FAILED"), context);
    await handler(queryStateChangeEvent(FAILED_QUERY, "FAILED"), lambdaContext("req-retry-again"));
    const [first, second] = sentMessageBodies();
    expect(second).toBe(first);

    // Both messages arrive, in one batch or in two.
    await handler(sqsEvent([first ?? ""]), lambdaContext("req-sqs-1"));
    await handler(sqsEvent([second ?? ""]), lambdaContext("req-sqs-2"));

    const [a, b] = startCalls();
    expect(b?.ClientRequestToken).toBe(a?.ClientRequestToken);
    expect(manifestPuts()).toHaveLength(1);
  });

  it("report a malformed message as a batch item failure and start nothing", async () => {
    const response = await handler(sqsEvent(['{"kind":"something-else"}', "not json"]), context);
    expect(response).toEqual({
      batchItemFailures: [{ itemIdentifier: "message-1" }, { itemIdentifier: "message-2" }],
    });
    expect(athena.calls()).toHaveLength(0);
  });

  it("report a restart Athena refuses as a batch item failure, so SQS redelivers it", async () => {
    failedRun();
    await handler(queryStateChangeEvent(FAILED_QUERY, "FAILED"), context);
    athena.on(StartQueryExecutionCommand).rejects(new Error("TooManyRequestsException"));
    const response = await handler(sqsEvent(sentMessageBodies()), context);
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: "message-1" }] });
  });

  it("go through all three attempts, then raise the exhaustion metric once", async () => {
    const first = await handler({ date: "2025-12-10" }, lambdaContext("req-first"));
    let failing = (first as { queryExecutionId: string }).queryExecutionId;

    for (const expected of [
      { attempt: 2, delay: 60 },
      { attempt: 3, delay: 300 },
    ]) {
      sqs.resetHistory();
      await handler(queryStateChangeEvent(failing, "FAILED"), context);
      expect(sqs).toHaveReceivedCommandWith(SendMessageCommand, { DelaySeconds: expected.delay });
      const restart = await handler(sqsEvent(sentMessageBodies()), context);
      expect(restart).toEqual({ batchItemFailures: [] });
      const lastStart = startCalls().at(-1);
      const next = [...objects.keys()]
        .map((key) => key.slice(5, -5))
        .find((id) => manifestAt(objects, id).previousQueryExecutionId === failing);
      expect(next).toBeDefined();
      expect(manifestAt(objects, next ?? "").attempt).toBe(expected.attempt);
      expect(lastStart?.ExecutionParameters).toEqual(["DATE '2025-12-10'", "DATE '2025-12-10'"]);
      failing = next ?? "";
    }

    sqs.resetHistory();
    expect(await handler(queryStateChangeEvent(failing, "FAILED"), context)).toMatchObject({
      action: "retries-exhausted",
    });
    expect(sqs.calls()).toHaveLength(0);
    expect(cloudwatch).toHaveReceivedCommandTimes(PutMetricDataCommand, 1);
    expect(athena).toHaveReceivedCommandTimes(StartQueryExecutionCommand, 3);
  });
});
