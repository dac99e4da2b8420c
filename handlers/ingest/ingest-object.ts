import type { Readable } from "node:stream";
import type { CloudWatchClient } from "@aws-sdk/client-cloudwatch";
import { DeleteObjectCommand, GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { rejectsKey, reportKey } from "../shared/bucket-layout";
import { TrackingSyncError } from "../shared/errors";
import type { Logger } from "../shared/logger";
import { redactSecrets } from "../shared/redact";
import { putJsonObject } from "../shared/s3";
import { BatchPipeline, type Checkpoint, RowBatch } from "./batch-pipeline";
import type { IngestConfig } from "./config";
import {
  type ContinuationState,
  handOver,
  ObjectReplacedError,
  removeContinuationState,
  type SelfInvoker,
  uploadRejects,
} from "./continuation";
import { type CsvRecord, type ReadCsvOptions, readCsvBatches } from "./csv-rows";
import {
  InvalidManifestError,
  MissingColumnsError,
  MongoUnavailableError,
  ObjectUnreadableError,
} from "./errors";
import { type FileMetrics, publishIngestMetrics } from "./metrics";
import { ENTRIES_COLLECTION, type MongoConnection, MongoLookupStore } from "./mongo";
import { OrderResolver } from "./order-resolver";
import { PublicationDirectory } from "./publications";
import { RejectsFile } from "./rejects";
import { buildReport, type ObjectReport } from "./report";
import { type RunOptions, readRunOptions } from "./run-options";
import type { S3ObjectRef } from "./s3-records";
import { Tally } from "./tally";
import { indexHeader, validateRecord } from "./validate-row";
import { advanceWatermark, completesDays } from "./watermark-store";
import { DryRunEntryWriter, MongoEntryWriter } from "./writer";

export interface IngestDependencies {
  config: IngestConfig;
  s3: S3Client;
  cloudwatch: CloudWatchClient;
  mongo: MongoConnection;
  logger: Logger;
}

/**
 * What one handler invocation shares across its records: the publication directory
 * (read once) and the order resolver's cache, so a creative is looked up once, and when
 * the invocation started (the `Duration` metric: its time against the Lambda timeout).
 */
export class InvocationContext {
  /** Epoch ms; the handler creates the context as the invocation begins. */
  readonly startedAt = Date.now();
  private prepared:
    | Promise<{ directory: PublicationDirectory; resolver: OrderResolver }>
    | undefined;

  constructor(private readonly deps: IngestDependencies) {}

  lookups(): Promise<{ directory: PublicationDirectory; resolver: OrderResolver }> {
    this.prepared ??= (async () => {
      const store = new MongoLookupStore(await this.deps.mongo.db());
      const directory = new PublicationDirectory(
        await store.findPublicationCodes(),
        this.deps.config.publicationCodeOverrides,
      );
      if (directory.conflicts.length > 0) {
        this.deps.logger.warn("Publication codes claimed by several publications are ignored", {
          codes: directory.conflicts,
        });
      }
      return { directory, resolver: new OrderResolver(store) };
    })();
    this.prepared.catch(() => {
      this.prepared = undefined;
    });
    return this.prepared;
  }
}

export interface IngestObjectOptions {
  /** Called after each committed batch (the checkpoint hook for continuing in a fresh invocation). */
  onCommitted?: (checkpoint: Checkpoint) => void;
  /** Continue the file where an earlier invocation handed it over (continuation.ts). */
  resume?: ContinuationState;
  /**
   * Files beyond one invocation: asked after each submitted batch; true stops reading there
   * and hands the rest of the file to `continueWith` once the in-flight batches commit.
   */
  continuation?: { shouldStop: () => boolean; continueWith: SelfInvoker };
}

const MAX_WARNING_LOGS = 20;

/**
 * Ingests one CSV object: stream-parse, validate, resolve (batched, cached), write
 * (inserts of new entries, one update statement for existing ones, bounded in flight),
 * then rejects, watermark, report and metrics (every invocation of a real run publishes
 * its own Duration; the file's counts come once, from the invocation that finishes it).
 * Returns the report for data problems (nothing to retry); throws a TrackingSyncError
 * when the object failed as a unit (MongoDB, unreadable object), after writing a
 * `success: false` report when it can.
 */
export async function ingestObject(
  object: S3ObjectRef,
  deps: IngestDependencies,
  invocation: InvocationContext,
  options: IngestObjectOptions = {},
): Promise<ObjectReport> {
  const { resume, continuation } = options;
  const startedAt = resume ? new Date(resume.startedAt) : new Date();
  const { config, s3 } = deps;
  let logger = deps.logger.child({ bucket: object.bucket, key: object.key });
  const tally = resume ? Tally.restore(resume.tally) : new Tally();
  let run: RunOptions | undefined;
  let pipeline: BatchPipeline | undefined;
  let rejects: RejectsFile | undefined;
  let lookupQueries = 0;
  let resolver: OrderResolver | undefined;

  const report = (
    fields: Partial<Parameters<typeof buildReport>[0]> & { outcome: ObjectReport["outcome"] },
  ) =>
    buildReport({
      object,
      tally,
      dryRun: run?.dryRun ?? false,
      dryRunSource: run?.dryRunSource,
      queryExecutionId: run?.queryExecutionId,
      progress: pipeline?.checkpoint ?? resume?.checkpoint ?? { rows: 0, byteOffset: 0, line: 1 },
      lookupQueries:
        (resume?.lookupQueries ?? 0) + (resolver ? resolver.queries - lookupQueries : 0),
      writeBatches: (resume?.writeBatches ?? 0) + (pipeline?.batches ?? 0),
      invocations: (resume?.continuation ?? 0) + 1,
      startedAt,
      finishedAt: new Date(),
      ...fields,
    });
  // Every invocation of a real run publishes its own Duration; only the one that finishes
  // the file adds the file's counts. Dry runs publish nothing.
  const publishMetrics = async (file?: FileMetrics) => {
    if (!run || run.dryRun) return;
    await publishIngestMetrics(
      deps.cloudwatch,
      config.metricsNamespace,
      { invocationDurationMs: Date.now() - invocation.startedAt, ...(file ? { file } : {}) },
      logger,
    );
  };

  try {
    // The first invocation's decisions hold for the whole file.
    run = resume ? resume.run : await readRunOptions(s3, object);
    if (run.queryExecutionId) logger = logger.child({ queryExecutionId: run.queryExecutionId });
    logger.info(resume ? "Ingest resumed" : "Ingest started", {
      ...(resume ? { continuation: resume.continuation, checkpoint: resume.checkpoint } : {}),
      dryRun: run.dryRun,
      ...(run.dryRunSource ? { dryRunSource: run.dryRunSource } : {}),
      size: object.size,
      manifest: run.manifest !== undefined,
    });

    const db = await deps.mongo.db();
    // A dry run writes nothing to MongoDB, not even the index.
    if (!run.dryRun) await deps.mongo.ensureUpsertKeyIndex();
    const lookups = await invocation.lookups();
    resolver = lookups.resolver;
    lookupQueries = resolver.queries;
    const entries = db.collection(ENTRIES_COLLECTION);
    const writer = run.dryRun ? new DryRunEntryWriter(entries) : new MongoEntryWriter(entries);

    const source = await openObject(s3, object, resume);
    // A continuation starts at a record boundary past the header: line and byte go on from the checkpoint.
    const records = readRecordsOf(
      source.body,
      object,
      resume ? { startByte: resume.checkpoint.byteOffset, startLine: resume.checkpoint.line } : {},
    );
    // The header is the first record of the first chunk; that chunk's other records follow.
    let firstRecords: CsvRecord[] = [];
    if (!resume) {
      const first = await records.next();
      firstRecords = first.done ? [] : first.value;
    }
    const header = resume ? undefined : firstRecords.shift();
    const headerFields = resume ? resume.header : (header?.fields ?? []);
    const columns = indexHeader(headerFields);
    if (!columns.ok) throw new MissingColumnsError(columns.missing, { key: object.key });

    rejects = new RejectsFile(headerFields, { continues: (resume?.rejects.rows ?? 0) > 0 });
    pipeline = new BatchPipeline({
      resolver,
      directory: lookups.directory,
      writer,
      rejects,
      tally,
      logger,
      maxInFlight: config.maxInFlight,
      onCommitted: options.onCommitted,
    });
    if (resume) pipeline.checkpoint = resume.checkpoint;
    let stopped = false;
    const knownDates = new Set<string>();
    let warningLogs = 0;
    let batch = new RowBatch();
    reading: for await (const chunkRecords of startingWith(firstRecords, records)) {
      for (const record of chunkRecords) {
        if (record.malformed) {
          batch.addError(record.line, record.fields, record.malformed);
        } else {
          const validation = validateRecord(
            record.fields,
            record.line,
            columns.index,
            columns.width,
            knownDates,
          );
          if (!validation.ok) {
            batch.addError(record.line, record.fields, validation.reason);
            if (warningLogs++ < MAX_WARNING_LOGS) {
              logger.warn("Row rejected", {
                line: record.line,
                reason: validation.reason,
                detail: validation.detail,
              });
            }
          } else {
            batch.addValid(validation.row, record.fields);
            tally.seeDate(validation.row.reportDate);
            if (validation.warnings) {
              for (const warning of validation.warnings) {
                tally.warn(warning);
                if (warningLogs++ < MAX_WARNING_LOGS) {
                  logger.warn("Row accepted with a warning", { line: record.line, warning });
                }
              }
            }
          }
        }
        batch.endByte = record.endByte;
        batch.nextLine = record.nextLine;
        if (batch.records >= config.batchSize) {
          await pipeline.submit(batch);
          batch = new RowBatch();
          // Stop pulling records; the in-flight batches commit in finish(): a batch boundary.
          if (continuation?.shouldStop()) {
            stopped = true;
            break reading;
          }
        }
      }
    }
    if (batch.records > 0) await pipeline.submit(batch);
    await pipeline.finish();

    if (stopped && continuation && pipeline.checkpoint.byteOffset < source.size) {
      await handOver(
        s3,
        continuation.continueWith,
        {
          object,
          source: { eTag: source.eTag, size: source.size },
          startedAt,
          previous: resume,
          checkpoint: pipeline.checkpoint,
          header: headerFields,
          run,
          tally,
          rejects,
          lookupQueries: (resume?.lookupQueries ?? 0) + resolver.queries - lookupQueries,
          writeBatches: (resume?.writeBatches ?? 0) + pipeline.batches,
        },
        logger,
      );
      await publishMetrics();
      return report({ outcome: "continued" });
    }

    let rejectsRef: ObjectReport["rejects"];
    const rejectsObjectKey = rejectsKey(object.key);
    const rejectedRows = await uploadRejects(
      s3,
      object.bucket,
      rejectsObjectKey,
      object.key,
      rejects,
      resume,
    );
    if (rejectedRows !== undefined) {
      rejectsRef = { bucket: object.bucket, key: rejectsObjectKey, rows: rejectedRows };
    } else {
      // A clean run must not leave an earlier run's rejects looking current.
      await s3.send(new DeleteObjectCommand({ Bucket: object.bucket, Key: rejectsObjectKey }));
    }
    const result = report({ outcome: "synced", rejects: rejectsRef });
    if (!run.dryRun) {
      if (run.manifest && !completesDays(run.manifest)) {
        logger.info("Watermark kept: the run synced one publication, not whole days", {
          publicationCode: run.manifest.publicationCode,
        });
      } else if (run.manifest) {
        const moved = await advanceWatermark(s3, object.bucket, {
          lastCompleteDate: run.manifest.dateRange.end,
          queryExecutionId: run.manifest.queryExecutionId,
          sourceKey: object.key,
        });
        logger.info(moved.moved ? "Watermark advanced" : "Watermark kept", { ...moved });
      }
    }
    await putJsonObject(s3, object.bucket, reportKey(object.key), result);
    if (resume) await removeContinuationState(s3, object.bucket, object.key, resume, logger);
    // Last, once the report is written: a retry after a failed report write publishes the
    // counts once, not twice, and this invocation's Duration covers all its work.
    await publishMetrics({
      synced: tally.synced,
      skipped: tally.skipped,
      errors: tally.errors,
      inserted: tally.inserted,
      updated: tally.updated,
      unchanged: tally.unchanged,
      fileDurationMs: result.duration,
      invocations: result.invocations,
    });
    logger.info("Ingest finished", {
      invocations: result.invocations,
      dryRun: result.dryRun,
      stats: result.stats,
      inserted: result.inserted,
      updated: result.updated,
      unchanged: result.unchanged,
      skippedByReason: result.skippedByReason,
      errorsByReason: result.errorsByReason,
      warnings: result.warnings,
      duration: result.duration,
    });
    return result;
  } catch (caught) {
    await pipeline?.abandon();
    await rejects?.discard();
    const error = classify(caught, object);
    // A replaced object is ingested by its own event; retrying this one cannot help.
    const dataProblem =
      error instanceof MissingColumnsError ||
      error instanceof InvalidManifestError ||
      error instanceof ObjectReplacedError;
    const result = report({
      outcome: dataProblem ? "rejected" : "failed",
      error: error.message,
      ...(error instanceof MissingColumnsError ? { missingColumns: error.missingColumns } : {}),
    });
    try {
      await putJsonObject(s3, object.bucket, reportKey(object.key), result);
    } catch (reportError) {
      logger.error("Could not write the failure report", { error: reportError });
    }
    logger.error(dataProblem ? "Ingest rejected the file" : "Ingest failed", {
      error,
      stats: result.stats,
      duration: result.duration,
    });
    // An invocation that fails near its timeout is what the Duration alarm is for; no counts.
    await publishMetrics();
    if (dataProblem) return result;
    throw error;
  }
}

/**
 * The `success: false` report of an object that was not attempted because MongoDB was
 * already found down in this invocation (best effort: a failure here is only logged).
 */
export async function reportNotAttempted(
  object: S3ObjectRef,
  deps: IngestDependencies,
  error: string,
): Promise<void> {
  const now = new Date();
  const result = buildReport({
    object,
    tally: new Tally(),
    outcome: "failed",
    error: redactSecrets(error),
    dryRun: false,
    progress: { rows: 0, byteOffset: 0, line: 1 },
    lookupQueries: 0,
    writeBatches: 0,
    startedAt: now,
    finishedAt: now,
  });
  try {
    await putJsonObject(deps.s3, object.bucket, reportKey(object.key), result);
  } catch (reportError) {
    deps.logger.error("Could not write the failure report", {
      bucket: object.bucket,
      key: object.key,
      error: reportError,
    });
  }
}

/**
 * The object's bytes with its ETag and whole size. A continuation reads from its
 * checkpoint, only if the object is still the one the first invocation read.
 */
async function openObject(
  s3: S3Client,
  object: S3ObjectRef,
  resume: ContinuationState | undefined,
): Promise<{ body: Readable; eTag: string; size: number }> {
  try {
    const response = await s3.send(
      new GetObjectCommand({
        Bucket: object.bucket,
        Key: object.key,
        ...(resume
          ? { Range: `bytes=${resume.checkpoint.byteOffset}-`, IfMatch: resume.source.eTag }
          : {}),
      }),
    );
    if (!response.Body) throw new Error("empty response body");
    if (resume) return { body: response.Body as Readable, ...resume.source };
    return {
      body: response.Body as Readable,
      eTag: response.ETag ?? "",
      size: response.ContentLength ?? Number.POSITIVE_INFINITY,
    };
  } catch (error) {
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (resume && status === 412) {
      throw new ObjectReplacedError(
        `s3://${object.bucket}/${object.key} changed since invocation 1 read it (ETag ${resume.source.eTag}); its rows after line ${resume.checkpoint.line} were not ingested. The new object's own event ingests it.`,
        { checkpoint: resume.checkpoint },
      );
    }
    throw new ObjectUnreadableError(
      `Could not read s3://${object.bucket}/${object.key}: ${(error as Error).message}`,
      {
        cause: (error as Error).name,
      },
    );
  }
}

/**
 * The object's records, one array per chunk read (an async step per chunk, not per
 * record); a broken stream surfaces as ObjectUnreadableError.
 */
async function* readRecordsOf(
  body: Readable,
  object: S3ObjectRef,
  options: ReadCsvOptions = {},
): AsyncGenerator<CsvRecord[]> {
  try {
    yield* readCsvBatches(body, options);
  } catch (error) {
    if (error instanceof TrackingSyncError) throw error;
    throw new ObjectUnreadableError(
      `Reading s3://${object.bucket}/${object.key} failed: ${(error as Error).message}`,
      { cause: (error as Error).name },
    );
  }
}

/** `first` (unless empty), then the rest; breaking out of the loop closes `rest`. */
async function* startingWith<T>(first: T[], rest: AsyncIterable<T[]>): AsyncGenerator<T[]> {
  if (first.length > 0) yield first;
  yield* rest;
}

/** Every failure leaves as a TrackingSyncError whose message carries no connection string. */
function classify(error: unknown, object: S3ObjectRef): TrackingSyncError {
  if (error instanceof TrackingSyncError) {
    error.message = redactSecrets(error.message);
    return error;
  }
  const message = redactSecrets((error as Error)?.message ?? String(error));
  if ((error as Error)?.name?.startsWith("Mongo")) return new MongoUnavailableError(message);
  return new TrackingSyncError(`Ingest of ${object.key} failed: ${message}`, {
    cause: (error as Error)?.name,
  });
}
