import { CloudWatchClient, PutMetricDataCommand } from "@aws-sdk/client-cloudwatch";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { type FileMetrics, publishIngestMetrics } from "../../../handlers/ingest/metrics";
import { createLogger } from "../../../handlers/shared/logger";

const cloudwatch = mockClient(CloudWatchClient);
const client = new CloudWatchClient({ region: "us-east-1" });

const file: FileMetrics = {
  synced: 40,
  skipped: 3,
  errors: 2,
  inserted: 30,
  updated: 5,
  unchanged: 5,
  fileDurationMs: 602_000,
  invocations: 3,
};

beforeEach(() => {
  cloudwatch.reset();
  cloudwatch.on(PutMetricDataCommand).resolves({});
});

describe("publishIngestMetrics", () => {
  it("publishes only the invocation's Duration when the invocation does not finish the file", async () => {
    const logger = createLogger({}, { write: () => {} });

    await publishIngestMetrics(client, "Test/Ns", { invocationDurationMs: 230_000 }, logger);

    expect(cloudwatch).toHaveReceivedCommandTimes(PutMetricDataCommand, 1);
    expect(cloudwatch).toHaveReceivedCommandWith(PutMetricDataCommand, {
      Namespace: "Test/Ns",
      MetricData: [{ MetricName: "Duration", Value: 230_000, Unit: "Milliseconds" }],
    });
  });

  it("adds the file's counts, time and invocations in the same call when it finishes the file", async () => {
    const logger = createLogger({}, { write: () => {} });

    await publishIngestMetrics(client, "Test/Ns", { invocationDurationMs: 140_000, file }, logger);

    expect(cloudwatch).toHaveReceivedCommandTimes(PutMetricDataCommand, 1);
    expect(cloudwatch.commandCalls(PutMetricDataCommand)[0]?.args[0].input.MetricData).toEqual([
      { MetricName: "Duration", Value: 140_000, Unit: "Milliseconds" },
      { MetricName: "RowsSynced", Value: 40, Unit: "Count" },
      { MetricName: "RowsSkipped", Value: 3, Unit: "Count" },
      { MetricName: "Errors", Value: 2, Unit: "Count" },
      { MetricName: "RowsInserted", Value: 30, Unit: "Count" },
      { MetricName: "RowsUpdated", Value: 5, Unit: "Count" },
      { MetricName: "RowsUnchanged", Value: 5, Unit: "Count" },
      { MetricName: "FileDuration", Value: 602_000, Unit: "Milliseconds" },
      { MetricName: "FileInvocations", Value: 3, Unit: "Count" },
    ]);
  });

  it("logs a refused call and reports it, without throwing", async () => {
    const lines: string[] = [];
    const logger = createLogger({}, { write: (line) => lines.push(line) });
    cloudwatch.on(PutMetricDataCommand).rejects(new Error("throttled"));

    const published = await publishIngestMetrics(
      client,
      "Test/Ns",
      { invocationDurationMs: 1, file },
      logger,
    );

    expect(published).toBe(false);
    expect(lines.some((line) => line.includes("Publishing metrics failed"))).toBe(true);
  });
});
