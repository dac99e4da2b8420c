import { describe, expect, it } from "vitest";
import { completeRun } from "../../handlers/shared/complete-run";
import type { FanOutState } from "../../handlers/shared/fan-out";
import type { RunManifest } from "../../handlers/shared/run-manifest";
import { FakeFanOuts, FakeWatermarks } from "./ingest/fakes";

const BUCKET = "results";
const DAYS = ["2025-12-01", "2025-12-02", "2025-12-03", "2025-12-04"];

function stores() {
  const fanOuts = new FakeFanOuts();
  const watermarks = new FakeWatermarks();
  const state: FanOutState = {
    version: 1,
    plans: [
      {
        planId: "plan-1",
        createdAt: new Date().toISOString(),
        trigger: { kind: "manual", id: "req" },
        request: { date: "2025-12-04", days: 4 },
        dateRange: { start: DAYS[0] ?? "", end: DAYS[3] ?? "" },
        dryRun: false,
        days: DAYS.map((date) => ({ date, status: "running" })),
      },
    ],
  };
  fanOuts.set(BUCKET, state);
  return {
    fanOuts,
    watermarks,
    completion: { watermark: watermarks.stores(BUCKET), fanOut: fanOuts.stores(BUCKET) },
  };
}

function dayManifest(date: string, overrides: Partial<RunManifest> = {}): RunManifest {
  return {
    version: 1,
    queryExecutionId: `query-${date}`,
    request: { date: "2025-12-04", days: 4 },
    dateRange: { start: date, end: date },
    dryRun: false,
    attempt: 1,
    trigger: { kind: "manual", id: "req" },
    startedAt: "2025-12-05T06:00:00.000Z",
    planId: "plan-1",
    ...overrides,
  };
}

describe("the watermark after a fanned-out day completes", () => {
  it("moves to the last day D with every day up to D complete, whatever order days finish in", async () => {
    const { completion, watermarks } = stores();
    const at = () => watermarks.get(BUCKET)?.lastCompleteDate;

    expect(await completeRun(completion, dayManifest("2025-12-03"), "k3")).toMatchObject({
      moved: false,
      reason: expect.stringContaining("earlier days"),
    });
    expect(at()).toBeUndefined();
    await completeRun(completion, dayManifest("2025-12-01"), "k1");
    expect(at()).toBe("2025-12-01");
    await completeRun(completion, dayManifest("2025-12-02"), "k2");
    expect(at()).toBe("2025-12-03");
    // A redelivery of a day already counted changes nothing.
    await completeRun(completion, dayManifest("2025-12-02"), "k2");
    expect(at()).toBe("2025-12-03");
    await completeRun(completion, dayManifest("2025-12-04"), "k4");
    expect(at()).toBe("2025-12-04");
  });

  it("never moves for a dry run or a run of one publication, and marks nothing", async () => {
    const { completion, watermarks, fanOuts } = stores();
    await completeRun(completion, dayManifest("2025-12-01", { dryRun: true }), "k1");
    await completeRun(completion, dayManifest("2025-12-01", { publicationCode: "wbez" }), "k1");
    expect(watermarks.get(BUCKET)).toBeUndefined();
    expect(fanOuts.get(BUCKET).plans[0]?.days[0]?.complete).toBeUndefined();
  });

  it("keeps the watermark when the day's plan is no longer tracked", async () => {
    const { completion, watermarks } = stores();
    const outcome = await completeRun(
      completion,
      dayManifest("2025-12-01", { planId: "gone" }),
      "k",
    );
    expect(outcome).toMatchObject({
      moved: false,
      reason: expect.stringContaining("no longer tracked"),
    });
    expect(watermarks.get(BUCKET)).toBeUndefined();
  });

  it("moves a one-query run to its last day, as before", async () => {
    const { completion, watermarks } = stores();
    const { planId: _none, ...single } = dayManifest("2025-12-02");
    await completeRun(
      completion,
      { ...single, dateRange: { start: "2025-12-01", end: "2025-12-02" } },
      "k",
    );
    expect(watermarks.get(BUCKET)?.lastCompleteDate).toBe("2025-12-02");
  });
});
