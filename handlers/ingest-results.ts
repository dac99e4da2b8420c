import { CloudWatchClient } from "@aws-sdk/client-cloudwatch";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import type { Context, S3Event } from "aws-lambda";
import { loadIngestConfig } from "./ingest/config";
import {
  type ContinuationEvent,
  deadlinePassed,
  isContinuationEvent,
  lambdaSelfInvoker,
  loadContinuationConfig,
  parseContinuation,
} from "./ingest/continuation";
import { IngestFailedError, MongoUnavailableError } from "./ingest/errors";
import {
  type IngestDependencies,
  type IngestObjectOptions,
  InvocationContext,
  ingestObject,
  reportNotAttempted,
} from "./ingest/ingest-object";
import { MongoConnection } from "./ingest/mongo";
import { resolveMongoUri } from "./ingest/mongo-uri";
import { type IngestResponse, type ObjectOutcome, summarize } from "./ingest/response";
import { classifyRecord, eventRecords } from "./ingest/s3-records";
import { createLogger } from "./shared/logger";
import { redactSecrets } from "./shared/redact";
import { createS3Client } from "./shared/s3";

// Composition root: configuration and clients are created once per container (cold start).
const config = loadIngestConfig();
const logger = createLogger({ function: "ingestResults" });
const secrets = config.mongoUri.kind === "secret" ? new SecretsManagerClient({}) : undefined;
const deps: IngestDependencies = {
  config,
  s3: createS3Client(),
  cloudwatch: new CloudWatchClient({}),
  mongo: new MongoConnection(() => resolveMongoUri(config.mongoUri, secrets), config.dbName),
  logger,
};
const continuationConfig = loadContinuationConfig();
// Big files continue in a fresh asynchronous invocation of this function (by its name,
// as the stack's grant names it). Outside Lambda there is no name: files never continue.
const continueWith = continuationConfig.functionName
  ? lambdaSelfInvoker(new LambdaClient({}), continuationConfig.functionName)
  : undefined;

/**
 * S3 ObjectCreated → ingest each CSV record of the event. Returns the spec's
 * SyncResponse summed over the objects, with per-object detail. Throws when any object
 * failed as a unit (MongoDB unreachable, object unreadable) so Lambda's retries and the
 * on-failure destination take over; data problems are reported, not thrown.
 * Also accepts the continuation event this function sends itself for a file too big for
 * one invocation (handlers/ingest/continuation.ts).
 */
export async function handler(
  event: S3Event | ContinuationEvent,
  context: Context,
): Promise<IngestResponse> {
  const started = Date.now();
  const log = logger.child({ requestId: context?.awsRequestId });
  const continuation: IngestObjectOptions["continuation"] = continueWith
    ? { shouldStop: deadlinePassed(context, continuationConfig.marginMs), continueWith }
    : undefined;
  if (isContinuationEvent(event)) {
    const state = parseContinuation(event);
    const invocation = new InvocationContext({ ...deps, logger: log });
    const { bucket, key } = state.object;
    try {
      const report = await ingestObject(state.object, { ...deps, logger: log }, invocation, {
        resume: state,
        continuation,
      });
      const outcome: ObjectOutcome = {
        status: report.success ? "ingested" : "rejected",
        bucket,
        key,
        report,
      };
      return summarize([outcome], Date.now() - started);
    } catch (error) {
      // Lambda retries this invocation from the same checkpoint.
      throw new IngestFailedError(`Ingest failed for ${key}: ${(error as Error).message}`, {
        keys: [key],
      });
    }
  }
  const records = eventRecords(event);
  if (records.length === 0) {
    log.info("Event has no records (s3:TestEvent or empty); nothing to ingest");
    return summarize([], Date.now() - started);
  }
  const invocation = new InvocationContext({ ...deps, logger: log });
  const outcomes: ObjectOutcome[] = [];
  let mongoDown: MongoUnavailableError | undefined;
  for (const record of records) {
    const decision = classifyRecord(record, {
      ingestPrefixes: config.ingestPrefixes,
      resultsBucket: config.resultsBucket,
    });
    const { bucket, key } = decision.object;
    if (decision.kind === "ignore") {
      log.info("Object ignored", { bucket, key, reason: decision.reason });
      outcomes.push({ status: "ignored", bucket, key, reason: decision.reason });
      continue;
    }
    if (decision.kind === "refuse") {
      log.error("Object refused", { bucket, key, reason: decision.reason });
      outcomes.push({ status: "refused", bucket, key, reason: decision.reason });
      continue;
    }
    if (mongoDown) {
      // MongoDB is down for this invocation: fail the rest fast, the retry covers them.
      log.error("Ingest not attempted: MongoDB is unavailable", { bucket, key });
      await reportNotAttempted(decision.object, { ...deps, logger: log }, mongoDown.message);
      outcomes.push({ status: "failed", bucket, key, error: mongoDown.message });
      continue;
    }
    try {
      const report = await ingestObject(decision.object, { ...deps, logger: log }, invocation, {
        continuation,
      });
      outcomes.push({ status: report.success ? "ingested" : "rejected", bucket, key, report });
    } catch (error) {
      if (error instanceof MongoUnavailableError) mongoDown = error;
      outcomes.push({
        status: "failed",
        bucket,
        key,
        error: redactSecrets((error as Error).message),
      });
    }
  }
  const response = summarize(outcomes, Date.now() - started);
  const failed = outcomes.filter((outcome) => outcome.status === "failed");
  if (failed.length > 0) {
    throw new IngestFailedError(
      `Ingest failed for ${failed.length} object(s): ${failed
        .map((outcome) => `${outcome.key}: ${outcome.status === "failed" ? outcome.error : ""}`)
        .join("; ")}`,
      { keys: failed.map((outcome) => outcome.key) },
    );
  }
  return response;
}
