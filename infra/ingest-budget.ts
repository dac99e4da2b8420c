/**
 * The ingest's time budget in one place: its Lambda timeout, the `Duration` alarm's
 * threshold and the continuation margin the stack passes to it (CONTINUATION_MARGIN_MS)
 * are derived here, so they cannot drift apart.
 *
 * An invocation stops reading at the first batch boundary with less than the margin left
 * (after TIMEOUT − MARGIN = 225 s), then commits its in-flight batches, uploads its
 * rejects chunk, writes the checkpoint and invokes itself: about a second in the
 * continuation bench (BENCHMARKS.md), ALLOWANCE (15 s) at most by design. So a continued
 * invocation ends before THRESHOLD = TIMEOUT − HEADROOM (240 s) and only one that really
 * came within HEADROOM (60 s) of its timeout trips the alarm.
 */

/** The ingest function's timeout: the budget of one invocation. */
export const INGEST_TIMEOUT_MS = 300_000;

/** `Duration` alarms when an invocation comes this close to its timeout. */
export const DURATION_ALARM_HEADROOM_MS = 60_000;

/**
 * What the margin keeps for the work after the stop decision (the rest of the batch being
 * read when the margin was crossed, the in-flight writes, rejects chunk, checkpoint and
 * self-invoke), before the alarm's threshold. Sized for the default batch of 1000 rows.
 */
export const HAND_OVER_ALLOWANCE_MS = 15_000;

/** The spec's `Duration > 240000` for the 5-minute timeout. */
export const DURATION_ALARM_THRESHOLD_MS = INGEST_TIMEOUT_MS - DURATION_ALARM_HEADROOM_MS;

/** CONTINUATION_MARGIN_MS: the ingest's default (handlers/ingest/continuation.ts) is the same. */
export const CONTINUATION_MARGIN_MS = DURATION_ALARM_HEADROOM_MS + HAND_OVER_ALLOWANCE_MS;
