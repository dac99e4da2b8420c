import { SendMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import type { SQSBatchResponse, SQSRecord } from "aws-lambda";
import { isCalendarDate } from "../shared/dates";
import { ConfigurationError, TrackingSyncError } from "../shared/errors";
import type { Logger } from "../shared/logger";
import type { RunManifest } from "../shared/run-manifest";
import type { DateRange, SyncRequest } from "../shared/sync-request";
import type { QueryInspector } from "./athena-query";
import { dayEnded, dayRestarted } from "./fan-out";
import type { StartMetrics } from "./metrics";
import { type OutputRowsOutcome, type ReconcileDeps, recordOutputRows } from "./reconcile";
import type { RunStore } from "./run-store";
import { startRun } from "./start-run";
import type { StartDeps } from "./start-sync";
import { isPublicationCode, isRecord, type QueryStateChange } from "./sync-event";

/** At most three attempts in all (the spec's "max 3 attempts"). */
export const MAX_ATTEMPTS = 3;
/** Wait before attempt 2 and before attempt 3: a minute, then five (SQS allows up to 15). */
export const RETRY_DELAYS_SECONDS: readonly [number, number] = [60, 300];

/**
 * The retry queue's message: everything needed to start the failed query again.
 * Built only from the failed query's manifest, so a duplicate state-change event
 * produces a byte-identical message, and both deliveries start the same query
 * (same ClientRequestToken).
 */
export interface RetryMessage {
  kind: "restart-failed-query";
  version: 1;
  previousQueryExecutionId: string;
  /** The attempt this restart is (2 or 3). */
  attempt: number;
  request: SyncRequest;
  dateRange: DateRange;
  publicationCode?: string;
  dryRun: boolean;
  /** The fanned-out request the failed day belongs to. */
  planId?: string;
}

export interface RetryScheduler {
  schedule(message: RetryMessage, delaySeconds: number): Promise<void>;
}

export type StateChangeOutcome =
  | { action: "ignored"; queryExecutionId: string; reason: string }
  | { action: "cancelled"; queryExecutionId: string }
  | {
      action: "retry-scheduled";
      queryExecutionId: string;
      nextAttempt: number;
      delaySeconds: number;
    }
  | { action: "retries-exhausted"; queryExecutionId: string; attempts: number }
  | OutputRowsOutcome;

export interface RetryDeps extends ReconcileDeps {
  runs: RunStore;
  queries: QueryInspector;
  scheduler: RetryScheduler;
  metrics: StartMetrics;
  workgroup: string;
  /** What starts a fanned-out request's next day when one of its queries ends. */
  start: StartDeps;
}

export class InvalidRetryMessageError extends TrackingSyncError {}

/**
 * An Athena state change for one of our queries. SUCCEEDED: record its row count and
 * reconcile the result file with it (reconcile.ts). FAILED: restart it from its
 * manifest with a growing delay, up to MAX_ATTEMPTS, then emit the metric the
 * "retries exhausted" alarm watches. CANCELLED: a person stopped it on purpose,
 * so it is logged and left alone. Queries without a manifest are not ours.
 */
export async function handleQueryStateChange(
  deps: RetryDeps,
  change: QueryStateChange,
  logger: Logger,
): Promise<StateChangeOutcome> {
  const queryExecutionId = change.queryExecutionId;
  const log = logger.child({ queryExecutionId });
  const ignore = (reason: string): StateChangeOutcome => {
    log.info("Query state change ignored", { reason, state: change.currentState });
    return { action: "ignored", queryExecutionId, reason };
  };

  if (change.workgroupName !== deps.workgroup) {
    return ignore(`workgroup ${change.workgroupName} is not ours (${deps.workgroup})`);
  }
  if (!["FAILED", "CANCELLED", "SUCCEEDED"].includes(change.currentState)) {
    return ignore(`state ${change.currentState} needs no action`);
  }
  if (!queryExecutionId) return ignore("event names no query");

  const manifest = await deps.runs.readManifest(queryExecutionId);
  if (!manifest) return ignore("no run manifest: not started by this function");

  if (change.currentState === "SUCCEEDED") {
    // The slot first: a reconciliation that keeps failing must not hold the rest of a backfill.
    await dayEnded(deps.start, manifest, "succeeded", log, new Date());
    return recordOutputRows(deps, manifest, log);
  }
  const run = { dateRange: manifest.dateRange, attempt: manifest.attempt, dryRun: manifest.dryRun };
  if (change.currentState === "CANCELLED") {
    log.warn("Query was cancelled; not restarted (cancelling is a deliberate act)", run);
    await dayEnded(deps.start, manifest, "cancelled", log, new Date());
    return { action: "cancelled", queryExecutionId };
  }

  const failure = await deps.queries.describeFailure(queryExecutionId).catch((error: unknown) => {
    // Only for the log line: the restart does not depend on it.
    log.warn("Could not read the failure reason", { error });
    return {};
  });

  if (manifest.attempt >= MAX_ATTEMPTS) {
    await deps.metrics.queryRetriesExhausted(queryExecutionId);
    log.error(`Query failed on attempt ${manifest.attempt} of ${MAX_ATTEMPTS}; giving up`, {
      ...run,
      failure,
    });
    await dayEnded(deps.start, manifest, "failed", log, new Date());
    return { action: "retries-exhausted", queryExecutionId, attempts: manifest.attempt };
  }

  const delaySeconds = retryDelaySeconds(manifest.attempt);
  const message = retryMessageFor(manifest);
  await deps.scheduler.schedule(message, delaySeconds);
  log.warn("Query failed; restart scheduled", {
    ...run,
    failure,
    nextAttempt: message.attempt,
    delaySeconds,
  });
  return {
    action: "retry-scheduled",
    queryExecutionId,
    nextAttempt: message.attempt,
    delaySeconds,
  };
}

/** Delay before the attempt after `failedAttempt` (1 → 60 s, 2 → 300 s). */
export function retryDelaySeconds(failedAttempt: number): number {
  return RETRY_DELAYS_SECONDS[Math.min(failedAttempt, RETRY_DELAYS_SECONDS.length) - 1] ?? 0;
}

export function retryMessageFor(manifest: RunManifest): RetryMessage {
  return {
    kind: "restart-failed-query",
    version: 1,
    previousQueryExecutionId: manifest.queryExecutionId,
    attempt: manifest.attempt + 1,
    request: manifest.request,
    dateRange: manifest.dateRange,
    ...(manifest.publicationCode !== undefined
      ? { publicationCode: manifest.publicationCode }
      : {}),
    dryRun: manifest.dryRun,
    ...(manifest.planId !== undefined ? { planId: manifest.planId } : {}),
  };
}

/**
 * The retry queue's batch: restart each failed query. A record that cannot be
 * started is reported back to SQS (partial batch response), redelivered, and after
 * the queue's receive limit lands in its dead-letter queue, which has an alarm.
 */
export async function restartFailedQueries(
  deps: StartDeps,
  records: SQSRecord[],
  logger: Logger,
  now: () => Date,
): Promise<SQSBatchResponse> {
  const batchItemFailures: SQSBatchResponse["batchItemFailures"] = [];
  for (const record of records) {
    const log = logger.child({ messageId: record.messageId });
    try {
      const message = parseRetryMessage(record.body);
      const { queryExecutionId } = await startRun(
        deps,
        {
          trigger: { kind: "retry", id: message.previousQueryExecutionId },
          request: message.request,
          dateRange: message.dateRange,
          publicationCode: message.publicationCode,
          dryRun: message.dryRun,
          attempt: message.attempt,
          previousQueryExecutionId: message.previousQueryExecutionId,
          planId: message.planId,
        },
        log,
        now(),
      );
      await dayRestarted(deps, message, queryExecutionId, message.attempt);
    } catch (error) {
      log.error("Restart failed; SQS will redeliver the message", { error });
      batchItemFailures.push({ itemIdentifier: record.messageId });
    }
  }
  return { batchItemFailures };
}

export function parseRetryMessage(body: string): RetryMessage {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    throw new InvalidRetryMessageError("retry message is not JSON");
  }
  const problem = retryMessageProblem(value);
  if (problem) throw new InvalidRetryMessageError(`invalid retry message: ${problem}`);
  return value as RetryMessage;
}

function retryMessageProblem(value: unknown): string | undefined {
  if (!isRecord(value)) return "not an object";
  if (value.kind !== "restart-failed-query" || value.version !== 1)
    return "unknown kind or version";
  if (typeof value.previousQueryExecutionId !== "string" || !value.previousQueryExecutionId) {
    return "no previousQueryExecutionId";
  }
  const attempt = value.attempt;
  if (
    typeof attempt !== "number" ||
    !Number.isInteger(attempt) ||
    attempt < 2 ||
    attempt > MAX_ATTEMPTS
  ) {
    return `attempt must be 2..${MAX_ATTEMPTS}`;
  }
  const range = value.dateRange;
  if (
    !isRecord(range) ||
    typeof range.start !== "string" ||
    typeof range.end !== "string" ||
    !isCalendarDate(range.start) ||
    !isCalendarDate(range.end) ||
    range.start > range.end
  ) {
    return "dateRange must be two calendar dates, start not after end";
  }
  if (value.publicationCode !== undefined && !isPublicationCode(value.publicationCode)) {
    return "invalid publicationCode";
  }
  if (typeof value.dryRun !== "boolean") return "dryRun must be a boolean";
  if (value.planId !== undefined && typeof value.planId !== "string") return "invalid planId";
  if (!isRecord(value.request)) return "request must be an object";
  return undefined;
}

/** Schedules restarts on the encrypted SQS delay queue whose consumer is this function. */
export function createSqsRetryScheduler(
  sqs: SQSClient,
  queueUrl: string | undefined,
): RetryScheduler {
  return {
    async schedule(message, delaySeconds) {
      if (!queueUrl) {
        throw new ConfigurationError(
          "Missing required environment variable RETRY_QUEUE_URL: cannot restart a failed query",
          { name: "RETRY_QUEUE_URL", previousQueryExecutionId: message.previousQueryExecutionId },
        );
      }
      await sqs.send(
        new SendMessageCommand({
          QueueUrl: queueUrl,
          MessageBody: JSON.stringify(message),
          DelaySeconds: delaySeconds,
        }),
      );
    },
  };
}
