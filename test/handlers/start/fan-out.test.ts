import { GetQueryExecutionCommand, GetQueryRuntimeStatisticsCommand } from "@aws-sdk/client-athena";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import type { FanOutState } from "../../../handlers/shared/fan-out";
import {
  athena,
  lambdaContext,
  manifestAt,
  queryIdForToken,
  queryStateChangeEvent,
  s3,
  scheduledEvent,
  sentMessageBodies,
  setToday,
  sqsEvent,
  startCalls,
  useStartHandler,
} from "./harness";

const { handler, objects } = useStartHandler("2025-12-11T06:00:00.000Z", {
  MAX_CONCURRENT_QUERIES: "3",
});

interface PlanResult {
  success: boolean;
  queryExecutionId?: string;
  dateRange: { start: string; end: string };
  plan: {
    planId: string;
    maxConcurrentQueries: number;
    days: { date: string; status: string; queryExecutionId?: string; queuePosition?: number }[];
  };
}

const TEN_DAYS = { date: "2025-12-10", days: 10 };

function fanOutState(): FanOutState {
  return JSON.parse(objects.get("state/fan-out.json") ?? '{"version":1,"plans":[]}');
}

function running(): { date: string; queryExecutionId: string }[] {
  return fanOutState().plans.flatMap((plan) =>
    plan.days
      .filter((day) => day.status === "running" || day.status === "starting")
      .map((day) => ({ date: day.date, queryExecutionId: day.queryExecutionId ?? "" })),
  );
}

/** Distinct queries started (Athena's idempotency: one per token) and the days they cover. */
function startedDays(): string[] {
  const byToken = new Map<string, string>();
  for (const call of startCalls()) {
    const day = String(call.ExecutionParameters?.[0]).slice(6, 16);
    byToken.set(call.ClientRequestToken ?? "", day);
  }
  return [...byToken.values()].sort();
}

async function succeed(queryExecutionId: string): Promise<void> {
  await handler(queryStateChangeEvent(queryExecutionId, "SUCCEEDED"), lambdaContext());
}

describe("a request for more than one day", () => {
  it("starts one query per day, at most MAX_CONCURRENT_QUERIES at once, and answers with the plan", async () => {
    const result = (await handler(TEN_DAYS, lambdaContext("req-ten"))) as PlanResult;

    expect(result).toMatchObject({
      success: true,
      dateRange: { start: "2025-12-01", end: "2025-12-10" },
      dryRun: false,
    });
    expect(result.queryExecutionId).toBeUndefined();
    expect(result.plan.maxConcurrentQueries).toBe(3);
    expect(result.plan.days).toHaveLength(10);
    const started = result.plan.days.slice(0, 3);
    for (const day of started) {
      expect(day).toMatchObject({ status: "running", queryExecutionId: expect.any(String) });
    }
    expect(result.plan.days.slice(3).map((day) => [day.status, day.queuePosition])).toEqual(
      [1, 2, 3, 4, 5, 6, 7].map((position) => ["queued", position]),
    );
    expect(startedDays()).toEqual(["2025-12-01", "2025-12-02", "2025-12-03"]);
    for (const day of started) {
      const manifest = manifestAt(objects, day.queryExecutionId ?? "");
      expect(manifest).toMatchObject({
        dateRange: { start: day.date, end: day.date },
        planId: result.plan.planId,
        request: TEN_DAYS,
        attempt: 1,
      });
      // Each day its own query: the ingest's file is that day's.
      expect(
        startCalls().find(
          (call) => queryIdForToken(call.ClientRequestToken) === day.queryExecutionId,
        )?.ExecutionParameters,
      ).toEqual([`DATE '${day.date}'`, `DATE '${day.date}'`]);
    }
  });

  it("starts every day exactly once, never more than 3 in flight, through redeliveries", async () => {
    await handler(TEN_DAYS, lambdaContext("req-ten"));
    // The same invoke delivered again (Lambda's async retry): same plan, nothing new.
    const again = (await handler(TEN_DAYS, lambdaContext("req-ten"))) as PlanResult;
    expect(again.plan.days.filter((day) => day.status === "running")).toHaveLength(3);
    expect(startedDays()).toHaveLength(3);

    let maxInFlight = running().length;
    while (running().length > 0) {
      const [first] = running();
      await succeed(first?.queryExecutionId ?? "");
      // EventBridge delivers at least once: the duplicate frees nothing more.
      await succeed(first?.queryExecutionId ?? "");
      maxInFlight = Math.max(maxInFlight, running().length);
    }

    expect(maxInFlight).toBe(3);
    // 2025-12-01 … 2025-12-10, each started once.
    expect(startedDays()).toEqual(
      Array.from({ length: 10 }, (_, i) => `2025-12-${String(i + 1).padStart(2, "0")}`),
    );
    const [plan] = fanOutState().plans;
    expect(plan?.days.every((day) => day.status === "succeeded")).toBe(true);
  });

  it("keeps a failed day's slot through its restart and frees it when restarts run out", async () => {
    const result = (await handler(
      { date: "2025-12-10", days: 5 },
      lambdaContext("req-five"),
    )) as PlanResult;
    const firstDay = result.plan.days[0]?.queryExecutionId ?? "";

    await handler(queryStateChangeEvent(firstDay, "FAILED"), lambdaContext());
    expect(running()).toHaveLength(3);
    expect(startedDays()).toHaveLength(3);

    // The retry queue delivers the restart (twice: SQS is at-least-once too).
    const [message] = sentMessageBodies();
    expect(JSON.parse(message ?? "{}")).toMatchObject({ planId: result.plan.planId, attempt: 2 });
    await handler(sqsEvent([message ?? ""]), lambdaContext());
    await handler(sqsEvent([message ?? ""]), lambdaContext());
    const restarted = fanOutState().plans[0]?.days[0];
    expect(restarted).toMatchObject({ status: "running", attempt: 2 });
    expect(restarted?.queryExecutionId).not.toBe(firstDay);

    // Attempt 2 fails, attempt 3 fails: the day is given up and its slot goes to the next day.
    await handler(
      queryStateChangeEvent(restarted?.queryExecutionId ?? "", "FAILED"),
      lambdaContext(),
    );
    await handler(sqsEvent([sentMessageBodies()[1] ?? ""]), lambdaContext());
    const third = fanOutState().plans[0]?.days[0]?.queryExecutionId ?? "";
    await handler(queryStateChangeEvent(third, "FAILED"), lambdaContext());

    expect(fanOutState().plans[0]?.days.map((day) => day.status)).toEqual([
      "failed",
      "running",
      "running",
      "running",
      "queued",
    ]);
    // Day 6's three attempts are three queries; day 9 got the slot day 6 gave up.
    expect(startedDays()).toEqual([
      "2025-12-06",
      "2025-12-06",
      "2025-12-06",
      "2025-12-07",
      "2025-12-08",
      "2025-12-09",
    ]);
  });

  it("frees a day's slot even when recording its row count fails (the event is retried)", async () => {
    const result = (await handler(
      { date: "2025-12-10", days: 4 },
      lambdaContext("req-throttled"),
    )) as PlanResult;
    athena.on(GetQueryRuntimeStatisticsCommand).rejects(new Error("throttled"));

    await expect(
      handler(
        queryStateChangeEvent(result.plan.days[0]?.queryExecutionId ?? "", "SUCCEEDED"),
        lambdaContext(),
      ),
    ).rejects.toThrow("throttled");

    expect(fanOutState().plans[0]?.days.map((day) => day.status)).toEqual([
      "succeeded",
      "running",
      "running",
      "running",
    ]);
  });

  it("frees a cancelled day's slot without restarting it", async () => {
    const result = (await handler(
      { date: "2025-12-10", days: 4 },
      lambdaContext("req-four"),
    )) as PlanResult;
    await handler(
      queryStateChangeEvent(result.plan.days[1]?.queryExecutionId ?? "", "CANCELLED"),
      lambdaContext(),
    );
    expect(fanOutState().plans[0]?.days.map((day) => day.status)).toEqual([
      "running",
      "cancelled",
      "running",
      "running",
    ]);
    expect(sentMessageBodies()).toEqual([]);
  });

  it("shares the limit across requests: a second request waits behind the first", async () => {
    await handler({ date: "2025-12-05", days: 2 }, lambdaContext("req-a"));
    const second = (await handler(
      { date: "2025-12-10", days: 3, publicationCode: "chireader" },
      lambdaContext("req-b"),
    )) as PlanResult;
    expect(second.plan.days.map((day) => [day.status, day.queuePosition])).toEqual([
      ["running", undefined],
      ["queued", 1],
      ["queued", 2],
    ]);
    expect(running()).toHaveLength(3);
  });

  it("fans out a catch-up after missed nights", async () => {
    objects.set(
      "state/watermark.json",
      JSON.stringify({
        lastCompleteDate: "2025-12-06",
        updatedAt: "x",
        queryExecutionId: "q",
        sourceKey: "k",
      }),
    );
    const result = (await handler(
      scheduledEvent("sched-catch-up", "2025-12-11T06:00:00Z"),
      lambdaContext(),
    )) as PlanResult;
    expect(result.dateRange).toEqual({ start: "2025-12-07", end: "2025-12-10" });
    expect(result.plan.days.map((day) => day.status)).toEqual([
      "running",
      "running",
      "running",
      "queued",
    ]);
    const manifest = manifestAt(objects, result.plan.days[0]?.queryExecutionId ?? "");
    expect(manifest.trigger).toEqual({ kind: "schedule", id: "sched-catch-up" });

    // A late retry of the same event after the watermark moved finds the same plan.
    setToday("2025-12-11T06:04:00.000Z");
    await handler(scheduledEvent("sched-catch-up", "2025-12-11T06:00:00Z"), lambdaContext());
    expect(fanOutState().plans).toHaveLength(1);
    expect(startedDays()).toHaveLength(3);
  });

  it("the freshness check handles a day whose SUCCEEDED event was lost, and starts the next", async () => {
    const result = (await handler(
      { date: "2025-12-10", days: 4 },
      lambdaContext("req-lost"),
    )) as PlanResult;
    const lost = result.plan.days[0]?.queryExecutionId ?? "";
    athena.on(GetQueryExecutionCommand).callsFake((input) => ({
      QueryExecution: {
        Status:
          input.QueryExecutionId === lost
            ? { State: "SUCCEEDED", CompletionDateTime: new Date("2025-12-11T06:10:00.000Z") }
            : { State: "RUNNING" },
      },
    }));
    s3.on(ListObjectsV2Command).resolves({ Contents: [], IsTruncated: false });
    setToday("2025-12-11T07:00:00.000Z");

    const outcome = await handler({ trackingSyncCheck: "freshness" }, lambdaContext());

    expect(outcome).toMatchObject({ action: "freshness-checked", fanOutHealed: 1 });
    expect(fanOutState().plans[0]?.days.map((day) => day.status)).toEqual([
      "succeeded",
      "running",
      "running",
      "running",
    ]);
    expect(startedDays()).toHaveLength(4);
    expect(manifestAt(objects, lost).outputRows).toBe(42);
  });
});
