import { afterEach, describe, expect, it } from "vitest";
import { reportKey } from "../../handlers/shared/bucket-layout";
import { scheduledEvent } from "../../local/lambda-runtime";
import { type LocalPipeline, startLocalPipeline } from "../../local/pipeline";

// The whole local pipeline: the schedule → start → Athena stand-in → S3 → ingest, and
// Athena's SUCCEEDED event → start, both orders of the two racing as they will.
let pipeline: LocalPipeline | undefined;

afterEach(async () => {
  await pipeline?.stop();
  pipeline = undefined;
});

async function nightly(options: Parameters<typeof startLocalPipeline>[0] = {}) {
  pipeline = await startLocalPipeline({ logWriter: () => undefined, ...options });
  const start = (await pipeline.invokeStart(scheduledEvent())) as { queryExecutionId: string };
  const key = `athena-results/${start.queryExecutionId}.csv`;
  await pipeline.waitForIngest(key);
  await pipeline.settle();
  const report = JSON.parse((await pipeline.getText(reportKey(key))) ?? "null");
  return { pipeline, report, queryExecutionId: start.queryExecutionId };
}

describe("the local pipeline reconciles the nightly result", () => {
  it("finds every row Athena returned and moves the watermark", async () => {
    const { pipeline, report, queryExecutionId } = await nightly();

    expect(report).toMatchObject({
      success: true,
      reconciliation: { status: "complete", read: report.stats.rowsFromAthena },
    });
    expect(
      JSON.parse((await pipeline.getText(`runs/${queryExecutionId}.json`)) ?? "{}"),
    ).toMatchObject({
      outputRows: report.stats.rowsFromAthena,
    });
    expect(JSON.parse((await pipeline.getText("state/watermark.json")) ?? "null")).toMatchObject({
      queryExecutionId,
    });
  });

  it("fails the night, publishes IncompleteResults and keeps the watermark when Athena says it returned more", async () => {
    const { pipeline, report } = await nightly({ reportOutputRows: (_, rows) => rows + 1 });

    expect(report).toMatchObject({
      success: false,
      outcome: "incomplete",
      reconciliation: { status: "incomplete", read: report.stats.rowsFromAthena },
    });
    expect(report.reconciliation.expected).toBe(report.stats.rowsFromAthena + 1);
    expect(pipeline.metrics.filter((metric) => metric.name === "IncompleteResults")).toHaveLength(
      1,
    );
    expect(await pipeline.getText("state/watermark.json")).toBeUndefined();
  });
});
