import { afterEach, describe, expect, it } from "vitest";
import { reportKey } from "../../handlers/shared/bucket-layout";
import type { FanOutState } from "../../handlers/shared/fan-out";
import { type LocalPipeline, startLocalPipeline } from "../../local/pipeline";

// A 10-day backfill through the whole local pipeline with a concurrency of 3: the start
// function fans it out, Athena's SUCCEEDED events start the queued days, each day's file
// is ingested on its own, and the watermark follows the days that are all complete.
let pipeline: LocalPipeline | undefined;

afterEach(async () => {
  await pipeline?.stop();
  pipeline = undefined;
});

interface Plan {
  planId: string;
  days: { date: string; status: string; queryExecutionId?: string }[];
}

async function fanOutState(local: LocalPipeline): Promise<FanOutState> {
  return JSON.parse((await local.getText("state/fan-out.json")) ?? '{"version":1,"plans":[]}');
}

async function settleAll(local: LocalPipeline): Promise<void> {
  for (let round = 0; round < 50; round++) {
    await local.settle();
    const state = await fanOutState(local);
    const waiting = state.plans.some((plan) =>
      plan.days.some((day) => ["queued", "starting", "running"].includes(day.status)),
    );
    if (!waiting) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error("the fanned-out days did not finish");
}

describe("a 10-day backfill through the local pipeline", () => {
  it("runs one query and one ingest per day, never more than 3 at once, and every row once", async () => {
    pipeline = await startLocalPipeline({
      logWriter: () => undefined,
      days: 10,
      maxConcurrentQueries: 3,
    });
    const end = pipeline.sample.dateRange.end;
    const result = (await pipeline.invokeStart({ date: end, days: 10 })) as { plan: Plan };
    expect(result.plan.days.filter((day) => day.status === "queued")).toHaveLength(7);

    await settleAll(pipeline);

    const concurrency = pipeline.concurrency();
    expect(concurrency.maxQueriesInFlight).toBeGreaterThanOrEqual(1);
    expect(concurrency.maxQueriesInFlight).toBeLessThanOrEqual(3);
    const [plan] = (await fanOutState(pipeline)).plans;
    const days = plan?.days ?? [];
    expect(days).toHaveLength(10);
    expect(new Set(days.map((day) => day.queryExecutionId)).size).toBe(10);
    let rowsRead = 0;
    for (const day of days) {
      expect(day).toMatchObject({ status: "succeeded", complete: true, attempt: 1 });
      const key = `athena-results/${day.queryExecutionId}.csv`;
      const report = JSON.parse((await pipeline.getText(reportKey(key))) ?? "null");
      expect(report).toMatchObject({
        success: true,
        invocations: 1,
        dateRange: { start: day.date, end: day.date },
        reconciliation: { status: "complete" },
      });
      expect(report.stats.rowsFromAthena).toBeGreaterThan(0);
      rowsRead += report.stats.rowsFromAthena;
    }
    // Every row of the ten days, each read once (the query keeps rows with impressions).
    expect(rowsRead).toBe(
      pipeline.sample.rows.filter((sample) => Number(sample.row.impressions) > 0).length,
    );
    // One ingest per day's file, and nothing else.
    expect(pipeline.ingestInvocations).toHaveLength(10);
    expect(JSON.parse((await pipeline.getText("state/watermark.json")) ?? "null")).toMatchObject({
      lastCompleteDate: end,
    });
  });
});
