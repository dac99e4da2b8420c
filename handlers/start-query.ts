/**
 * startQuery Lambda: starts the nightly Athena query (or a requested one) and
 * returns; it never waits for the query. Also restarts failed queries: Athena's
 * state-change events and the retry queue's messages come here too.
 * Composition root only: the work lives in ./start/.
 */
import { AthenaClient } from "@aws-sdk/client-athena";
import { CloudWatchClient } from "@aws-sdk/client-cloudwatch";
import { SQSClient } from "@aws-sdk/client-sqs";
import type { Context, SQSBatchResponse } from "aws-lambda";
import { createLogger } from "./shared/logger";
import { createS3Client } from "./shared/s3";
import { createS3WatermarkStore } from "./shared/watermark-store";
import { createAthenaQueryStarter } from "./start/athena-query";
import { loadStartConfig } from "./start/config";
import { createCloudWatchStartMetrics } from "./start/metrics";
import {
  createSqsRetryScheduler,
  handleQueryStateChange,
  restartFailedQueries,
  type StateChangeOutcome,
} from "./start/retry";
import { createS3RunStore } from "./start/run-store";
import { requestSync, type StartResult } from "./start/start-sync";
import { classifyStartEvent } from "./start/sync-event";

const config = loadStartConfig();
const queries = createAthenaQueryStarter(new AthenaClient({}), config);
const s3 = createS3Client();
const runs = createS3RunStore(s3, config.resultsBucket);
const watermark = createS3WatermarkStore(s3, config.resultsBucket);
const scheduler = createSqsRetryScheduler(new SQSClient({}), config.retryQueueUrl);
const metrics = createCloudWatchStartMetrics(new CloudWatchClient({}), config.metricsNamespace);
const startDeps = { queries, runs, watermark, settings: config };
const retryDeps = { runs, queries, scheduler, metrics, workgroup: config.workgroup };
const baseLogger = createLogger({ function: "start-query" });

export type StartQueryOutput = StartResult | StateChangeOutcome | SQSBatchResponse;

export async function handler(event: unknown, context: Context): Promise<StartQueryOutput> {
  const logger = baseLogger.child({ requestId: context.awsRequestId });
  const input = classifyStartEvent(event);
  try {
    switch (input.kind) {
      case "manual":
        return await requestSync(
          startDeps,
          {
            trigger: { kind: "manual", id: context.awsRequestId },
            payload: input.payload,
            now: new Date(),
          },
          logger,
        );
      case "schedule":
        // "Yesterday" is the day before the schedule fired, so a late retry of the
        // same event (same id, same token) asks for the same range.
        return await requestSync(
          startDeps,
          {
            trigger: { kind: "schedule", id: input.eventId },
            payload: {},
            now: eventTime(input.time),
          },
          logger.child({ eventId: input.eventId }),
        );
      case "query-state-change":
        return await handleQueryStateChange(
          retryDeps,
          input.change,
          logger.child({ eventId: input.eventId }),
        );
      case "retry-messages":
        return await restartFailedQueries(startDeps, input.records, logger, () => new Date());
    }
  } catch (error) {
    // Rethrown so Lambda's retries (same event, same token: no second query) and the Errors alarm take over.
    logger.error("Start failed", { trigger: input.kind, error });
    throw error;
  }
}

function eventTime(time: string): Date {
  const parsed = new Date(time);
  return Number.isNaN(parsed.getTime()) ? new Date() : parsed;
}
