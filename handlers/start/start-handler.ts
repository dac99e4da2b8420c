import { AthenaClient } from "@aws-sdk/client-athena";
import { CloudWatchClient } from "@aws-sdk/client-cloudwatch";
import type { S3Client } from "@aws-sdk/client-s3";
import { SQSClient } from "@aws-sdk/client-sqs";
import type { Context, SQSBatchResponse } from "aws-lambda";
import { createS3FanOutStore } from "../shared/fan-out-store";
import { createLogger, type Logger } from "../shared/logger";
import { createS3Client } from "../shared/s3";
import { createS3WatermarkStore } from "../shared/watermark-store";
import { createAthenaQueryStarter } from "./athena-query";
import type { StartConfig } from "./config";
import { checkFreshness, type FreshnessDeps, type FreshnessOutcome } from "./freshness";
import { createCloudWatchStartMetrics } from "./metrics";
import {
  createSqsRetryScheduler,
  handleQueryStateChange,
  type RetryDeps,
  restartFailedQueries,
  type StateChangeOutcome,
} from "./retry";
import { createS3RunStore } from "./run-store";
import { requestSync, type StartDeps, type StartResult } from "./start-sync";
import { classifyStartEvent } from "./sync-event";

export type StartQueryOutput =
  | StartResult
  | StateChangeOutcome
  | SQSBatchResponse
  | FreshnessOutcome;

export type StartHandler = (event: unknown, context: Context) => Promise<StartQueryOutput>;

export interface StartHandlerDependencies {
  start: StartDeps;
  retry: RetryDeps;
  freshness: FreshnessDeps;
  logger: Logger;
}

/** The clients the start function's adapters wrap. */
export interface StartClients {
  athena: AthenaClient;
  s3: S3Client;
  sqs: SQSClient;
  cloudwatch: CloudWatchClient;
  logger?: Logger;
}

/** Clients from the environment (region, credentials, endpoints), each replaceable. */
export function createStartClients(overrides: Partial<StartClients> = {}): StartClients {
  return {
    athena: overrides.athena ?? new AthenaClient({}),
    s3: overrides.s3 ?? createS3Client(),
    sqs: overrides.sqs ?? new SQSClient({}),
    cloudwatch: overrides.cloudwatch ?? new CloudWatchClient({}),
    ...(overrides.logger ? { logger: overrides.logger } : {}),
  };
}

/** Every port of the start function with its adapter, from a configuration and clients. */
export function composeStart(config: StartConfig, clients: StartClients): StartHandlerDependencies {
  const queries = createAthenaQueryStarter(clients.athena, config);
  const runs = createS3RunStore(clients.s3, config.resultsBucket);
  const watermark = createS3WatermarkStore(clients.s3, config.resultsBucket);
  const scheduler = createSqsRetryScheduler(clients.sqs, config.retryQueueUrl);
  const metrics = createCloudWatchStartMetrics(clients.cloudwatch, config.metricsNamespace);
  const fanOut = createS3FanOutStore(clients.s3, config.resultsBucket);
  const start: StartDeps = { queries, runs, watermark, fanOut, settings: config };
  const retry: RetryDeps = {
    runs,
    queries,
    scheduler,
    metrics,
    watermark,
    fanOut,
    workgroup: config.workgroup,
    start,
  };
  return {
    start,
    retry,
    freshness: { runs, queries, metrics, watermark, fanOut, retry, settings: config },
    logger: clients.logger ?? createLogger({ function: "start-query" }),
  };
}

/**
 * Starts the nightly Athena query (or a requested one) and returns; never waits for it.
 * Also restarts failed queries: Athena's state-change events and the retry queue's
 * messages come here too.
 */
export function createStartHandler(deps: StartHandlerDependencies): StartHandler {
  return async (event, context) => {
    const logger = deps.logger.child({ requestId: context.awsRequestId });
    const input = classifyStartEvent(event);
    try {
      switch (input.kind) {
        case "manual":
          return await requestSync(
            deps.start,
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
            deps.start,
            {
              trigger: { kind: "schedule", id: input.eventId },
              payload: {},
              now: eventTime(input.time),
            },
            logger.child({ eventId: input.eventId }),
          );
        case "query-state-change":
          return await handleQueryStateChange(
            deps.retry,
            input.change,
            logger.child({ eventId: input.eventId }),
          );
        case "retry-messages":
          return await restartFailedQueries(deps.start, input.records, logger, () => new Date());
        case "freshness-check":
          return await checkFreshness(deps.freshness, new Date(), logger);
      }
    } catch (error) {
      // Rethrown so Lambda's retries (same event, same token: no second query) and the Errors alarm take over.
      logger.error("Start failed", { trigger: input.kind, error });
      throw error;
    }
  };
}

function eventTime(time: string): Date {
  const parsed = new Date(time);
  return Number.isNaN(parsed.getTime()) ? new Date() : parsed;
}
