import { StartQueryExecutionCommand } from "@aws-sdk/client-athena";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  athena,
  lambdaContext,
  loadHandler,
  putManifest,
  queryStateChangeEvent,
  resetAws,
  setToday,
  silenceLogs,
  startCalls,
} from "./harness";

let restoreEnv: (() => void) | undefined;

beforeEach(() => {
  resetAws();
  silenceLogs();
  setToday("2025-12-11T06:00:00.000Z");
});
afterEach(() => {
  restoreEnv?.();
  restoreEnv = undefined;
  vi.useRealTimers();
});

async function load(env: Record<string, string | undefined>) {
  const loaded = await loadHandler(env);
  restoreEnv = loaded.restoreEnv;
  return loaded.handler;
}

describe("the start Lambda's configuration", () => {
  it.each(["ATHENA_WORKGROUP", "RESULTS_BUCKET"])(
    "fails at cold start, naming %s, when it is missing",
    async (name) => {
      const before = { ...process.env };
      await expect(loadHandler({ [name]: undefined })).rejects.toThrow(
        `Missing required environment variable ${name}`,
      );
      expect(process.env).toEqual(before);
    },
  );

  it("refuses a database name that is not a plain Glue identifier", async () => {
    await expect(loadHandler({ ATHENA_DATABASE: "ad_tracking; DROP TABLE x" })).rejects.toThrow(
      /ATHENA_DATABASE must be a Glue name/,
    );
  });

  it("refuses a result deadline outside 1..48 hours, naming RESULT_DEADLINE_HOURS", async () => {
    await expect(loadHandler({ RESULT_DEADLINE_HOURS: "0" })).rejects.toThrow(
      /RESULT_DEADLINE_HOURS/,
    );
  });

  it("refuses a concurrency outside 1..100 queries, naming MAX_CONCURRENT_QUERIES", async () => {
    await expect(loadHandler({ MAX_CONCURRENT_QUERIES: "0" })).rejects.toThrow(
      /MAX_CONCURRENT_QUERIES/,
    );
  });

  it("starts at most MAX_CONCURRENT_QUERIES days of a request at once", async () => {
    const two = await load({ MAX_CONCURRENT_QUERIES: "2" });
    const result = (await two({ days: 4 }, lambdaContext("req-two"))) as {
      plan: { maxConcurrentQueries: number; days: { status: string }[] };
    };
    expect(result.plan.maxConcurrentQueries).toBe(2);
    expect(result.plan.days.map((day) => day.status)).toEqual([
      "running",
      "running",
      "queued",
      "queued",
    ]);
  });

  it("allows 5 queries at once by default", async () => {
    const byDefault = await load({});
    const seven = (await byDefault({ days: 7 }, lambdaContext("req-seven"))) as {
      plan: { maxConcurrentQueries: number; days: { status: string }[] };
    };
    expect(seven.plan.maxConcurrentQueries).toBe(5);
    expect(seven.plan.days.filter((day) => day.status === "running")).toHaveLength(5);
  });

  it("queries the configured database and table", async () => {
    const handler = await load({ ATHENA_DATABASE: "tracking_prod", ATHENA_TABLE: "daily_v2" });
    await handler({}, lambdaContext());
    expect(startCalls()[0]?.QueryString).toContain("FROM tracking_prod.daily_v2\n");
    expect(startCalls()[0]?.QueryExecutionContext).toEqual({
      Catalog: "AwsDataCatalog",
      Database: "tracking_prod",
    });
  });

  it("takes the days cap from MAX_DAYS", async () => {
    const handler = await load({ MAX_DAYS: "10" });
    expect(await handler({ days: 11 }, lambdaContext())).toMatchObject({
      success: false,
      error: expect.stringContaining("from 1 to 10"),
    });
    expect(await handler({ days: 10 }, lambdaContext())).toMatchObject({ success: true });
  });

  it("takes the catch-up cap from CATCH_UP_MAX_DAYS", async () => {
    const handler = await load({ CATCH_UP_MAX_DAYS: "5" });
    const objects = resetAws();
    objects.set("state/watermark.json", JSON.stringify({ lastCompleteDate: "2025-11-01" }));
    expect(await handler({}, lambdaContext())).toMatchObject({
      dateRange: { start: "2025-12-06", end: "2025-12-10" },
    });
  });

  it("refuses to drop a failed query silently when RETRY_QUEUE_URL is not set", async () => {
    const handler = await load({ RETRY_QUEUE_URL: undefined });
    const objects = resetAws();
    putManifest(objects, {
      version: 1,
      queryExecutionId: "cccccccc-0000-4000-8000-00000000000c",
      request: {},
      dateRange: { start: "2025-12-10", end: "2025-12-10" },
      dryRun: false,
      attempt: 1,
      trigger: { kind: "schedule", id: "sched" },
      startedAt: "2025-12-11T06:00:00.000Z",
    });
    await expect(
      handler(
        queryStateChangeEvent("cccccccc-0000-4000-8000-00000000000c", "FAILED"),
        lambdaContext(),
      ),
    ).rejects.toThrow("Missing required environment variable RETRY_QUEUE_URL");
    expect(athena).not.toHaveReceivedCommand(StartQueryExecutionCommand);
  });
});
