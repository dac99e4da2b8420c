import { type CloudWatchClient, PutMetricDataCommand } from "@aws-sdk/client-cloudwatch";

export const QUERY_RETRIES_EXHAUSTED = "QueryRetriesExhausted";

/** The one metric the start Lambda emits: an alarm watches it. */
export interface StartMetrics {
  queryRetriesExhausted(queryExecutionId: string): Promise<void>;
}

export function createCloudWatchStartMetrics(
  cloudwatch: CloudWatchClient,
  namespace: string,
): StartMetrics {
  return {
    async queryRetriesExhausted() {
      // No dimensions: the alarm watches the namespace-wide metric.
      await cloudwatch.send(
        new PutMetricDataCommand({
          Namespace: namespace,
          MetricData: [{ MetricName: QUERY_RETRIES_EXHAUSTED, Value: 1, Unit: "Count" }],
        }),
      );
    },
  };
}
