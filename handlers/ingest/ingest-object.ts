import { TrackingSyncError } from "../shared/errors";
import type { Logger } from "../shared/logger";
import { redactSecrets } from "../shared/redact";
import { BatchPipeline } from "./batch-pipeline";
import type { IngestConfig } from "./config";
import { type CsvEnd, type CsvRecord, readCsvChunks } from "./csv-rows";
import { type DryRunMemory, readDryRunMemory } from "./dry-run-memory";
import {
  ContinuationFailedError,
  MissingColumnsError,
  MongoUnavailableError,
  ObjectReplacedError,
  ObjectUnreadableError,
} from "./errors";
import type { FileRun } from "./file-run";
import { type FileEnd, failFile, finishFile, handOver, recordRunOf } from "./finish-file";
import type { InvocationLookups } from "./lookups";
import {
  type ArtifactStore,
  type EntryStore,
  type FanOutStores,
  type IngestMetricsPublisher,
  type OpenedSource,
  type SelfInvoker,
  SourceChangedError,
  type SourceStore,
  type WatermarkStores,
} from "./ports";
import { FileRejects } from "./rejects";
import type { ObjectReport } from "./report";
import { readResumably } from "./resumable-source";
import { RowLog } from "./row-log";
import { readRunOptions } from "./run-options";
import { indexHeader } from "./validate-row";

/** What the ingest core needs from the outside, all through ports (ports.ts). */
export interface IngestDependencies {
  settings: Pick<
    IngestConfig,
    "batchSize" | "maxInFlight" | "publicationCodeOverrides" | "streamResume"
  >;
  source: SourceStore;
  artifacts: ArtifactStore;
  watermarks: WatermarkStores;
  fanOuts: FanOutStores;
  metrics: IngestMetricsPublisher;
  entries: EntryStore;
}

/** What the files of one handler invocation share. */
export interface Invocation {
  /** Epoch ms: the `Duration` metric is the invocation's time against the Lambda timeout. */
  startedAt: number;
  logger: Logger;
  lookups: InvocationLookups;
  /**
   * Files beyond one invocation: asked after each submitted batch; true stops reading there
   * and hands the rest of the file to `continueWith` once the in-flight batches commit.
   */
  handOver?: { shouldStop: () => boolean; continueWith: SelfInvoker };
}

/**
 * Ingests one CSV object, or the rest of one (a resumed run): open (run options, MongoDB,
 * lookups, the object and its header), read (stream-parse, validate, resolve, write:
 * batch-pipeline.ts), then finish (rejects, watermark, report, metrics) or hand the rest
 * over to a fresh invocation. Returns the report for data problems (nothing to retry);
 * throws a TrackingSyncError when the object failed as a unit (MongoDB, unreadable
 * object), after writing a `success: false` report when it can.
 */
export async function ingestObject(
  run: FileRun,
  deps: IngestDependencies,
  invocation: Invocation,
): Promise<ObjectReport> {
  const end: FileEnd = {
    run,
    artifacts: deps.artifacts(run.object),
    metrics: deps.metrics,
    invocationStartedAt: invocation.startedAt,
    logger: invocation.logger.child({ bucket: run.object.bucket, key: run.object.key }),
    runs: deps.entries,
  };
  let opened: OpenedFile | undefined;
  try {
    opened = await openFile(end, deps, invocation);
    const { stopped } = await opened.pipeline.readAll(
      opened.records,
      invocation.handOver?.shouldStop,
    );
    if (stopped && invocation.handOver && run.hasMore) {
      return await handOver(
        end,
        opened.rejects,
        invocation.handOver.continueWith,
        opened.dryRunMemory(),
      );
    }
    const bucket = run.object.bucket;
    const completion = { watermark: deps.watermarks(bucket), fanOut: deps.fanOuts(bucket) };
    return await finishFile(end, opened.rejects, completion, deps.source);
  } catch (caught) {
    await opened?.pipeline.abandon();
    await opened?.rejects.discard();
    return await failFile(end, classify(caught, run));
  }
}

interface OpenedFile {
  pipeline: BatchPipeline;
  /** The data records still to read (the header is taken); returns where the object ended. */
  records: CsvChunks;
  rejects: FileRejects;
  /** A dry run's simulation so far, to hand over with the rest of the file. */
  dryRunMemory: () => DryRunMemory | undefined;
}

/** Everything reading needs, in the order a failure should surface. */
async function openFile(
  end: FileEnd,
  deps: IngestDependencies,
  invocation: Invocation,
): Promise<OpenedFile> {
  const { run } = end;
  // The first invocation's decisions hold for the whole file.
  run.options ??= await readRunOptions(deps.source, run.object);
  const options = run.options;
  if (options.queryExecutionId) {
    end.logger = end.logger.child({ queryExecutionId: options.queryExecutionId });
  }
  end.logger.info(run.resumed ? "Ingest resumed" : "Ingest started", {
    ...(run.resumed ? { continuation: run.invocation - 1, checkpoint: run.checkpoint } : {}),
    dryRun: options.dryRun,
    ...(options.dryRunSource ? { dryRunSource: options.dryRunSource } : {}),
    size: run.object.size,
    manifest: options.manifest !== undefined,
  });

  // A dry run writes nothing to MongoDB, not even the index.
  if (!options.dryRun) await deps.entries.ensureUpsertKeyIndex();
  const { directory, resolver } = await invocation.lookups.get();
  const memory = options.dryRun ? await readEarlierDryRunMemory(end) : undefined;
  const writer = await deps.entries.writer(options.dryRun, memory?.entries);

  const all = readRecordsOf(await openBody(end, deps), run);
  const { header, records, startLine } = run.header
    ? { header: run.header, records: all, startLine: run.checkpoint.line }
    : await splitHeader(all, run);
  run.header = header;
  const columns = indexHeader(header);
  if (!columns.ok) throw new MissingColumnsError(columns.missing, { key: run.object.key });

  const runId = run.runId as string;
  const ledger = await deps.entries.ledger(options.dryRun, runId, memory?.facts);
  if (!run.resumed) await recordRunOf(end, run.report({ outcome: "running" }));

  const rejects = new FileRejects(end.artifacts, header, run.earlierRejects, run.object.key);
  const pipeline = new BatchPipeline({
    resolver,
    directory,
    writer,
    ledger,
    rejects,
    run,
    columns,
    startLine,
    logger: end.logger,
    rowLog: new RowLog(end.logger),
    batchSize: deps.settings.batchSize,
    // A dry run simulates batch after batch on what the earlier ones would have left: one
    // batch at a time, so no reply that arrives early reorders the simulation.
    maxInFlight: options.dryRun ? 1 : deps.settings.maxInFlight,
  });
  const dryRunMemory = () => {
    const facts = ledger.memory?.();
    const entries = writer.memory?.();
    return options.dryRun && facts && entries ? { facts, entries } : undefined;
  };
  return { pipeline, records, rejects, dryRunMemory };
}

/** What the earlier invocations of a continued dry run simulated (none for a fresh one). */
async function readEarlierDryRunMemory(end: FileEnd): Promise<DryRunMemory | undefined> {
  const earlier = end.run.earlierDryRunMemory;
  if (!earlier) return undefined;
  try {
    const { body, size } = await end.artifacts.readDryRunMemory(earlier.name);
    if (size !== undefined && size !== earlier.size) {
      throw new Error(`it is ${size} bytes, the hand-over wrote ${earlier.size}`);
    }
    return await readDryRunMemory(body, earlier.size);
  } catch (error) {
    throw new ContinuationFailedError(
      `Could not read the dry run's memory handed over: ${(error as Error).message}`,
      { name: earlier.name },
    );
  }
}

/**
 * The bytes this invocation reads, as one stream even when the body breaks mid-way: it is
 * reopened where it broke, conditional on the version first read (resumable-source.ts).
 * Each reopen is logged and counted in the report's `streamResumes`.
 */
async function openBody(
  end: FileEnd,
  deps: Pick<IngestDependencies, "source" | "settings">,
): Promise<AsyncIterable<Uint8Array>> {
  const { run } = end;
  const opened = await openSource(deps.source, run);
  run.source ??= { eTag: opened.eTag, size: opened.size };
  return readResumably({
    source: deps.source,
    object: run.object,
    opened,
    startByte: run.readFrom?.byteOffset ?? 0,
    eTag: run.source.eTag,
    config: deps.settings.streamResume,
    onResume: ({ byteOffset, attempt, attempts, error }) => {
      run.tally.streamResumes++;
      end.logger.warn("Source stream broke; resuming", {
        byteOffset,
        attempt,
        attempts,
        error: error.message,
      });
    },
  });
}

/**
 * The object's bytes: from the top, or (resumed) from the checkpoint, only if the object
 * is still the one the first invocation read.
 */
async function openSource(source: SourceStore, run: FileRun): Promise<OpenedSource> {
  const { object } = run;
  const from = run.readFrom;
  try {
    return await source.open(object, from);
  } catch (error) {
    if (error instanceof SourceChangedError && from) {
      throw new ObjectReplacedError(
        `s3://${object.bucket}/${object.key} changed since invocation 1 read it (ETag ${from.eTag}); its rows after line ${run.checkpoint.line} were not ingested. The new object's own event ingests it.`,
        { checkpoint: run.checkpoint },
      );
    }
    throw new ObjectUnreadableError(
      `Could not read s3://${object.bucket}/${object.key}: ${(error as Error).message}`,
      { cause: (error as Error).name },
    );
  }
}

/** Records one array per chunk; returns where the object ended (undefined: an empty object). */
type CsvChunks = AsyncGenerator<CsvRecord[], CsvEnd | undefined>;

/**
 * The records, one array per chunk read (an async step per chunk, not per record). A
 * resumed run starts at a record boundary past the header: line and byte go on from the
 * checkpoint, and the header's width is the one read at the top. A stream that stays
 * broken past its resumes surfaces as ObjectUnreadableError.
 */
function readRecordsOf(body: AsyncIterable<Uint8Array>, run: FileRun): CsvChunks {
  const { object } = run;
  const from = run.readFrom;
  const records = readCsvChunks(
    body,
    from
      ? {
          startByte: from.byteOffset,
          startLine: run.checkpoint.line,
          headerWidth: run.header?.length,
        }
      : {},
  );
  return (async function* () {
    try {
      return yield* records;
    } catch (error) {
      if (error instanceof TrackingSyncError) throw error;
      throw new ObjectUnreadableError(
        `Reading s3://${object.bucket}/${object.key} failed: ${(error as Error).message}`,
        { cause: (error as Error).name },
      );
    }
  })();
}

/**
 * The header is the first record of the first chunk; that chunk's other records follow.
 * Its lines are counted in the run's tally; the data records start on the line after it.
 */
async function splitHeader(
  records: CsvChunks,
  run: FileRun,
): Promise<{ header: readonly (string | null)[]; records: CsvChunks; startLine: number }> {
  const first = await records.next();
  const chunk = first.done ? [] : first.value;
  const header = chunk.shift();
  if (header) run.tally.countHeader(header.line, header.nextLine);
  return {
    header: header?.fields ?? [],
    records: startingWith(chunk, records),
    startLine: header?.nextLine ?? 1,
  };
}

/** `first` (unless empty), then the rest and what it returns; closing this closes `rest`. */
async function* startingWith<T, R>(
  first: T[],
  rest: AsyncGenerator<T[], R | undefined>,
): AsyncGenerator<T[], R | undefined> {
  if (first.length > 0) yield first;
  return yield* rest;
}

/** Every failure leaves as a TrackingSyncError whose message carries no connection string. */
function classify(error: unknown, run: FileRun): TrackingSyncError {
  if (error instanceof TrackingSyncError) {
    error.message = redactSecrets(error.message);
    return error;
  }
  const message = redactSecrets((error as Error)?.message ?? String(error));
  if ((error as Error)?.name?.startsWith("Mongo")) return new MongoUnavailableError(message);
  return new TrackingSyncError(`Ingest of ${run.object.key} failed: ${message}`, {
    cause: (error as Error)?.name,
  });
}
