import type { SQSRecord } from "aws-lambda";
import { isCalendarDate } from "../shared/dates";
import type { SyncRequest } from "../shared/sync-request";

/**
 * The four things that invoke the start Lambda, told apart by shape:
 * a person (the spec's SyncEvent), the nightly EventBridge schedule, an Athena
 * "Query State Change" for a query of ours, and the retry queue's SQS batch.
 */
export type StartEvent =
  | { kind: "manual"; payload: unknown }
  | { kind: "schedule"; eventId: string; time: string }
  | { kind: "query-state-change"; eventId: string; change: QueryStateChange }
  | { kind: "retry-messages"; records: SQSRecord[] }
  | { kind: "freshness-check" };

/** The freshness schedule's constant input (the stack's freshness-check rule). */
export const FRESHNESS_CHECK_EVENT = { trackingSyncCheck: "freshness" } as const;

export interface QueryStateChange {
  queryExecutionId: string;
  currentState: string;
  previousState?: string;
  workgroupName: string;
}

export function classifyStartEvent(event: unknown): StartEvent {
  if (isRecord(event)) {
    if (event.trackingSyncCheck === FRESHNESS_CHECK_EVENT.trackingSyncCheck) {
      return { kind: "freshness-check" };
    }
    if (event.source === "aws.events" && event["detail-type"] === "Scheduled Event") {
      return { kind: "schedule", eventId: String(event.id), time: String(event.time) };
    }
    if (event.source === "aws.athena" && event["detail-type"] === "Athena Query State Change") {
      const detail = isRecord(event.detail) ? event.detail : {};
      return {
        kind: "query-state-change",
        eventId: String(event.id),
        change: {
          queryExecutionId: String(detail.queryExecutionId ?? ""),
          currentState: String(detail.currentState ?? ""),
          ...(typeof detail.previousState === "string"
            ? { previousState: detail.previousState }
            : {}),
          workgroupName: String(detail.workgroupName ?? ""),
        },
      };
    }
    if (
      Array.isArray(event.Records) &&
      event.Records.length > 0 &&
      event.Records.every((record) => isRecord(record) && record.eventSource === "aws:sqs")
    ) {
      return { kind: "retry-messages", records: event.Records as SQSRecord[] };
    }
  }
  return { kind: "manual", payload: event };
}

export type Validated<T> = { ok: true; value: T } | { ok: false; error: string };

export interface RequestLimits {
  /** Today's UTC date, `YYYY-MM-DD`: a requested date may be today, never later. */
  today: string;
  maxDays: number;
}

const ALLOWED_FIELDS = ["date", "days", "publicationCode", "dryRun"] as const;
const PUBLICATION_CODE = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Checks a manual request before anything is started. Every problem is named in
 * one message, so a person fixes their payload in one go.
 */
export function validateSyncRequest(
  payload: unknown,
  limits: RequestLimits,
): Validated<SyncRequest> {
  // An invoke without a payload arrives as null: that is the default request.
  if (payload === null || payload === undefined) return { ok: true, value: {} };
  if (!isRecord(payload)) {
    return {
      ok: false,
      error: `the request must be a JSON object with optional fields ${ALLOWED_FIELDS.join(", ")}`,
    };
  }

  const problems: string[] = [];
  const unknown = Object.keys(payload).filter(
    (key) => !(ALLOWED_FIELDS as readonly string[]).includes(key),
  );
  if (unknown.length > 0) {
    problems.push(
      `unknown field${unknown.length > 1 ? "s" : ""} ${unknown.map((key) => `"${key}"`).join(", ")} (allowed: ${ALLOWED_FIELDS.join(", ")})`,
    );
  }

  const request: SyncRequest = {};
  const { date, days, publicationCode, dryRun } = payload;

  if (date !== undefined) {
    if (typeof date !== "string" || !isCalendarDate(date)) {
      problems.push(`date must be a real calendar date YYYY-MM-DD, got ${JSON.stringify(date)}`);
    } else if (date > limits.today) {
      problems.push(`date ${date} is in the future (today is ${limits.today} UTC)`);
    } else {
      request.date = date;
    }
  }

  if (days !== undefined) {
    if (typeof days !== "number" || !Number.isInteger(days) || days < 1 || days > limits.maxDays) {
      problems.push(
        `days must be a whole number from 1 to ${limits.maxDays}, got ${JSON.stringify(days)}`,
      );
    } else {
      request.days = days;
    }
  }

  if (publicationCode !== undefined) {
    if (typeof publicationCode !== "string" || !PUBLICATION_CODE.test(publicationCode)) {
      problems.push(
        `publicationCode must be 1-64 letters, digits, "_" or "-", got ${JSON.stringify(publicationCode)}`,
      );
    } else {
      request.publicationCode = publicationCode;
    }
  }

  if (dryRun !== undefined) {
    if (typeof dryRun !== "boolean") {
      problems.push(`dryRun must be true or false, got ${JSON.stringify(dryRun)}`);
    } else {
      request.dryRun = dryRun;
    }
  }

  return problems.length > 0
    ? { ok: false, error: `Invalid request: ${problems.join("; ")}` }
    : { ok: true, value: request };
}

export function isPublicationCode(value: unknown): value is string {
  return typeof value === "string" && PUBLICATION_CODE.test(value);
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
