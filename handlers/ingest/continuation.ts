import { randomUUID } from "node:crypto";
import { createReadStream } from "node:fs";
import { Readable } from "node:stream";
import { InvokeCommand, type LambdaClient } from "@aws-sdk/client-lambda";
import {
  DeleteObjectCommand,
  GetObjectCommand,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import type { Context } from "aws-lambda";
import { rejectsKey, STATE_PREFIX } from "../shared/bucket-layout";
import { integerEnv, optionalEnv } from "../shared/env";
import { TrackingSyncError } from "../shared/errors";
import type { Logger } from "../shared/logger";
import { putJsonObject } from "../shared/s3";
import type { Checkpoint } from "./batch-pipeline";
import type { RejectsFile } from "./rejects";
import type { RunOptions } from "./run-options";
import type { S3ObjectRef } from "./s3-records";
import type { Tally, TallySnapshot } from "./tally";

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
  /** Byte size of each uploaded part, in file order (`rejects/<key>.part-<n>`, n from 1). */
  parts: number[];
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
}

export interface ContinuationEvent {
  trackingSyncContinuation: ContinuationState;
}

/** The continuation event could not be understood; retrying it cannot help. */
export class InvalidContinuationError extends TrackingSyncError {}

/** The object changed since the first invocation read it: its halves must not be mixed. */
export class ObjectReplacedError extends TrackingSyncError {}

/** Handing over to a fresh invocation failed: this invocation must be retried. */
export class ContinuationFailedError extends TrackingSyncError {}

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
  if (!isCount(state.rejects?.rows) || !Array.isArray(state.rejects?.parts))
    return fail("no rejects progress");
  if (typeof state.chain !== "string" || !/^[0-9a-f-]{36}$/.test(state.chain))
    return fail("no chain id");
  if (!isCount(state.continuation) || state.continuation < 1) return fail("no continuation count");
  if (typeof state.startedAt !== "string" || Number.isNaN(Date.parse(state.startedAt)))
    return fail("no startedAt");
  return state as ContinuationState;
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0;
}

export interface ContinuationConfig {
  marginMs: number;
  /** Lambda sets AWS_LAMBDA_FUNCTION_NAME; without it (local runs) files never continue. */
  functionName: string | undefined;
}

export function loadContinuationConfig(
  env: Record<string, string | undefined> = process.env,
): ContinuationConfig {
  return {
    marginMs: integerEnv("CONTINUATION_MARGIN_MS", DEFAULT_CONTINUATION_MARGIN_MS, env, {
      min: 0,
      max: 900_000,
    }),
    functionName: optionalEnv("AWS_LAMBDA_FUNCTION_NAME", env),
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

export type SelfInvoker = (event: ContinuationEvent) => Promise<void>;

/**
 * Invokes this function asynchronously (InvocationType `Event`) by its unqualified name,
 * which the stack's grant names. Lambda answers 202 once the event is queued.
 */
export function lambdaSelfInvoker(client: LambdaClient, functionName: string): SelfInvoker {
  return async (event) => {
    const response = await client.send(
      new InvokeCommand({
        FunctionName: functionName,
        InvocationType: "Event",
        Payload: Buffer.from(JSON.stringify(event)),
      }),
    );
    if (response.StatusCode !== 202) {
      throw new Error(`asynchronous invoke answered ${response.StatusCode}, not 202`);
    }
  };
}

/** `state/checkpoints/<source key>.json`: the latest hand-over, for operators. */
export function checkpointKey(sourceKey: string): string {
  return `${STATE_PREFIX}checkpoints/${sourceKey}.json`;
}

/**
 * `rejects/<source key>.part-<chain>-<n>`: one invocation's rejected rows, until the file
 * is done (n from 1, in file order).
 */
export function rejectsPartKey(sourceKey: string, chain: string, part: number): string {
  return `${rejectsKey(sourceKey)}.part-${chain}-${part}`;
}

export interface HandOver {
  object: S3ObjectRef;
  source: { eTag: string; size: number };
  startedAt: Date;
  previous: ContinuationState | undefined;
  checkpoint: Checkpoint;
  header: readonly (string | null)[];
  run: RunOptions;
  tally: Tally;
  rejects: RejectsFile;
  lookupQueries: number;
  writeBatches: number;
}

/**
 * Hands the rest of the file to a fresh invocation: uploads this invocation's rejects
 * chunk, writes the checkpoint for operators, then invokes. A failure throws
 * ContinuationFailedError: Lambda retries this invocation from its own start point.
 */
export async function handOver(
  s3: S3Client,
  invoke: SelfInvoker,
  input: HandOver,
  logger: Logger,
): Promise<ContinuationState> {
  const { object } = input;
  const chain = input.previous?.chain ?? randomUUID();
  const earlier = input.previous?.rejects ?? { rows: 0, parts: [] };
  const rejects: RejectsProgress = { rows: earlier.rows, parts: [...earlier.parts] };
  try {
    const chunk = await input.rejects.close();
    if (chunk) {
      // Numbered from the handed-over progress: a retried invocation overwrites its own part.
      const part = rejects.parts.length + 1;
      await uploadFile(s3, object.bucket, rejectsPartKey(object.key, chain, part), chunk);
      rejects.parts.push(chunk.size);
      rejects.rows += input.rejects.count;
    }
  } finally {
    await input.rejects.discard();
  }
  const state: ContinuationState = {
    version: CONTINUATION_VERSION,
    object,
    source: input.source,
    startedAt: input.startedAt.toISOString(),
    chain,
    continuation: (input.previous?.continuation ?? 0) + 1,
    checkpoint: input.checkpoint,
    header: [...input.header],
    run: input.run,
    tally: input.tally.snapshot(),
    rejects,
    lookupQueries: input.lookupQueries,
    writeBatches: input.writeBatches,
  };
  const event: ContinuationEvent = { trackingSyncContinuation: state };
  const bytes = Buffer.byteLength(JSON.stringify(event));
  if (bytes > MAX_CONTINUATION_PAYLOAD_BYTES) {
    throw new ContinuationFailedError(
      `Continuation payload of ${bytes} bytes exceeds ${MAX_CONTINUATION_PAYLOAD_BYTES}`,
      { bytes },
    );
  }
  try {
    await putJsonObject(s3, object.bucket, checkpointKey(object.key), state);
    await invoke(event);
  } catch (error) {
    throw new ContinuationFailedError(
      `Could not continue ${object.key} in a fresh invocation: ${(error as Error).message}`,
      { cause: (error as Error).name, checkpoint: state.checkpoint },
    );
  }
  logger.info("Continuing in a fresh invocation", {
    continuation: state.continuation,
    checkpoint: state.checkpoint,
    rejectsRows: rejects.rows,
    payloadBytes: bytes,
  });
  return state;
}

/**
 * Writes the one rejects object of the file: the earlier invocations' parts in order,
 * then this invocation's rows, streamed (the header is in whichever chunk holds the first
 * rejected row). Returns the rows written, or `undefined` when no row was rejected.
 */
export async function uploadRejects(
  s3: S3Client,
  bucket: string,
  key: string,
  sourceKey: string,
  rejects: RejectsFile,
  previous: ContinuationState | undefined,
): Promise<number | undefined> {
  const earlier = previous?.rejects;
  if (!previous || !earlier || earlier.parts.length === 0) {
    return (await rejects.upload(s3, bucket, key)) ? rejects.count : undefined;
  }
  try {
    const own = await rejects.close();
    const partsSize = earlier.parts.reduce((sum, size) => sum + size, 0);
    async function* concatenated(): AsyncGenerator<Uint8Array> {
      for (const [index, size] of earlier?.parts.entries() ?? []) {
        const partKey = rejectsPartKey(sourceKey, previous?.chain ?? "", index + 1);
        const response = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: partKey }));
        // A part of another size is not the one this chain uploaded: never mix them.
        if (response.ContentLength !== size) {
          throw new ObjectReplacedError(
            `Rejects part ${partKey} has ${response.ContentLength} bytes, expected ${size}`,
          );
        }
        yield* response.Body as Readable;
      }
      if (own) yield* createReadStream(own.path);
    }
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: Readable.from(concatenated(), { objectMode: false }),
        ContentLength: partsSize + (own?.size ?? 0),
        ContentType: "text/csv",
      }),
    );
    return earlier.rows + rejects.count;
  } finally {
    await rejects.discard();
  }
}

/**
 * After the report is written: removes the rejects parts and the checkpoint. Best effort
 * (logged): leftovers trigger nothing, while throwing now would retry a finished file whose
 * parts may already be gone.
 */
export async function removeContinuationState(
  s3: S3Client,
  bucket: string,
  sourceKey: string,
  state: ContinuationState,
  logger: Logger,
): Promise<void> {
  const keys = [
    ...state.rejects.parts.map((_, index) => rejectsPartKey(sourceKey, state.chain, index + 1)),
    checkpointKey(sourceKey),
  ];
  for (const key of keys) {
    try {
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    } catch (error) {
      logger.warn("Could not remove a continuation leftover", { leftover: key, error });
    }
  }
}

async function uploadFile(
  s3: S3Client,
  bucket: string,
  key: string,
  file: { path: string; size: number },
): Promise<void> {
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: createReadStream(file.path),
      ContentLength: file.size,
      ContentType: "text/csv",
    }),
  );
}
