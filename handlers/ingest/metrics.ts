import {
  type CloudWatchClient,
  PutMetricDataCommand,
  type StandardUnit,
} from "@aws-sdk/client-cloudwatch";
import type { Logger } from "../shared/logger";

export interface ObjectMetrics {
  synced: number;
  skipped: number;
  errors: number;
  durationMs: number;
  inserted: number;
  updated: number;
  unchanged: number;
}

/**
 * One PutMetricData per ingested object: the spec's four metrics plus the entry
 * counts operators need. No dimensions, so the alarms watch one series each.
 * Publishing is best effort: a failure is logged and never fails or changes the sync.
 */
export async function publishObjectMetrics(
  cloudwatch: CloudWatchClient,
  namespace: string,
  metrics: ObjectMetrics,
  logger: Logger,
): Promise<boolean> {
  const datum = (name: string, value: number, unit: StandardUnit = "Count") => ({
    MetricName: name,
    Value: value,
    Unit: unit,
  });
  try {
    await cloudwatch.send(
      new PutMetricDataCommand({
        Namespace: namespace,
        MetricData: [
          datum("RowsSynced", metrics.synced),
          datum("RowsSkipped", metrics.skipped),
          datum("Errors", metrics.errors),
          datum("Duration", metrics.durationMs, "Milliseconds"),
          datum("RowsInserted", metrics.inserted),
          datum("RowsUpdated", metrics.updated),
          datum("RowsUnchanged", metrics.unchanged),
        ],
      }),
    );
    return true;
  } catch (error) {
    logger.warn("Publishing metrics failed; the sync itself is unaffected", { error });
    return false;
  }
}
