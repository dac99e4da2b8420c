import { PutMetricDataCommand } from "@aws-sdk/client-cloudwatch";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import { beforeEach, describe, expect, it } from "vitest";
import type { RunManifest } from "../../../handlers/shared/run-manifest";
import { cloudwatch, lambdaContext, putManifest, s3, useStartHandler } from "./harness";

// Today is 2025-12-11T06:00:00Z (the harness's clock); the deadline is the default 3 hours.
const { handler, objects } = useStartHandler();
const context = lambdaContext("req-freshness");
const CHECK = { trackingSyncCheck: "freshness" };

beforeEach(() => {
  // A manifest was last written when its query started.
  s3.on(ListObjectsV2Command).callsFake((input) => ({
    Contents: [...objects.keys()]
      .filter((key) => key.startsWith(String(input.Prefix ?? "")))
      .map((key) => ({
        Key: key,
        LastModified: new Date(JSON.parse(objects.get(key) ?? "{}").startedAt ?? Date.now()),
      })),
    IsTruncated: false,
  }));
});

let counter = 0;
function run(hoursAgo: number, overrides: Partial<RunManifest> = {}): RunManifest {
  counter++;
  const manifest: RunManifest = {
    version: 1,
    queryExecutionId: `dddddddd-0000-4000-8000-${String(counter).padStart(12, "0")}`,
    request: {},
    dateRange: { start: "2025-12-10", end: "2025-12-10" },
    dryRun: false,
    attempt: 1,
    trigger: { kind: "schedule", id: `nightly-${counter}` },
    startedAt: new Date(Date.now() - hoursAgo * 3_600_000).toISOString(),
    ...overrides,
  };
  putManifest(objects, manifest);
  return manifest;
}

function reported(manifest: RunManifest): void {
  objects.set(
    `reports/athena-results/${manifest.queryExecutionId}.csv.json`,
    JSON.stringify({ success: true, outcome: "synced" }),
  );
}

const missingMetric = () =>
  cloudwatch
    .commandCalls(PutMetricDataCommand)
    .flatMap((call) => call.args[0].input.MetricData ?? [])
    .filter((datum) => datum.MetricName === "MissingResults")
    .map((datum) => datum.Value);

describe("the freshness check", () => {
  it("names a scheduled query whose report did not arrive within the deadline", async () => {
    const late = run(4);

    const outcome = await handler(CHECK, context);

    expect(outcome).toEqual({
      action: "freshness-checked",
      missing: [
        {
          queryExecutionId: late.queryExecutionId,
          startedAt: late.startedAt,
          dateRange: late.dateRange,
        },
      ],
      nightMissing: false,
      fanOutHealed: 0,
    });
    expect(missingMetric()).toEqual([1]);
  });

  it("is satisfied by a report, and gives a query within the deadline its time", async () => {
    reported(run(4));
    run(1);

    expect(await handler(CHECK, context)).toMatchObject({ missing: [], nightMissing: false });
    expect(missingMetric()).toEqual([0]);
  });

  it("looks for the restart's result, not the failed query's", async () => {
    const failed = run(6);
    const restart = run(5, {
      trigger: { kind: "retry", id: failed.queryExecutionId },
      previousQueryExecutionId: failed.queryExecutionId,
      attempt: 2,
    });

    const outcome = await handler(CHECK, context);

    expect(outcome).toMatchObject({ missing: [{ queryExecutionId: restart.queryExecutionId }] });
  });

  it("does not wait for a manual request's result", async () => {
    run(5, { trigger: { kind: "manual", id: "req-1" } });
    reported(run(2));

    expect(await handler(CHECK, context)).toMatchObject({ missing: [] });
  });

  it("is satisfied by a later run of the same range, such as a rerun by hand", async () => {
    run(5);
    reported(
      run(1, {
        trigger: { kind: "manual", id: "req-rerun" },
        dateRange: { start: "2025-12-09", end: "2025-12-10" },
      }),
    );

    expect(await handler(CHECK, context)).toMatchObject({ missing: [] });
  });

  it("is not satisfied by a later run of one publication only", async () => {
    const missed = run(5);
    reported(run(1, { trigger: { kind: "manual", id: "req-one" }, publicationCode: "chireader" }));

    expect(await handler(CHECK, context)).toMatchObject({
      missing: [{ queryExecutionId: missed.queryExecutionId }],
    });
  });

  it("counts a night for which the schedule started nothing", async () => {
    reported(run(28));

    const outcome = await handler(CHECK, context);

    expect(outcome).toMatchObject({ missing: [], nightMissing: true });
    expect(missingMetric()).toEqual([1]);
  });

  it("waits a day after a new deployment's first (manual) query before expecting a night", async () => {
    reported(run(2, { trigger: { kind: "manual", id: "req-first" } }));

    expect(await handler(CHECK, context)).toMatchObject({ missing: [], nightMissing: false });
  });

  it("reconciles a report still pending past the deadline instead of leaving it pending", async () => {
    const stuck = run(5);
    objects.set(
      `reports/athena-results/${stuck.queryExecutionId}.csv.json`,
      JSON.stringify({
        success: true,
        outcome: "synced",
        reconciliation: { status: "pending", read: 42 },
      }),
    );

    expect(await handler(CHECK, context)).toMatchObject({ missing: [] });
    expect(
      JSON.parse(objects.get(`reports/athena-results/${stuck.queryExecutionId}.csv.json`) ?? "{}"),
    ).toMatchObject({ reconciliation: { status: "complete", recordedBy: "start" } });
  });

  it("counts a report that is not JSON as missing and goes on with the check", async () => {
    const broken = run(5);
    objects.set(`reports/athena-results/${broken.queryExecutionId}.csv.json`, "{ not json");
    reported(run(4, { dateRange: { start: "2025-12-09", end: "2025-12-09" } }));

    expect(await handler(CHECK, context)).toMatchObject({
      missing: [{ queryExecutionId: broken.queryExecutionId }],
    });
    expect(missingMetric()).toEqual([1]);
  });

  it("raises nothing before the first night of a new deployment", async () => {
    expect(await handler(CHECK, context)).toMatchObject({ missing: [], nightMissing: false });
    expect(missingMetric()).toEqual([0]);
  });
});
