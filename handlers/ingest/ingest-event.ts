import type { Context, S3Event, S3EventRecord } from "aws-lambda";
import type { Logger } from "../shared/logger";
import { redactSecrets } from "../shared/redact";
import { type ContinuationEvent, isContinuationEvent, parseContinuation } from "./continuation";
import { IngestFailedError, MongoUnavailableError } from "./errors";
import { FileRun } from "./file-run";
import { reportNotAttempted } from "./finish-file";
import { type IngestDependencies, type Invocation, ingestObject } from "./ingest-object";
import { InvocationLookups } from "./lookups";
import type { SelfInvoker } from "./ports";
import { type IngestResponse, type ObjectOutcome, summarize } from "./response";
import { classifyRecord, eventRecords, type RecordFilter } from "./s3-records";

export interface IngestHandlerDependencies extends IngestDependencies {
  filter: RecordFilter;
  logger: Logger;
  /** Files beyond one invocation are handed over to a fresh one; without it (local runs) never. */
  handOver?: { marginMs: number; continueWith: SelfInvoker };
}

export type IngestHandler = (
  event: S3Event | ContinuationEvent,
  context: Context,
) => Promise<IngestResponse>;

/**
 * S3 ObjectCreated → ingest each CSV record of the event. Returns the spec's
 * SyncResponse summed over the objects, with per-object detail. Throws when any object
 * failed as a unit (MongoDB unreachable, object unreadable) so Lambda's retries and the
 * on-failure destination take over; data problems are reported, not thrown.
 * Also accepts the continuation event this function sends itself for a file too big for
 * one invocation (continuation.ts).
 */
export function createIngestHandler(deps: IngestHandlerDependencies): IngestHandler {
  return async (event, context) => {
    const started = Date.now();
    const logger = deps.logger.child({ requestId: context?.awsRequestId });
    const invocation = startInvocation(deps, context, logger);
    if (isContinuationEvent(event)) {
      const run = FileRun.resume(parseContinuation(event));
      return summarize([await continueFile(run, deps, invocation)], Date.now() - started);
    }
    const records = eventRecords(event);
    if (records.length === 0) {
      logger.info("Event has no records (s3:TestEvent or empty); nothing to ingest");
      return summarize([], Date.now() - started);
    }
    const outcomes = await ingestRecords(records, deps, invocation);
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
  };
}

function startInvocation(
  deps: IngestHandlerDependencies,
  context: Context | undefined,
  logger: Logger,
): Invocation {
  const { handOver } = deps;
  return {
    startedAt: Date.now(),
    logger,
    lookups: new InvocationLookups(deps.entries, deps.settings.publicationCodeOverrides, logger),
    ...(handOver
      ? {
          handOver: {
            shouldStop: deadlinePassed(context, handOver.marginMs),
            continueWith: handOver.continueWith,
          },
        }
      : {}),
  };
}

/** True once the invocation has less than `marginMs` left (never without a Lambda context). */
export function deadlinePassed(
  context: Pick<Context, "getRemainingTimeInMillis"> | undefined,
  marginMs: number,
): () => boolean {
  if (typeof context?.getRemainingTimeInMillis !== "function") return () => false;
  return () => context.getRemainingTimeInMillis() < marginMs;
}

/** The rest of a handed-over file; any failure fails the invocation (Lambda retries it from the same checkpoint). */
async function continueFile(
  run: FileRun,
  deps: IngestDependencies,
  invocation: Invocation,
): Promise<ObjectOutcome> {
  const { bucket, key } = run.object;
  try {
    const report = await ingestObject(run, deps, invocation);
    return { status: report.success ? "ingested" : "rejected", bucket, key, report };
  } catch (error) {
    throw new IngestFailedError(`Ingest failed for ${key}: ${(error as Error).message}`, {
      keys: [key],
    });
  }
}

/**
 * Each record in turn: ignored or refused with a reason, or ingested. Once MongoDB is
 * found down, the rest fail fast (with a failure report each): the retry covers them.
 */
async function ingestRecords(
  records: S3EventRecord[],
  deps: IngestHandlerDependencies,
  invocation: Invocation,
): Promise<ObjectOutcome[]> {
  const { logger } = invocation;
  const outcomes: ObjectOutcome[] = [];
  let mongoDown: MongoUnavailableError | undefined;
  for (const record of records) {
    const decision = classifyRecord(record, deps.filter);
    const { bucket, key } = decision.object;
    if (decision.kind === "ignore") {
      logger.info("Object ignored", { bucket, key, reason: decision.reason });
      outcomes.push({ status: "ignored", bucket, key, reason: decision.reason });
    } else if (decision.kind === "refuse") {
      logger.error("Object refused", { bucket, key, reason: decision.reason });
      outcomes.push({ status: "refused", bucket, key, reason: decision.reason });
    } else if (mongoDown) {
      logger.error("Ingest not attempted: MongoDB is unavailable", { bucket, key });
      await reportNotAttempted(decision.object, deps.artifacts, mongoDown.message, logger);
      outcomes.push({ status: "failed", bucket, key, error: mongoDown.message });
    } else {
      try {
        const report = await ingestObject(FileRun.start(decision.object), deps, invocation);
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
  }
  return outcomes;
}
