import { CloudWatchClient } from "@aws-sdk/client-cloudwatch";
import { LambdaClient } from "@aws-sdk/client-lambda";
import type { S3Client } from "@aws-sdk/client-s3";
import { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { createS3FanOutStore } from "../shared/fan-out-store";
import { createLogger, type Logger } from "../shared/logger";
import { createS3Client } from "../shared/s3";
import { createS3WatermarkStore } from "../shared/watermark-store";
import type { IngestConfig } from "./config";
import type { IngestHandlerDependencies } from "./ingest-event";
import { lambdaSelfInvoker } from "./lambda-invoker";
import { createCloudWatchIngestMetrics } from "./metrics";
import { MongoConnection } from "./mongo";
import { createMongoEntryStore } from "./mongo-entry-store";
import { resolveMongoUri } from "./mongo-uri";
import { createS3ArtifactStore, createS3SourceStore } from "./s3-adapters";

/** The clients the adapters wrap; the Lambda's root makes them once per container. */
export interface IngestClients {
  s3: S3Client;
  cloudwatch: CloudWatchClient;
  /** Needed when the connection string comes from Secrets Manager. */
  secrets?: SecretsManagerClient | undefined;
  /** Needed when files continue in a fresh invocation (a function name is configured). */
  lambda?: LambdaClient | undefined;
  logger?: Logger;
}

/**
 * The AWS clients a configuration needs, from the environment (region, credentials,
 * endpoints), each replaceable: local runs and tests bring their own S3 client.
 */
export function createIngestClients(
  config: IngestConfig,
  overrides: Partial<IngestClients> = {},
): IngestClients {
  return {
    s3: overrides.s3 ?? createS3Client(),
    cloudwatch: overrides.cloudwatch ?? new CloudWatchClient({}),
    secrets:
      overrides.secrets ??
      (config.mongoUri.kind === "secret" ? new SecretsManagerClient({}) : undefined),
    lambda:
      overrides.lambda ?? (config.continuation.functionName ? new LambdaClient({}) : undefined),
    ...(overrides.logger ? { logger: overrides.logger } : {}),
  };
}

/**
 * The ingest wired from its configuration and clients: every port gets its adapter. The
 * Lambda's root calls this at cold start; local runs and tests call it with their own
 * configuration and clients. The MongoDB connection is returned too, for closing.
 */
export function composeIngest(
  config: IngestConfig,
  clients: IngestClients,
): IngestHandlerDependencies & { mongo: MongoConnection } {
  const mongo = new MongoConnection(
    () => resolveMongoUri(config.mongoUri, clients.secrets),
    config.dbName,
  );
  const { functionName, marginMs } = config.continuation;
  return {
    mongo,
    settings: config,
    filter: { ingestPrefixes: config.ingestPrefixes, resultsBucket: config.resultsBucket },
    logger: clients.logger ?? createLogger({ function: "ingestResults" }),
    source: createS3SourceStore(clients.s3),
    artifacts: createS3ArtifactStore(clients.s3),
    watermarks: (bucket) => createS3WatermarkStore(clients.s3, bucket),
    fanOuts: (bucket) => createS3FanOutStore(clients.s3, bucket),
    metrics: createCloudWatchIngestMetrics(clients.cloudwatch, config.metricsNamespace),
    entries: createMongoEntryStore(mongo),
    // Big files continue in a fresh asynchronous invocation of this function (by its name,
    // as the stack's grant names it). Outside Lambda there is no name: files never continue.
    ...(functionName && clients.lambda
      ? {
          handOver: { marginMs, continueWith: lambdaSelfInvoker(clients.lambda, functionName) },
        }
      : {}),
  };
}
