import { type CloudWatchClient, PutMetricDataCommand } from "@aws-sdk/client-cloudwatch";
import { INCOMPLETE_RESULTS } from "../shared/metric-names";

export const QUERY_RETRIES_EXHAUSTED = "QueryRetriesExhausted";
export { INCOMPLETE_RESULTS };

/** The metrics the start Lambda emits; an alarm watches each. */
export interface StartMetrics {
  queryRetriesExhausted(queryExecutionId: string): Promise<void>;
  incompleteResults(queryExecutionId: string): Promise<void>;
}

export function createCloudWatchStartMetrics(
  cloudwatch: CloudWatchClient,
  namespace: string,
): StartMetrics {
  // No dimensions: each alarm watches the namespace-wide metric.
  const put = async (name: string) => {
    await cloudwatch.send(
      new PutMetricDataCommand({
        Namespace: namespace,
        MetricData: [{ MetricName: name, Value: 1, Unit: "Count" }],
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
  };
}
