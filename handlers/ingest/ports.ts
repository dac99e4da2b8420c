import type { Readable } from "node:stream";
import type { FanOutStore } from "../shared/fan-out-store";
import type { Logger } from "../shared/logger";
import type { WatermarkStore } from "../shared/watermark-store";
import type { CompactMap } from "./compact-map";
import type { ContinuationEvent, ContinuationState } from "./continuation";
import type { FactLedger, RunRecord } from "./ledger";
import type { IngestMetrics } from "./metrics";
import type { LookupStore } from "./order-resolver";
import type { PublicationCodeDocument } from "./publications";
import type { ObjectReport } from "./report";
import type { S3ObjectRef } from "./s3-records";
import type { EntryWriter } from "./writer";

/**
 * The narrow interfaces through which the ingest core reaches the outside (S3, MongoDB,
 * CloudWatch, Lambda). Adapters (`adapters.ts`, `mongo.ts`) are built in the composition
 * root; the core's unit tests use in-memory fakes.
 */

/** Bytes with their length, as S3 wants them for a PUT. */
export interface ByteContent {
  body: Readable | AsyncIterable<Uint8Array>;
  size: number;
  /** Aborts the upload (a body that fails mid-way: the request must not wait for the rest). */
  abortSignal?: AbortSignal;
}

/** The source object's bytes and what identifies the version read. */
export interface OpenedSource {
  body: Readable | AsyncIterable<Uint8Array>;
  eTag: string;
  size: number;
}

/** The object changed since an earlier read (a conditional read's precondition failed). */
export class SourceChangedError extends Error {}

/** Reading what a file run starts from: the object, its tags, the start function's manifest. */
export interface SourceStore {
  /**
   * The object's bytes; with `from`, from that byte on and only while the object's ETag is
   * still `from.eTag` (else `SourceChangedError`).
   */
  open(object: S3ObjectRef, from?: { byteOffset: number; eTag: string }): Promise<OpenedSource>;
  /** The tags given at upload. */
  readTags(object: S3ObjectRef): Promise<{ Key?: string; Value?: string }[]>;
  /** The raw run manifest of a query; `undefined` when there is none (a `SyntaxError` when not JSON). */
  readManifest(bucket: string, queryExecutionId: string): Promise<unknown | undefined>;
}

/** What the ingest writes about one source file beside it: report, rejects, checkpoint. */
export interface FileArtifacts {
  /** Returns the written report's ETag. */
  writeReport(report: ObjectReport): Promise<string | undefined>;
  /** Replaces the report only if it is still the version `eTag`; false when it changed since. */
  replaceReport(report: ObjectReport, eTag: string): Promise<boolean>;
  writeCheckpoint(state: ContinuationState): Promise<void>;
  removeCheckpoint(): Promise<void>;
  writeRejects(content: ByteContent): Promise<void>;
  removeRejects(): Promise<void>;
  /** A continued file's rejects part, by its name (`RejectsProgress.names`). */
  writeRejectsPart(name: string, content: ByteContent): Promise<void>;
  /** `size` is what the store says the part holds (checked against the hand-over's). */
  readRejectsPart(
    name: string,
  ): Promise<{ body: AsyncIterable<Uint8Array>; size: number | undefined }>;
  removeRejectsPart(name: string): Promise<void>;
  /** A continued dry run's memory, as the hand-over `name` left it (dry-run-memory.ts). */
  writeDryRunMemory(name: string, content: ByteContent): Promise<void>;
  readDryRunMemory(
    name: string,
  ): Promise<{ body: AsyncIterable<Uint8Array>; size: number | undefined }>;
  removeDryRunMemory(name: string): Promise<void>;
}

/** The artifacts of the file `object` (they live in its bucket). */
export type ArtifactStore = (object: S3ObjectRef) => FileArtifacts;

/** The watermark of a results bucket. */
export type WatermarkStores = (bucket: string) => WatermarkStore;

/** The fan-out state of a results bucket: where the days of multi-day requests stand. */
export type FanOutStores = (bucket: string) => FanOutStore;

/** Best effort: a failure is logged on `logger` and never fails the sync. */
export interface IngestMetricsPublisher {
  publish(metrics: IngestMetrics, logger: Logger): Promise<boolean>;
}

/** The reads that resolve rows: orders, tracking scripts and publication codes. */
export interface IngestLookupStore extends LookupStore {
  findPublicationCodes(): Promise<PublicationCodeDocument[]>;
}

/** `performance_entries` and the collections the rows are resolved against. */
export interface EntryStore {
  /** The unique index on the upsert key (real runs only: a dry run writes nothing). */
  ensureUpsertKeyIndex(): Promise<void>;
  lookups(): Promise<IngestLookupStore>;
  /** Where a run's entry updates go: MongoDB, or a simulation for a dry run. */
  writer(dryRun: boolean, memory?: CompactMap): Promise<EntryWriter>;
  /**
   * The facts ledger of the run `run` (a dry run's reads only). `memory`: what an earlier
   * invocation of a continued dry run simulated (its `memory()`), for writer and ledger.
   */
  ledger(dryRun: boolean, run: string, memory?: CompactMap): Promise<FactLedger>;
  /** Real runs: records the run in `tracking_sync_runs` (started, then how it ended). */
  recordRun(record: RunRecord): Promise<void>;
}

/** Queues a fresh invocation of this function with the rest of a file. */
export type SelfInvoker = (event: ContinuationEvent) => Promise<void>;
