import { PutMetricDataCommand } from "@aws-sdk/client-cloudwatch";
import { SendMessageCommand } from "@aws-sdk/client-sqs";
import { describe, expect, it } from "vitest";
import type { RunManifest } from "../../../handlers/shared/run-manifest";
import {
  cloudwatch,
  lambdaContext,
  manifestAt,
  putManifest,
  queryStateChangeEvent,
  SUCCEEDED_OUTPUT_ROWS,
  sqs,
  useStartHandler,
} from "./harness";

const { handler, objects } = useStartHandler();

const QUERY = "cccccccc-0000-4000-8000-00000000000c";
const REPORT_KEY = `reports/athena-results/${QUERY}.csv.json`;
const context = lambdaContext("req-succeeded");

function nightlyRun(overrides: Partial<RunManifest> = {}): RunManifest {
  const manifest: RunManifest = {
    version: 1,
    queryExecutionId: QUERY,
    request: {},
    dateRange: { start: "2025-12-10", end: "2025-12-10" },
    dryRun: false,
    attempt: 1,
    trigger: { kind: "schedule", id: "nightly" },
    startedAt: "2025-12-11T06:00:00.000Z",
    ...overrides,
  };
  putManifest(objects, manifest);
  return manifest;
}

/** The ingest's report of the result file, as it writes it when Athena's count is not known yet. */
function pendingReport(read: number): void {
  objects.set(
    REPORT_KEY,
    JSON.stringify({
      success: true,
      outcome: "synced",
      stats: { rowsFromAthena: read, synced: read, skipped: 0, errors: 0 },
      reconciliation: { status: "pending", read },
    }),
  );
}

const report = () => JSON.parse(objects.get(REPORT_KEY) ?? "null");
const metricNames = () =>
  cloudwatch
    .commandCalls(PutMetricDataCommand)
    .flatMap((call) => call.args[0].input.MetricData?.map((datum) => datum.MetricName) ?? []);

describe("a SUCCEEDED query of ours", () => {
  it("records Athena's row count in its manifest and restarts nothing", async () => {
    nightlyRun();

    const outcome = await handler(queryStateChangeEvent(QUERY, "SUCCEEDED"), context);

    expect(outcome).toEqual({
      action: "output-rows-recorded",
      queryExecutionId: QUERY,
      outputRows: SUCCEEDED_OUTPUT_ROWS,
    });
    expect(manifestAt(objects, QUERY).outputRows).toBe(SUCCEEDED_OUTPUT_ROWS);
    expect(sqs.commandCalls(SendMessageCommand)).toHaveLength(0);
    expect(objects.has(REPORT_KEY)).toBe(false);
  });

  it("records a complete verdict in a pending report and moves the watermark", async () => {
    nightlyRun();
    pendingReport(SUCCEEDED_OUTPUT_ROWS);

    const outcome = await handler(queryStateChangeEvent(QUERY, "SUCCEEDED"), context);

    expect(outcome).toMatchObject({ verdict: { status: "complete" } });
    expect(report()).toMatchObject({
      success: true,
      outcome: "synced",
      reconciliation: {
        status: "complete",
        expected: SUCCEEDED_OUTPUT_ROWS,
        read: SUCCEEDED_OUTPUT_ROWS,
        recordedBy: "start",
      },
    });
    expect(JSON.parse(objects.get("state/watermark.json") ?? "null")).toMatchObject({
      lastCompleteDate: "2025-12-10",
      queryExecutionId: QUERY,
      sourceKey: `athena-results/${QUERY}.csv`,
    });
    expect(metricNames()).not.toContain("IncompleteResults");
  });

  it("fails a report whose records read differ, counts IncompleteResults and keeps the watermark", async () => {
    nightlyRun();
    pendingReport(40);

    await handler(queryStateChangeEvent(QUERY, "SUCCEEDED"), context);

    expect(report()).toMatchObject({
      success: false,
      outcome: "incomplete",
      error: `Incomplete result: read 40 records, Athena returned ${SUCCEEDED_OUTPUT_ROWS} rows`,
      reconciliation: { status: "incomplete", expected: SUCCEEDED_OUTPUT_ROWS, read: 40 },
    });
    expect(metricNames()).toEqual(["IncompleteResults"]);
    expect(objects.has("state/watermark.json")).toBe(false);
  });

  it("finishes what its own verdict implies when the event is delivered again", async () => {
    nightlyRun();
    // Recorded by an earlier delivery that failed before it moved the watermark.
    objects.set(
      REPORT_KEY,
      JSON.stringify({
        success: true,
        outcome: "synced",
        reconciliation: { status: "complete", expected: 42, read: 42, recordedBy: "start" },
      }),
    );

    await handler(queryStateChangeEvent(QUERY, "SUCCEEDED"), context);

    expect(JSON.parse(objects.get("state/watermark.json") ?? "null")).toMatchObject({
      lastCompleteDate: "2025-12-10",
    });
  });

  it("leaves a verdict the ingest already recorded alone", async () => {
    nightlyRun();
    const recorded = {
      success: true,
      outcome: "synced",
      reconciliation: { status: "complete", expected: 42, read: 42, recordedBy: "ingest" },
    };
    objects.set(REPORT_KEY, JSON.stringify(recorded));

    const outcome = await handler(queryStateChangeEvent(QUERY, "SUCCEEDED"), context);

    expect(outcome).not.toHaveProperty("verdict");
    expect(JSON.parse(objects.get(REPORT_KEY) ?? "null")).toEqual(recorded);
  });

  it("does not move the watermark for a one-publication run or a dry run", async () => {
    for (const overrides of [{ publicationCode: "chireader" }, { dryRun: true }]) {
      objects.delete("state/watermark.json");
      nightlyRun(overrides);
      pendingReport(SUCCEEDED_OUTPUT_ROWS);

      await handler(queryStateChangeEvent(QUERY, "SUCCEEDED"), context);

      expect(report().reconciliation.status).toBe("complete");
      expect(objects.has("state/watermark.json")).toBe(false);
    }
  });
});
