import { createHash } from "node:crypto";
import type { Context, S3Event } from "aws-lambda";
import type { Document } from "mongodb";
import type { ContinuationEvent, ContinuationState } from "../../../handlers/ingest/continuation";
import {
  applyEntryUpdate,
  applyRemoval,
  type EntryUpdate,
} from "../../../handlers/ingest/entry-update";
import type { IngestHandlerDependencies } from "../../../handlers/ingest/ingest-event";
import {
  candidatesOf,
  decide,
  type FactDocument,
  type FactLedger,
  keepMovesPending,
  ledgerBatch,
  nextFact,
  type RunRecord,
} from "../../../handlers/ingest/ledger";
import type { IngestMetrics } from "../../../handlers/ingest/metrics";
import type { OrderDoc, TrackingScriptDoc } from "../../../handlers/ingest/order-resolver";
import {
  type ArtifactStore,
  type ByteContent,
  type EntryStore,
  type FanOutStores,
  type FileArtifacts,
  type IngestLookupStore,
  type IngestMetricsPublisher,
  type OpenedSource,
  SourceChangedError,
  type SourceStore,
  type WatermarkStores,
} from "../../../handlers/ingest/ports";
import type { PublicationCodeDocument } from "../../../handlers/ingest/publications";
import type { ObjectReport } from "../../../handlers/ingest/report";
import type { StreamResumeConfig } from "../../../handlers/ingest/resumable-source";
import type { S3ObjectRef } from "../../../handlers/ingest/s3-records";
import type { BatchWriteResult, EntryWriter } from "../../../handlers/ingest/writer";
import {
  checkpointKey,
  dryRunMemoryKey,
  rejectsKey,
  rejectsPartKey,
  reportKey,
  runManifestKey,
} from "../../../handlers/shared/bucket-layout";
import { EMPTY_FAN_OUT, type FanOutState, prunePlans } from "../../../handlers/shared/fan-out";
import { createLogger, type Logger } from "../../../handlers/shared/logger";
import type { Watermark } from "../../../handlers/shared/watermark";
import type { WatermarkAdvance, WatermarkStore } from "../../../handlers/shared/watermark-store";
import { s3Event } from "../../helpers/s3-event";

/**
 * In-memory fakes of the ingest core's ports (handlers/ingest/ports.ts). Each keeps what
 * it was given in a Map, records what was done to it, and can be told to fail the way
 * the real adapter fails. They fake the ports, never a client or MongoDB's driver.
 */

const pathOf = (bucket: string, key: string) => `${bucket}/${key}`;

/** An S3-style ETag: the MD5 of the bytes, in quotes. */
export function eTagOf(bytes: Buffer): string {
  return `"${createHash("md5").update(bytes).digest("hex")}"`;
}

async function* chunksOf(bytes: Buffer, chunkSize: number): AsyncGenerator<Uint8Array> {
  for (let start = 0; start < bytes.length; start += chunkSize) {
    yield bytes.subarray(start, start + chunkSize);
  }
}

/** The chunks of `body` up to `afterBytes`, then the error a reset connection gives. */
async function* brokenAfter(
  body: AsyncIterable<Uint8Array>,
  cut: BodyBreak,
): AsyncGenerator<Uint8Array> {
  let left = cut.afterBytes;
  for await (const chunk of body) {
    if (chunk.length >= left) {
      if (left > 0) yield chunk.subarray(0, left);
      break;
    }
    left -= chunk.length;
    yield chunk;
  }
  await cut.beforeBreak?.();
  throw Object.assign(new Error("socket hang up"), { code: "ECONNRESET" });
}

/** How the next bodies `open` returns break (see `FakeSourceStore.breakBodies`). */
export interface BodyBreak {
  /** Bytes of each body (of its range) delivered before it breaks. */
  afterBytes: number;
  /** How many bodies break (default 1). */
  count?: number;
  /** Runs when a body breaks, before the error reaches the reader (say, to replace the object). */
  beforeBreak?: () => Promise<void> | void;
}

async function readAll(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** An error shaped like the SDK's for a missing key. */
function noSuchKey(key: string): Error {
  const error = new Error(`The specified key does not exist: ${key}`);
  error.name = "NoSuchKey";
  return error;
}

interface StoredSource {
  bytes: Buffer;
  eTag: string;
  tags: { Key?: string; Value?: string }[];
}

/** Source objects, their tags and the start function's run manifests, by bucket and key. */
export class FakeSourceStore implements SourceStore {
  private readonly objects = new Map<string, StoredSource>();
  private readonly manifests = new Map<string, unknown>();
  private openFailure: Error | undefined;
  private bodyBreaks: (BodyBreak & { count: number })[] = [];
  /** Every `open`, in call order: which key, and from where. */
  readonly opens: { key: string; from: { byteOffset: number; eTag: string } | undefined }[] = [];
  /** Keys whose tags were read, in call order. */
  readonly tagReads: string[] = [];

  /** `chunkSize`: the body arrives in chunks of this many bytes (as a socket delivers it). */
  constructor(private readonly chunkSize = 64 * 1024) {}

  /** Stores (or replaces) an object; returns its ETag. */
  put(
    bucket: string,
    key: string,
    body: string | Buffer,
    tags: Record<string, string> = {},
  ): string {
    const bytes = Buffer.from(body);
    const eTag = eTagOf(bytes);
    const tagSet = Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
    this.objects.set(pathOf(bucket, key), { bytes, eTag, tags: tagSet });
    return eTag;
  }

  /** Stores `runs/<queryExecutionId>.json` as parsed JSON. */
  putManifest(bucket: string, queryExecutionId: string, manifest: unknown): void {
    this.manifests.set(pathOf(bucket, runManifestKey(queryExecutionId)), manifest);
  }

  /** The next `open` throws `error` (an unreadable object), then opens work again. */
  failNextOpen(error: Error = Object.assign(new Error("Access Denied"), { name: "AccessDenied" })) {
    this.openFailure = error;
  }

  /** The next `count` bodies `open` returns break after `afterBytes`, as a reset download does. */
  breakBodies(cut: BodyBreak): void {
    this.bodyBreaks.push({ ...cut, count: cut.count ?? 1 });
  }

  async open(
    object: S3ObjectRef,
    from?: { byteOffset: number; eTag: string },
  ): Promise<OpenedSource> {
    this.opens.push({ key: object.key, from });
    const failure = this.openFailure;
    this.openFailure = undefined;
    if (failure) throw failure;
    const stored = this.objects.get(pathOf(object.bucket, object.key));
    if (!stored) throw noSuchKey(object.key);
    // The adapter turns the conditional GET's 412 into this.
    if (from && from.eTag !== stored.eTag) {
      throw new SourceChangedError(`At least one of the pre-conditions you specified did not hold`);
    }
    const bytes = stored.bytes.subarray(from?.byteOffset ?? 0);
    // A ranged GET's length is the range's, as S3's ContentLength is.
    return { body: this.bodyOf(bytes), eTag: stored.eTag, size: bytes.length };
  }

  private bodyOf(bytes: Buffer): AsyncIterable<Uint8Array> {
    const body = chunksOf(bytes, this.chunkSize);
    const cut = this.bodyBreaks[0];
    if (!cut) return body;
    cut.count--;
    if (cut.count === 0) this.bodyBreaks.shift();
    return brokenAfter(body, cut);
  }

  async readTags(object: S3ObjectRef) {
    this.tagReads.push(object.key);
    const stored = this.objects.get(pathOf(object.bucket, object.key));
    if (!stored) throw noSuchKey(object.key);
    return stored.tags.map((tag) => ({ ...tag }));
  }

  async readManifest(bucket: string, queryExecutionId: string) {
    return structuredClone(this.manifests.get(pathOf(bucket, runManifestKey(queryExecutionId))));
  }
}

export type ArtifactOperation = keyof FileArtifacts;

/**
 * Reports, checkpoints, rejects and rejects parts, by bucket and key (the real layout's
 * keys), as bytes. `writes` records every successful write or removal in order.
 */
export class FakeArtifactStore {
  private readonly objects = new Map<string, Buffer>();
  private readonly failures = new Map<ArtifactOperation, Error[]>();
  readonly writes: { operation: ArtifactOperation; key: string }[] = [];

  readonly store: ArtifactStore = (object) => this.artifactsOf(object);

  /** The next call of `operation` throws `error` (once per call to this). */
  failNext(operation: ArtifactOperation, error: Error = new Error(`${operation} failed`)): void {
    const queued = this.failures.get(operation) ?? [];
    queued.push(error);
    this.failures.set(operation, queued);
  }

  /** Puts raw bytes under a key (e.g. a stale rejects object, or a part of another run). */
  put(bucket: string, key: string, body: string | Buffer): void {
    this.objects.set(pathOf(bucket, key), Buffer.from(body));
  }

  text(bucket: string, key: string): string | undefined {
    return this.objects.get(pathOf(bucket, key))?.toString("utf8");
  }

  has(bucket: string, key: string): boolean {
    return this.objects.has(pathOf(bucket, key));
  }

  /** Every stored key of `bucket`, sorted. */
  keys(bucket: string): string[] {
    const prefix = `${bucket}/`;
    return [...this.objects.keys()]
      .filter((path) => path.startsWith(prefix))
      .map((path) => path.slice(prefix.length))
      .sort();
  }

  report(object: Pick<S3ObjectRef, "bucket" | "key">): ObjectReport | undefined {
    return this.json<ObjectReport>(object.bucket, reportKey(object.key));
  }

  checkpoint(object: Pick<S3ObjectRef, "bucket" | "key">): ContinuationState | undefined {
    return this.json<ContinuationState>(object.bucket, checkpointKey(object.key));
  }

  rejects(object: Pick<S3ObjectRef, "bucket" | "key">): string | undefined {
    return this.text(object.bucket, rejectsKey(object.key));
  }

  count(operation: ArtifactOperation): number {
    return this.writes.filter((write) => write.operation === operation).length;
  }

  private json<T>(bucket: string, key: string): T | undefined {
    const text = this.text(bucket, key);
    return text === undefined ? undefined : (JSON.parse(text) as T);
  }

  private artifactsOf(object: S3ObjectRef): FileArtifacts {
    const { bucket } = object;
    const run = async <T>(
      operation: ArtifactOperation,
      key: string,
      act: (path: string) => Promise<T> | T,
    ): Promise<T> => {
      const failure = this.failures.get(operation)?.shift();
      if (failure) throw failure;
      const result = await act(pathOf(bucket, key));
      this.writes.push({ operation, key });
      return result;
    };
    const putJson = (operation: ArtifactOperation, key: string, value: unknown) =>
      run(operation, key, (path) => {
        const bytes = Buffer.from(`${JSON.stringify(value, null, 2)}\n`);
        this.objects.set(path, bytes);
        return eTagOf(bytes);
      });
    const putBytes = (operation: ArtifactOperation, key: string, content: ByteContent) =>
      run(operation, key, async (path) => {
        const bytes = await readAll(content.body);
        // S3 refuses a PUT whose body is not the Content-Length it announced.
        if (bytes.length !== content.size) {
          throw new Error(`body of ${bytes.length} bytes, Content-Length ${content.size}`);
        }
        this.objects.set(path, bytes);
      });
    const remove = (operation: ArtifactOperation, key: string) =>
      run(operation, key, (path) => {
        this.objects.delete(path);
      });
    /** A stored object as S3's GetObject streams it, in chunks of `chunk` bytes; NoSuchKey if absent. */
    const readBytes = (operation: ArtifactOperation, key: string, chunk: number) =>
      run(operation, key, (path) => {
        const bytes = this.objects.get(path);
        if (!bytes) throw noSuchKey(key);
        return { body: chunksOf(bytes, chunk), size: bytes.length };
      });
    return {
      writeReport: (report) => putJson("writeReport", reportKey(object.key), report),
      // A conditional PUT: only over the version it names, as S3's If-Match.
      replaceReport: async (report, eTag) => {
        const current = this.objects.get(pathOf(bucket, reportKey(object.key)));
        if (!current || eTagOf(current) !== eTag) return false;
        await putJson("replaceReport", reportKey(object.key), report);
        return true;
      },
      writeCheckpoint: async (state) => {
        await putJson("writeCheckpoint", checkpointKey(object.key), state);
      },
      removeCheckpoint: () => remove("removeCheckpoint", checkpointKey(object.key)),
      writeRejects: (content) => putBytes("writeRejects", rejectsKey(object.key), content),
      removeRejects: () => remove("removeRejects", rejectsKey(object.key)),
      writeRejectsPart: (name, content) =>
        putBytes("writeRejectsPart", rejectsPartKey(object.key, name), content),
      readRejectsPart: (name) =>
        readBytes("readRejectsPart", rejectsPartKey(object.key, name), 1024),
      removeRejectsPart: (name) => remove("removeRejectsPart", rejectsPartKey(object.key, name)),
      writeDryRunMemory: (name, content) =>
        putBytes("writeDryRunMemory", dryRunMemoryKey(object.key, name), content),
      readDryRunMemory: (name) =>
        readBytes("readDryRunMemory", dryRunMemoryKey(object.key, name), 1000),
      removeDryRunMemory: (name) => remove("removeDryRunMemory", dryRunMemoryKey(object.key, name)),
    };
  }
}

/** One fan-out state per bucket, updated atomically (as the conditional S3 write guarantees). */
export class FakeFanOuts {
  private readonly states = new Map<string, FanOutState>();

  readonly stores: FanOutStores = (bucket) => ({
    read: async () => structuredClone(this.get(bucket)),
    update: async (change) => {
      const state = structuredClone(this.get(bucket));
      const result = change(state);
      prunePlans(state, new Date());
      this.states.set(bucket, state);
      return result;
    },
  });

  set(bucket: string, state: FanOutState): void {
    this.states.set(bucket, structuredClone(state));
  }

  get(bucket: string): FanOutState {
    return this.states.get(bucket) ?? structuredClone(EMPTY_FAN_OUT);
  }
}

/** One watermark per bucket, moved only forward (as the conditional S3 write guarantees). */
export class FakeWatermarks {
  private readonly current = new Map<string, Watermark>();
  /** Every `advance` asked, moved or not. */
  readonly advances: { bucket: string; next: Omit<Watermark, "updatedAt">; moved: boolean }[] = [];

  readonly stores: WatermarkStores = (bucket) => this.storeOf(bucket);

  constructor(private readonly now: () => Date = () => new Date()) {}

  set(bucket: string, watermark: Watermark): void {
    this.current.set(bucket, { ...watermark });
  }

  get(bucket: string): Watermark | undefined {
    return this.current.get(bucket);
  }

  private storeOf(bucket: string): WatermarkStore {
    return {
      read: async () => this.get(bucket),
      advance: async (next): Promise<WatermarkAdvance> => {
        const current = this.current.get(bucket);
        if (current && current.lastCompleteDate >= next.lastCompleteDate) {
          this.advances.push({ bucket, next, moved: false });
          return {
            moved: false,
            previous: current.lastCompleteDate,
            current: current.lastCompleteDate,
          };
        }
        this.current.set(bucket, { ...next, updatedAt: this.now().toISOString() });
        this.advances.push({ bucket, next, moved: true });
        return { moved: true, previous: current?.lastCompleteDate, current: next.lastCompleteDate };
      },
    };
  }
}

/** Records every publish; told to, fails as the CloudWatch adapter does (logged, `false`). */
export class FakeMetrics implements IngestMetricsPublisher {
  readonly published: IngestMetrics[] = [];
  private failing = false;

  failPublishing(): void {
    this.failing = true;
  }

  async publish(metrics: IngestMetrics, logger: Logger): Promise<boolean> {
    if (this.failing) {
      logger.warn("Publishing metrics failed; the sync itself is unaffected", {
        error: new Error("Throttling"),
      });
      return false;
    }
    this.published.push(structuredClone(metrics));
    return true;
  }

  /** The file counts of every publish that carried them. */
  get files() {
    return this.published.flatMap((metrics) => (metrics.file ? [metrics.file] : []));
  }
}

export interface LookupData {
  trackingScripts?: readonly TrackingScriptDoc[];
  orders?: readonly (OrderDoc & { deletedAt?: Date })[];
  publications?: readonly PublicationCodeDocument[];
}

/** The resolver's reads over arrays, with the MongoDB adapter's filters (soft deletes included). */
export class FakeLookupStore implements IngestLookupStore {
  /** Queries issued, per read. */
  readonly queries = { trackingScripts: 0, ordersById: 0, ordersByPattern: 0, publications: 0 };

  constructor(private readonly data: LookupData) {}

  async findTrackingScripts(creativeIds: string[]) {
    this.queries.trackingScripts++;
    const wanted = new Set(creativeIds);
    return (this.data.trackingScripts ?? []).filter((script) => wanted.has(script.creativeId));
  }

  async findOrdersByCampaignIds(campaignIds: unknown[]) {
    this.queries.ordersById++;
    return this.liveOrders().filter((order) => campaignIds.includes(order.campaignId));
  }

  async findOrdersByCampaignPattern(pattern: string) {
    this.queries.ordersByPattern++;
    const regex = new RegExp(pattern, "i");
    return this.liveOrders().filter(
      (order) => typeof order.campaignId === "string" && regex.test(order.campaignId),
    );
  }

  async findPublicationCodes() {
    this.queries.publications++;
    return (this.data.publications ?? []).filter((doc) => doc.publicationCode !== undefined);
  }

  private liveOrders() {
    return (this.data.orders ?? []).filter((order) => order.deletedAt === undefined);
  }
}

/** The upsert key as one string: the unique index's four fields. */
export function upsertKeyOf(key: {
  orderId: unknown;
  itemPath: unknown;
  dateStart: unknown;
  source: unknown;
}): string {
  const dateStart = key.dateStart instanceof Date ? key.dateStart.toISOString() : key.dateStart;
  return JSON.stringify([key.orderId, key.itemPath, dateStart, key.source]);
}

/**
 * `performance_entries` as a Map keyed by the upsert key, written through the pure twin of
 * the update pipeline (`applyEntryUpdate`), plus the lookups. `failWith` takes MongoDB
 * down: every call (writes included) throws the error until `recover`.
 */
export class FakeEntryStore implements EntryStore {
  readonly entries = new Map<string, Document>();
  readonly lookupStore: FakeLookupStore;
  indexEnsured = 0;
  /** The `dryRun` of every writer asked for. */
  readonly writersOpened: boolean[] = [];
  /** The updates of every write, real or dry, in call order. */
  readonly writes: { dryRun: boolean; updates: readonly EntryUpdate[] }[] = [];
  /** `tracking_sync_facts`, by fact id (written by real runs only). */
  readonly facts = new Map<string, FactDocument>();
  /** `tracking_sync_runs`, by run id. */
  readonly runs = new Map<string, RunRecord>();
  private failure: Error | undefined;
  private writeFailure: { after: number; error: Error } | undefined;
  private refused: ((update: EntryUpdate) => boolean) | undefined;

  constructor(
    lookups: LookupData = {},
    private readonly now: () => Date = () => new Date(),
  ) {
    this.lookupStore = new FakeLookupStore(lookups);
  }

  failWith(error: Error): void {
    this.failure = error;
  }

  /** MongoDB goes down mid-file: the writes after the first `after` ones throw `error`. */
  failWritesAfter(after: number, error: Error): void {
    this.writeFailure = { after, error };
  }

  /** A schema validator in effect: matching updates fail for good, the others are written. */
  refuseUpdates(refuse: (update: EntryUpdate) => boolean): void {
    this.refused = refuse;
  }

  recover(): void {
    this.failure = undefined;
    this.writeFailure = undefined;
  }

  /** The stored entries without their clocks, sorted by upsert key: comparable across runs. */
  /**
   * The stored entries without their clocks, sorted by upsert key, and without the run
   * their contributions name (checked to be one run): two uploads of the same rows are two
   * runs, and otherwise comparable.
   */
  comparableEntries(): Document[] {
    const entries = [...this.entries.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, { createdAt, updatedAt, enteredAt, ...rest }]) => rest);
    const runs = new Set(
      entries.flatMap((entry) => entry.contributions.map((c: Document) => c.run)),
    );
    if (runs.size > 1) throw new Error(`contributions name ${runs.size} runs, expected one`);
    return entries.map((entry) => ({
      ...entry,
      contributions: entry.contributions.map(({ run, ...rest }: Document) => rest),
    }));
  }

  async ensureUpsertKeyIndex(): Promise<void> {
    this.check();
    this.indexEnsured++;
  }

  async lookups(): Promise<IngestLookupStore> {
    this.check();
    return this.lookupStore;
  }

  async writer(dryRun: boolean): Promise<EntryWriter> {
    this.check();
    this.writersOpened.push(dryRun);
    // A dry run reads the stored entries and simulates on an overlay of its own.
    const overlay = new Map<string, Document>();
    return {
      write: async (updates) => {
        this.check();
        if (this.writeFailure && this.writes.length >= this.writeFailure.after) {
          throw this.writeFailure.error;
        }
        this.writes.push({ dryRun, updates });
        return dryRun ? this.simulate(updates, overlay) : this.upsert(updates);
      },
      remove: async (targets) => {
        this.check();
        const result = { updated: 0, deleted: 0 };
        const now = this.now();
        for (const target of targets) {
          const key = upsertKeyOf(target.key);
          const existing = (dryRun ? overlay.get(key) : undefined) ?? this.entries.get(key);
          if (!existing) continue;
          const applied = applyRemoval(existing, target.removals, now);
          if (applied.kind === "unchanged") continue;
          if (applied.kind === "delete") result.deleted++;
          else result.updated++;
          if (dryRun) continue;
          if (applied.document) this.entries.set(key, applied.document);
          else this.entries.delete(key);
        }
        return result;
      },
    };
  }

  /** The facts ledger on `facts`, without compare-and-set (one writer at a time here). */
  async ledger(dryRun: boolean, run: string): Promise<FactLedger> {
    this.check();
    const facts = this.facts;
    const now = this.now;
    const check = () => this.check();
    return {
      async place(rows) {
        check();
        const { candidates, superseded } = candidatesOf(rows);
        const decisions = candidates.map((candidate) =>
          decide(candidate, facts.get(candidate.id), run),
        );
        if (!dryRun) {
          for (const decision of decisions) {
            const id = decision.candidate.id;
            facts.set(id, nextFact(decision, facts.get(id), run, now()));
          }
        }
        return ledgerBatch(decisions, superseded);
      },
      writeFailed(batch, rows) {
        keepMovesPending(batch, rows);
      },
      async settle() {
        return [];
      },
    };
  }

  async recordRun(record: RunRecord): Promise<void> {
    this.check();
    const earlier = this.runs.get(record._id);
    this.runs.set(record._id, { ...record, startedAt: earlier?.startedAt ?? record.startedAt });
  }

  private upsert(updates: readonly EntryUpdate[]): BatchWriteResult {
    const result: BatchWriteResult = { inserted: 0, updated: 0, unchanged: 0, failed: [] };
    const now = this.now();
    for (const [index, update] of updates.entries()) {
      if (this.refused?.(update)) {
        result.failed.push({ index, code: 121, message: "Document failed validation" });
        continue;
      }
      const key = upsertKeyOf(update.key);
      const applied = applyEntryUpdate(this.entries.get(key) ?? null, update, now);
      this.entries.set(key, applied.document);
      count(result, applied.kind);
    }
    return result;
  }

  private simulate(updates: readonly EntryUpdate[], overlay: Map<string, Document>) {
    const fieldChanges: Record<string, number> = {};
    const result: BatchWriteResult = {
      inserted: 0,
      updated: 0,
      unchanged: 0,
      failed: [],
      fieldChanges,
    };
    const now = this.now();
    for (const update of updates) {
      const key = upsertKeyOf(update.key);
      const existing = overlay.get(key) ?? this.entries.get(key) ?? null;
      const applied = applyEntryUpdate(existing, update, now);
      overlay.set(key, applied.document);
      count(result, applied.kind);
      for (const field of applied.changedFields) {
        fieldChanges[field] = (fieldChanges[field] ?? 0) + 1;
      }
    }
    return result;
  }

  private check(): void {
    if (this.failure) throw this.failure;
  }
}

function count(result: BatchWriteResult, kind: "insert" | "update" | "unchanged"): void {
  if (kind === "insert") result.inserted++;
  else if (kind === "update") result.updated++;
  else result.unchanged++;
}

/** Records the continuation events as Lambda would queue them (a JSON round trip). */
export class RecordingInvoker {
  readonly events: ContinuationEvent[] = [];
  private failure: Error | undefined;

  readonly invoke = async (event: ContinuationEvent): Promise<void> => {
    const failure = this.failure;
    this.failure = undefined;
    if (failure) throw failure;
    this.events.push(JSON.parse(JSON.stringify(event)) as ContinuationEvent);
  };

  failNext(error: Error = new Error("asynchronous invoke answered 500, not 202")): void {
    this.failure = error;
  }
}

export const BUCKET = "tracking-sync-results";

/** Every fake, wired as the handler's dependencies, with its log captured. */
export interface FakeIngest {
  source: FakeSourceStore;
  artifacts: FakeArtifactStore;
  watermarks: FakeWatermarks;
  fanOuts: FakeFanOuts;
  metrics: FakeMetrics;
  entries: FakeEntryStore;
  invoker: RecordingInvoker;
  /** Log lines, parsed. */
  logs: Record<string, unknown>[];
  logger: Logger;
  deps: IngestHandlerDependencies;
  /** Stores a source object and returns the S3 event of its upload. */
  put(key: string, body: string, tags?: Record<string, string>): S3Event;
}

export interface FakeIngestOptions {
  lookups?: LookupData;
  batchSize?: number;
  maxInFlight?: number;
  /** With it, files hand over to `invoker` once the context's time left is under `marginMs`. */
  handOverMarginMs?: number;
  chunkSize?: number;
  streamResume?: StreamResumeConfig;
}

export function createFakeIngest(options: FakeIngestOptions = {}): FakeIngest {
  const source = new FakeSourceStore(options.chunkSize);
  const artifacts = new FakeArtifactStore();
  const watermarks = new FakeWatermarks();
  const fanOuts = new FakeFanOuts();
  const metrics = new FakeMetrics();
  const entries = new FakeEntryStore(options.lookups);
  const invoker = new RecordingInvoker();
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger(
    { function: "ingestResults" },
    { level: "debug", write: (line) => logs.push(JSON.parse(line)) },
  );
  const deps: IngestHandlerDependencies = {
    settings: {
      batchSize: options.batchSize ?? 1000,
      maxInFlight: options.maxInFlight ?? 2,
      publicationCodeOverrides: {},
      streamResume: options.streamResume ?? { attempts: 3, backoffMs: 0 },
    },
    filter: { ingestPrefixes: ["athena-results/", "reprocess/"], resultsBucket: BUCKET },
    logger,
    source,
    artifacts: artifacts.store,
    watermarks: watermarks.stores,
    fanOuts: fanOuts.stores,
    metrics,
    entries,
    ...(options.handOverMarginMs !== undefined
      ? { handOver: { marginMs: options.handOverMarginMs, continueWith: invoker.invoke } }
      : {}),
  };
  return {
    source,
    artifacts,
    watermarks,
    fanOuts,
    metrics,
    entries,
    invoker,
    logs,
    logger,
    deps,
    put(key, body, tags = {}) {
      const eTag = source.put(BUCKET, key, body, tags);
      return s3Event(BUCKET, key, { size: Buffer.byteLength(body), eTag: eTag.slice(1, -1) });
    },
  };
}

/**
 * A Lambda context whose time left is `remaining(asked)`, where `asked` counts the calls
 * (the ingest asks once per submitted full batch).
 */
export function lambdaContext(remaining: (asked: number) => number = () => 300_000): Context {
  let asked = 0;
  return {
    awsRequestId: "test-request",
    functionName: "ingestResults",
    getRemainingTimeInMillis: () => remaining(++asked),
  } as Context;
}

/** An object reference as an S3 event names it (for driving the core without an event). */
export function objectRef(key: string, overrides: Partial<S3ObjectRef> = {}): S3ObjectRef {
  return {
    bucket: BUCKET,
    key,
    size: undefined,
    eTag: undefined,
    versionId: undefined,
    sequencer: undefined,
    eventName: "ObjectCreated:Put",
    ...overrides,
  };
}
