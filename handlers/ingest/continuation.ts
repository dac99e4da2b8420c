import { TrackingSyncError } from "../shared/errors";
import type { Checkpoint } from "./batch-pipeline";
import type { RunOptions } from "./run-options";
import type { S3ObjectRef } from "./s3-records";
import type { TallySnapshot } from "./tally";

/**
 * Files beyond one invocation. When the time left falls below a margin, the ingest stops
 * reading at a committed batch boundary and hands the rest of the file to a fresh
 * asynchronous invocation of the same function, with everything it needs in the event
 * itself (`{ trackingSyncContinuation: ContinuationState }`). That invocation reads the
 * object from the checkpoint's byte offset with a ranged GET, conditional on the ETag the
 * first invocation read, and keeps counting from the handed-over tally. Only the
 * invocation that reaches the end of the file writes the report, the rejects object,
 * the file's metrics (counts, FileDuration, FileInvocations) and the watermark, so they
 * cover the whole file exactly once. Every invocation publishes its own `Duration`.
 * This module holds the state and its parsing; `file-run.ts` builds the state,
 * `finish-file.ts` hands it over, `rejects.ts` keeps the rejects parts.
 */

export const CONTINUATION_VERSION = 1;

/**
 * Time kept back when deciding to stop (CONTINUATION_MARGIN_MS). The decision is taken
 * after a submitted batch, so the batch being read when the margin was crossed finishes
 * first; then the invocation lets the in-flight bulk writes commit (at most MAX_IN_FLIGHT
 * batches, normally well under a second, bounded by the driver's 60 s socket timeout only
 * when MongoDB stalls), uploads its rejects chunk, writes the checkpoint and invokes itself
 * (~100 ms each); the invocation that reaches the end also streams the earlier rejects
 * chunks into the one rejects object and writes the report.
 * 75 s against the 5-minute timeout: the invocation stops reading after 225 s and has 15 s
 * for all that before the `Duration` alarm's 240 s, so a continued invocation stays under
 * the alarm by design and only one that came within 60 s of its timeout trips it. The
 * stack derives the same value with the timeout and the threshold (infra/ingest-budget.ts).
 */
export const DEFAULT_CONTINUATION_MARGIN_MS = 75_000;

/** Async invocation payloads are limited to 256 KB; the state is a few KB in practice. */
export const MAX_CONTINUATION_PAYLOAD_BYTES = 200_000;

/** The progress of the rejects across invocations: the chunks uploaded so far. */
export interface RejectsProgress {
  /** Rejected rows written so far (in all parts). */
  rows: number;
  /** Byte size of each uploaded part, in file order. */
  parts: number[];
  /**
   * Each part's name (`state/checkpoints/<key>.rejects-<name>`): `<chain>-<invocation>-<nonce>`, unique
   * per hand-over, so two copies of one invocation never overwrite each other's part.
   * Absent in the state of an earlier version: part n (from 1) is then `<chain>-<n>`.
   */
  names?: string[];
}

/** Everything a fresh invocation needs to continue a file where the previous one stopped. */
export interface ContinuationState {
  version: typeof CONTINUATION_VERSION;
  /** The object as the S3 event named it (the report's `source`). */
  object: S3ObjectRef;
  /** The ETag and size the first invocation read: every ranged GET is conditional on them. */
  source: { eTag: string; size: number };
  /** When the first invocation started the file (the report's `startedAt` and duration). */
  startedAt: string;
  /**
   * Names this file's chain of invocations (random, from the first hand-over), so the
   * rejects parts of a duplicated delivery or of a replaced object never collide.
   */
  chain: string;
  /** Continuations so far, this one included (1 for the first fresh invocation). */
  continuation: number;
  /** Everything before it is committed: rows counted, the next record's byte and line. */
  checkpoint: Checkpoint;
  /** The CSV header as read from the start of the file. */
  header: (string | null)[];
  /** The first invocation's decisions: dry run, query id, manifest (read once per file). */
  run: RunOptions;
  tally: TallySnapshot;
  rejects: RejectsProgress;
  lookupQueries: number;
  writeBatches: number;
  /**
   * A dry run's: the object holding what it simulated so far (`state/checkpoints/<key>
   * .dry-run-<name>`, dry-run-memory.ts; `name` is unique per hand-over, so two copies of
   * one invocation never share one), and the names the earlier hand-overs of this line of
   * invocations left, removed with it once the file is done.
   */
  dryRunMemory?: DryRunMemoryRef;
}

export interface DryRunMemoryRef {
  name: string;
  size: number;
  earlier: string[];
}

export interface ContinuationEvent {
  trackingSyncContinuation: ContinuationState;
}

/** The continuation event could not be understood; retrying it cannot help. */
export class InvalidContinuationError extends TrackingSyncError {}

export function isContinuationEvent(event: unknown): event is ContinuationEvent {
  return (
    typeof event === "object" &&
    event !== null &&
    "trackingSyncContinuation" in event &&
    (event as ContinuationEvent).trackingSyncContinuation !== undefined
  );
}

/** Checks the shape of a continuation event (it comes from this function, but is input). */
export function parseContinuation(event: ContinuationEvent): ContinuationState {
  const state = event.trackingSyncContinuation as Partial<ContinuationState> | null;
  const fail = (why: string): never => {
    throw new InvalidContinuationError(`Invalid continuation event: ${why}`);
  };
  if (typeof state !== "object" || state === null) return fail("not an object");
  if (state.version !== CONTINUATION_VERSION) return fail(`unsupported version ${state.version}`);
  if (typeof state.object?.bucket !== "string" || typeof state.object?.key !== "string")
    return fail("no object bucket/key");
  if (typeof state.source?.eTag !== "string" || !isCount(state.source?.size))
    return fail("no source eTag/size");
  const checkpoint = state.checkpoint;
  if (
    !isCount(checkpoint?.rows) ||
    !isCount(checkpoint?.byteOffset) ||
    !isCount(checkpoint?.line) ||
    checkpoint.byteOffset === 0 ||
    checkpoint.byteOffset >= state.source.size
  ) {
    return fail("checkpoint is not inside the object");
  }
  if (!Array.isArray(state.header) || state.header.length === 0) return fail("no header");
  if (typeof state.run?.dryRun !== "boolean") return fail("no run options");
  if (!isCount(state.tally?.synced)) return fail("no tally");
  const rejects = state.rejects;
  if (
    !isCount(rejects?.rows) ||
    !Array.isArray(rejects?.parts) ||
    !rejects.parts.every(isCount) ||
    (rejects.names !== undefined &&
      (!Array.isArray(rejects.names) ||
        rejects.names.length !== rejects.parts.length ||
        new Set(rejects.names).size !== rejects.names.length ||
        !rejects.names.every(
          (name) => isPartName(name) && name.startsWith(`${String(state.chain)}-`),
        )))
  ) {
    return fail("no rejects progress, or parts without a name each of this chain");
  }
  if (typeof state.chain !== "string" || !/^[0-9a-f-]{36}$/.test(state.chain))
    return fail("no chain id");
  if (!isCount(state.continuation) || state.continuation < 1) return fail("no continuation count");
  if (typeof state.startedAt !== "string" || Number.isNaN(Date.parse(state.startedAt)))
    return fail("no startedAt");
  const memory = state.dryRunMemory;
  if (
    memory !== undefined &&
    (!state.run.dryRun ||
      !isMemoryName(memory?.name) ||
      !isCount(memory.size) ||
      !Array.isArray(memory.earlier) ||
      !memory.earlier.every(isMemoryName))
  ) {
    return fail("dry run memory without a dry run, or without its name, size and earlier names");
  }
  return state as ContinuationState;
}

/** `<chain>-<invocation>-<nonce>`, as `dryRunMemoryName` makes it. */
function isMemoryName(value: unknown): value is string {
  return typeof value === "string" && /^[0-9a-f-]{36}-\d+-[0-9a-f]+$/.test(value);
}

/**
 * `<chain>-<invocation>-<nonce>`, or `<chain>-<n>`: a part an earlier version handed over
 * keeps that name in the names a later hand-over passes on.
 */
function isPartName(value: unknown): value is string {
  return typeof value === "string" && /^[0-9a-f-]{36}-\d+(-[0-9a-f]+)?$/.test(value);
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0;
}
