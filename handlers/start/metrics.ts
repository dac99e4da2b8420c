import { type CloudWatchClient, PutMetricDataCommand } from "@aws-sdk/client-cloudwatch";
import { INCOMPLETE_RESULTS, MISSING_RESULTS } from "../shared/metric-names";

export const QUERY_RETRIES_EXHAUSTED = "QueryRetriesExhausted";
export { INCOMPLETE_RESULTS };

/** The metrics the start Lambda emits; an alarm watches each. */
export interface StartMetrics {
  queryRetriesExhausted(queryExecutionId: string): Promise<void>;
  incompleteResults(queryExecutionId: string): Promise<void>;
  /** Every freshness check publishes its count, 0 included, so the dashboard shows the checks ran. */
  missingResults(count: number): Promise<void>;
}

export function createCloudWatchStartMetrics(
  cloudwatch: CloudWatchClient,
  namespace: string,
): StartMetrics {
  // No dimensions: each alarm watches the namespace-wide metric.
  const put = async (name: string, value = 1) => {
    await cloudwatch.send(
      new PutMetricDataCommand({
        Namespace: namespace,
        MetricData: [{ MetricName: name, Value: value, Unit: "Count" }],
      }),
    );
  };
  return {
    async queryRetriesExhausted() {
      await put(QUERY_RETRIES_EXHAUSTED);
    },
    async incompleteResults() {
      await put(INCOMPLETE_RESULTS);
    },
    async missingResults(count) {
      await put(MISSING_RESULTS, count);
    },
  };
}
