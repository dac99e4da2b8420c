import { setTimeout as sleep } from "node:timers/promises";
import { ObjectReplacedError, ObjectUnreadableError } from "./errors";
import { type OpenedSource, SourceChangedError, type SourceStore } from "./ports";
import type { S3ObjectRef } from "./s3-records";

/**
 * How a body stream that breaks mid-file is resumed. The SDK retries a request, never a
 * streaming body, and S3 resets long or stalled downloads: without resuming, one reset
 * fails a whole file (and, past its first invocation, all the work of this one).
 */
export interface StreamResumeConfig {
  /** Reopens allowed per file per invocation (STREAM_RESUME_ATTEMPTS); 0 fails on the first break. */
  attempts: number;
  /** The n-th reopen waits n times this (STREAM_RESUME_BACKOFF_MS): a reset is often a busy moment. */
  backoffMs: number;
}

export const DEFAULT_STREAM_RESUME_ATTEMPTS = 3;
export const DEFAULT_STREAM_RESUME_BACKOFF_MS = 200;

/** One reopen about to happen: where it reads from, which attempt it is, and what broke. */
export interface StreamResume {
  /** Absolute offset in the object: every byte before it was handed on. */
  byteOffset: number;
  attempt: number;
  attempts: number;
  error: Error;
}

export interface ResumableRead {
  source: SourceStore;
  object: S3ObjectRef;
  /** The body this invocation opened, and the object offset it starts at. */
  opened: OpenedSource;
  startByte: number;
  /** The version read: every reopen is conditional on it, so the halves never mix. */
  eTag: string;
  config: StreamResumeConfig;
  /** Told before each reopen (to log and count it). */
  onResume: (resume: StreamResume) => void;
}

/**
 * The object's bytes, chunk by chunk, as one unbroken stream: when the body fails mid-way
 * it is reopened with a ranged GET, conditional on the ETag, from the first byte not yet
 * handed on, so a reader (the CSV parser) never notices. A byte is counted once it is
 * yielded: the parser asks for the next chunk only when it is done with the last, so
 * nothing is read twice or skipped. Throws ObjectUnreadableError once the attempts run out,
 * ObjectReplacedError when the object changed meanwhile.
 */
export async function* readResumably(read: ResumableRead): AsyncGenerator<Uint8Array> {
  const end = read.startByte + read.opened.size;
  let body = read.opened.body;
  let byteOffset = read.startByte;
  let resumes = 0;
  for (;;) {
    try {
      for await (const chunk of body as AsyncIterable<Uint8Array>) {
        byteOffset += chunk.byteLength;
        yield chunk;
      }
      if (byteOffset >= end) return;
      // A body that ends quietly short of its length is a break too: its last record would
      // otherwise be parsed cut (numbers included).
      throw new Error(`the body ended at byte ${byteOffset} of ${end}`);
    } catch (error) {
      // Every byte the length announced arrived: a break after the last one loses nothing.
      if (byteOffset >= end) return;
      let failure = error as Error;
      for (;;) {
        if (resumes >= read.config.attempts) throw unreadable(read, byteOffset, resumes, failure);
        resumes++;
        read.onResume({
          byteOffset,
          attempt: resumes,
          attempts: read.config.attempts,
          error: failure,
        });
        await sleep(read.config.backoffMs * resumes);
        try {
          body = (await read.source.open(read.object, { byteOffset, eTag: read.eTag })).body;
          break;
        } catch (openError) {
          if (openError instanceof SourceChangedError) throw replaced(read, byteOffset);
          failure = openError as Error;
        }
      }
    }
  }
}

function unreadable(
  read: ResumableRead,
  byteOffset: number,
  resumes: number,
  error: Error,
): ObjectUnreadableError {
  const { bucket, key } = read.object;
  return new ObjectUnreadableError(
    `Reading s3://${bucket}/${key} failed at byte ${byteOffset} after ${resumes} resume(s) of ${read.config.attempts}: ${error.message}`,
    { cause: error.name, byteOffset, resumes },
  );
}

function replaced(read: ResumableRead, byteOffset: number): ObjectReplacedError {
  const { bucket, key } = read.object;
  return new ObjectReplacedError(
    `s3://${bucket}/${key} changed while it was read (ETag ${read.eTag}): its rows from byte ${byteOffset} on were not read. The new object's own event ingests it.`,
    { byteOffset },
  );
}
