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
import { type CsvRecord, readCsvRecords } from "./csv-rows";
import {
  InvalidManifestError,
  MissingColumnsError,
  MongoUnavailableError,
  ObjectUnreadableError,
} from "./errors";
import { publishObjectMetrics } from "./metrics";
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
 * (read once) and the order resolver's cache, so a creative is looked up once.
 */
export class InvocationContext {
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
}

const MAX_WARNING_LOGS = 20;

/**
 * Ingests one CSV object: stream-parse, validate, resolve (batched, cached), write
 * (inserts of new entries, one update statement for existing ones, bounded in flight),
 * then report, rejects, metrics and watermark.
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
  const startedAt = new Date();
  const { config, s3 } = deps;
  let logger = deps.logger.child({ bucket: object.bucket, key: object.key });
  const tally = new Tally();
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
      progress: pipeline?.checkpoint ?? { rows: 0, byteOffset: 0, line: 1 },
      lookupQueries: resolver ? resolver.queries - lookupQueries : 0,
      writeBatches: pipeline?.batches ?? 0,
      startedAt,
      finishedAt: new Date(),
      ...fields,
    });

  try {
    run = await readRunOptions(s3, object);
    if (run.queryExecutionId) logger = logger.child({ queryExecutionId: run.queryExecutionId });
    logger.info("Ingest started", {
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

    const records = readRecordsOf(await openObject(s3, object), object);
    const header = await records.next();
    const headerFields = header.done ? [] : header.value.fields;
    const columns = indexHeader(headerFields);
    if (!columns.ok) throw new MissingColumnsError(columns.missing, { key: object.key });

    rejects = new RejectsFile(headerFields);
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
    const knownDates = new Set<string>();
    let warningLogs = 0;
    let batch = new RowBatch();
    for await (const record of records) {
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
      }
    }
    if (batch.records > 0) await pipeline.submit(batch);
    await pipeline.finish();

    let rejectsRef: ObjectReport["rejects"];
    const rejectsObjectKey = rejectsKey(object.key);
    if (await rejects.upload(s3, object.bucket, rejectsObjectKey)) {
      rejectsRef = { bucket: object.bucket, key: rejectsObjectKey, rows: rejects.count };
    } else {
      // A clean run must not leave an earlier run's rejects looking current.
      await s3.send(new DeleteObjectCommand({ Bucket: object.bucket, Key: rejectsObjectKey }));
    }
    const result = report({ outcome: "synced", rejects: rejectsRef });
    if (!run.dryRun) {
      await publishObjectMetrics(
        deps.cloudwatch,
        config.metricsNamespace,
        {
          synced: tally.synced,
          skipped: tally.skipped,
          errors: tally.errors,
          durationMs: result.duration,
          inserted: tally.inserted,
          updated: tally.updated,
          unchanged: tally.unchanged,
        },
        logger,
      );
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
    logger.info("Ingest finished", {
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
    const dataProblem =
      error instanceof MissingColumnsError || error instanceof InvalidManifestError;
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

async function openObject(s3: S3Client, object: S3ObjectRef): Promise<Readable> {
  try {
    const response = await s3.send(
      new GetObjectCommand({ Bucket: object.bucket, Key: object.key }),
    );
    if (!response.Body) throw new Error("empty response body");
    return response.Body as Readable;
  } catch (error) {
    throw new ObjectUnreadableError(
      `Could not read s3://${object.bucket}/${object.key}: ${(error as Error).message}`,
      {
        cause: (error as Error).name,
      },
    );
  }
}

/** The object's records; a broken stream surfaces as ObjectUnreadableError. */
async function* readRecordsOf(body: Readable, object: S3ObjectRef): AsyncGenerator<CsvRecord> {
  try {
    yield* readCsvRecords(body);
  } catch (error) {
    if (error instanceof TrackingSyncError) throw error;
    throw new ObjectUnreadableError(
      `Reading s3://${object.bucket}/${object.key} failed: ${(error as Error).message}`,
      { cause: (error as Error).name },
    );
  }
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
