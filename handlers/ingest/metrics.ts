import {
  type CloudWatchClient,
  type MetricDatum,
  PutMetricDataCommand,
  type StandardUnit,
} from "@aws-sdk/client-cloudwatch";
import type { Logger } from "../shared/logger";
import { INCOMPLETE_RESULTS } from "../shared/metric-names";
import type { IngestMetricsPublisher } from "./ports";

/**
 * What the invocation that finishes a file publishes about the whole file, once: the
 * spec's counts, the entry counts operators need, and how long and in how many
 * invocations the file went (FileDuration, FileInvocations).
 */
export interface FileMetrics {
  synced: number;
  skipped: number;
  errors: number;
  inserted: number;
  updated: number;
  unchanged: number;
  /** First invocation's start to this (last) invocation's finish: the report's `duration`. */
  fileDurationMs: number;
  /** Invocations the file took (1 unless it continued in fresh invocations). */
  invocations: number;
  /** The ingest recorded that the records read differ from Athena's OutputRows. */
  incomplete?: boolean;
}

export interface IngestMetrics {
  /**
   * This invocation's wall time so far, in ms: what the `Duration` alarm compares with the
   * invocation's timeout. Every invocation of a real run publishes it, also one that hands
   * the file over or fails.
   */
  invocationDurationMs: number;
  /** Only from the invocation that finishes the file: never twice, so sums do not double count. */
  file?: FileMetrics;
}

/** The data points of one PutMetricData: `Duration` always, the file's metrics when given. */
export function ingestMetricData(metrics: IngestMetrics): MetricDatum[] {
  const datum = (name: string, value: number, unit: StandardUnit = "Count"): MetricDatum => ({
    MetricName: name,
    Value: value,
    Unit: unit,
  });
  const data = [datum("Duration", metrics.invocationDurationMs, "Milliseconds")];
  const { file } = metrics;
  if (file) {
    data.push(
      datum("RowsSynced", file.synced),
      datum("RowsSkipped", file.skipped),
      datum("Errors", file.errors),
      datum("RowsInserted", file.inserted),
      datum("RowsUpdated", file.updated),
      datum("RowsUnchanged", file.unchanged),
      datum("FileDuration", file.fileDurationMs, "Milliseconds"),
      datum("FileInvocations", file.invocations),
    );
    if (file.incomplete) data.push(datum(INCOMPLETE_RESULTS, 1));
  }
  return data;
}

/**
 * One PutMetricData per object per invocation of a real run. No dimensions, so the
 * alarms watch one series each. Publishing is best effort: a failure is logged and
 * never fails or changes the sync.
 */
export async function publishIngestMetrics(
  cloudwatch: CloudWatchClient,
  namespace: string,
  metrics: IngestMetrics,
  logger: Logger,
): Promise<boolean> {
  try {
    await cloudwatch.send(
      new PutMetricDataCommand({ Namespace: namespace, MetricData: ingestMetricData(metrics) }),
    );
    return true;
  } catch (error) {
    logger.warn("Publishing metrics failed; the sync itself is unaffected", { error });
    return false;
  }
}

/** The CloudWatch adapter of the metrics port. */
export function createCloudWatchIngestMetrics(
  cloudwatch: CloudWatchClient,
  namespace: string,
): IngestMetricsPublisher {
  return {
    publish: (metrics, logger) => publishIngestMetrics(cloudwatch, namespace, metrics, logger),
  };
}
