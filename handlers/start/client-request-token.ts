import { createHash } from "node:crypto";
import type { RunTrigger } from "../shared/run-manifest";
import type { DateRange } from "../shared/sync-request";

export interface TokenInput {
  trigger: RunTrigger;
  dateRange: DateRange;
  publicationCode?: string | undefined;
  dryRun: boolean;
  attempt: number;
}

/**
 * Athena's `ClientRequestToken` makes StartQueryExecution idempotent: the same
 * token returns the query it already started. Derived from the triggering event
 * (schedule event id, manual invoke request id, failed query id + attempt) and the
 * normalized request, so a redelivered or retried trigger never starts a second
 * query while a different request always gets its own. sha256 hex is 64
 * characters, inside Athena's 32-128.
 */
export function clientRequestToken(input: TokenInput): string {
  const canonical = JSON.stringify([
    "tracking-sync/v1",
    input.trigger.kind,
    input.trigger.id,
    input.dateRange.start,
    input.dateRange.end,
    input.publicationCode?.toLowerCase() ?? null,
    input.dryRun,
    input.attempt,
  ]);
  return createHash("sha256").update(canonical).digest("hex");
}
