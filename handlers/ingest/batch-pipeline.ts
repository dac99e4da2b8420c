import type { Logger } from "../shared/logger";
import type { CsvRecord } from "./csv-rows";
import { groupIntoUpdates, type PlacedRow, type ResolvedRow } from "./entry-batch";
import type { FactLedger, LedgerBatch } from "./ledger";
import type { OrderResolver } from "./order-resolver";
import type { PublicationDirectory } from "./publications";
import type { RejectedRow } from "./rejects";
import type { RowLog } from "./row-log";
import type { Tally } from "./tally";
import { type ColumnIndex, type ValidRow, validateRecord } from "./validate-row";
import type { BatchWriteResult, EntryWriter, RemovalResult } from "./writer";

/** Records read since the last batch boundary, in file order (the unit of one bulk write). */
export class RowBatch {
  readonly valid: { row: ValidRow; fields: readonly (string | null)[] }[] = [];
  readonly rejected: (RejectedRow & { bucket: "error" | "skip" })[] = [];
  records = 0;
  /** Byte offset just past the batch's last record, and the line after it. */
  endByte = 0;
  nextLine = 1;

  addValid(row: ValidRow, fields: readonly (string | null)[]): void {
    this.valid.push({ row, fields });
    this.records++;
  }

  addError(line: number, fields: readonly (string | null)[], reason: string): void {
    this.rejected.push({ line, fields, reason, bucket: "error" });
    this.records++;
  }
}

/** Where a fresh invocation could resume: everything before it is committed. */
export interface Checkpoint {
  /** Data rows fully accounted for (synced, skipped or error). */
  rows: number;
  /** Byte offset of the first record not yet committed (for a ranged GET). */
  byteOffset: number;
  /** Line on which that record starts. */
  line: number;
}

/** What one batch's writes did: the ledger's placement, the entry upserts, the moves. */
interface BatchOutcome {
  placed: LedgerBatch;
  rowsOf: PlacedRow[][];
  rowCounts: number[];
  result: BatchWriteResult;
  /** Moved contributions taken out of their old entries (and late writes taken back). */
  removed: RemovalResult;
  /** Duplicate rows within one entry of the batch (none once the ledger deduplicates). */
  superseded: number;
}

interface InFlight {
  batch: RowBatch;
  settled: boolean;
  outcome?: BatchOutcome;
  error?: unknown;
  done: Promise<void>;
}

/** The file run's side of the pipeline (`FileRun`): counts, checkpoint, counters. */
export interface PipelineProgress {
  readonly tally: Tally;
  checkpoint: Checkpoint;
  countWriteBatch(): void;
  countLookupQueries(queries: number): void;
}

export interface BatchPipelineOptions {
  resolver: OrderResolver;
  directory: PublicationDirectory;
  writer: EntryWriter;
  /** Where each row identity and day lives, and who wrote it (ledger.ts). */
  ledger: FactLedger;
  rejects: { add(rows: readonly RejectedRow[]): Promise<void> };
  run: PipelineProgress;
  /** Where each required column stands in the file's records, and the header's width. */
  columns: { index: ColumnIndex; width: number };
  logger: Logger;
  rowLog: RowLog;
  batchSize: number;
  maxInFlight: number;
}

/**
 * Resolves batches in file order and writes them with at most `maxInFlight` bulk
 * writes outstanding, so parsing and resolving the next batch overlaps the writes of
 * the previous one. Batches commit strictly in file order: their counts and rejects
 * are accounted only then, so the committed checkpoint is always a batch boundary.
 */
export class BatchPipeline {
  private readonly queue: InFlight[] = [];
  /** Report dates already validated: most rows repeat a handful. */
  private readonly knownDates = new Set<string>();

  constructor(private readonly options: BatchPipelineOptions) {}

  /**
   * Reads the records into batches of `batchSize` and writes them. After each submitted
   * batch `shouldStop` may end the reading there (a batch boundary); either way every
   * batch in flight commits before this returns. Throws the first failed write.
   */
  async readAll(
    records: AsyncIterable<CsvRecord[]>,
    shouldStop: () => boolean = () => false,
  ): Promise<{ stopped: boolean }> {
    let batch = new RowBatch();
    for await (const chunk of records) {
      for (const record of chunk) {
        this.add(batch, record);
        if (batch.records < this.options.batchSize) continue;
        await this.submit(batch);
        batch = new RowBatch();
        // Stop pulling records; the in-flight batches commit below.
        if (shouldStop()) {
          await this.finish();
          return { stopped: true };
        }
      }
    }
    if (batch.records > 0) await this.submit(batch);
    await this.finish();
    return { stopped: false };
  }

  /** Lets outstanding writes settle without committing (the object is failing anyway). */
  async abandon(): Promise<void> {
    await Promise.all(this.queue.map((entry) => entry.done));
  }

  /** Validates one record into the batch: a valid row, or an error with its reason. */
  private add(batch: RowBatch, record: CsvRecord): void {
    const { columns, run, rowLog } = this.options;
    if (record.malformed) {
      batch.addError(record.line, record.fields, record.malformed);
    } else {
      const validation = validateRecord(
        record.fields,
        record.line,
        columns.index,
        columns.width,
        this.knownDates,
      );
      if (!validation.ok) {
        batch.addError(record.line, record.fields, validation.reason);
        rowLog.warn("Row rejected", {
          line: record.line,
          reason: validation.reason,
          detail: validation.detail,
        });
      } else {
        batch.addValid(validation.row, record.fields);
        run.tally.seeDate(validation.row.reportDate);
        for (const warning of validation.warnings ?? []) {
          run.tally.warn(warning);
          rowLog.warn("Row accepted with a warning", { line: record.line, warning });
        }
      }
    }
    batch.endByte = record.endByte;
    batch.nextLine = record.nextLine;
  }

  private async submit(batch: RowBatch): Promise<void> {
    const { resolver, directory, writer } = this.options;
    // Publication per row, then one lookup round for the creatives not seen before.
    const publicationIds: (number | undefined)[] = new Array(batch.valid.length);
    const unseen = new Set<string>();
    for (const [index, item] of batch.valid.entries()) {
      const publicationId = directory.lookup(item.row.publicationCode);
      publicationIds[index] = publicationId;
      if (publicationId === undefined) {
        this.skip(batch, item.row, item.fields, "unknown-publication");
      } else if (!resolver.knows(item.row.creativeId)) {
        unseen.add(item.row.creativeId);
      }
    }
    const queriesBefore = resolver.queries;
    try {
      await resolver.prepare(unseen);
    } finally {
      this.options.run.countLookupQueries(resolver.queries - queriesBefore);
    }
    const resolved: ResolvedRow[] = [];
    for (const [index, item] of batch.valid.entries()) {
      const publicationId = publicationIds[index];
      if (publicationId === undefined) continue;
      const resolution = resolver.get(item.row.creativeId, publicationId);
      if (resolution.kind === "skipped") {
        this.skip(batch, item.row, item.fields, resolution.reason, resolution.detail);
        continue;
      }
      resolved.push({ row: item.row, target: resolution.target, fields: item.fields });
    }
    const entry: InFlight = { batch, settled: false, done: Promise.resolve() };
    entry.done = this.write(resolved).then(
      (outcome) => {
        entry.outcome = outcome;
        entry.settled = true;
      },
      (error: unknown) => {
        entry.error = error;
        entry.settled = true;
      },
    );
    this.queue.push(entry);
    this.options.run.countWriteBatch();
    await this.commitSettled();
    while (this.queue.length >= this.options.maxInFlight) {
      await this.queue[0]?.done;
      await this.commitSettled();
    }
  }

  /**
   * One batch's writes: the ledger places its rows (in file order, batch after batch),
   * the entries get their contributions, moved ones leave their old entries, and the
   * ledger settles (taking back what a concurrent newer writer moved on from).
   */
  private async write(resolved: ResolvedRow[]): Promise<BatchOutcome> {
    const { ledger, writer } = this.options;
    const placed = await ledger.place(resolved);
    const grouped = groupIntoUpdates(placed.placed);
    const result =
      grouped.updates.length > 0
        ? await writer.write(grouped.updates)
        : { inserted: 0, updated: 0, unchanged: 0, failed: [] };
    const removed = await writer.remove(placed.removals);
    const takenBack = await writer.remove(await ledger.settle(placed));
    return {
      placed,
      rowsOf: grouped.rowsOf,
      rowCounts: grouped.rowCounts,
      result,
      removed: {
        updated: removed.updated + takenBack.updated,
        deleted: removed.deleted + takenBack.deleted,
      },
      superseded: grouped.superseded,
    };
  }

  /** Waits for every write; throws the first failure after all have settled. */
  private async finish(): Promise<void> {
    await Promise.all(this.queue.map((entry) => entry.done));
    await this.commitSettled();
  }

  private skip(
    batch: RowBatch,
    row: ValidRow,
    fields: readonly (string | null)[],
    reason: string,
    detail?: string,
  ): void {
    batch.rejected.push({ line: row.line, fields, reason, bucket: "skip" });
    this.options.rowLog.warn("Row skipped", {
      line: row.line,
      reason,
      ...(detail ? { detail } : {}),
      creativeId: row.creativeId,
      publicationCode: row.publicationCode,
    });
  }

  private async commitSettled(): Promise<void> {
    const { run, rejects } = this.options;
    const { tally } = run;
    while (this.queue[0]?.settled) {
      const entry = this.queue[0];
      if (entry.error !== undefined) {
        // Keep the failed batch queued: later calls keep failing, nothing past it commits.
        throw entry.error;
      }
      this.queue.shift();
      const outcome = entry.outcome as BatchOutcome;
      const { result } = outcome;
      for (let i = 0; i < outcome.placed.superseded + outcome.superseded; i++) {
        tally.warn("duplicate-row-superseded");
      }
      const rejected: RejectedRow[] = [];
      for (const item of entry.batch.rejected) {
        if (item.bucket === "skip") tally.skip(item.reason);
        else tally.error(item.reason);
        rejected.push(item);
      }
      const failedUpdates = new Set(result.failed.map((failure) => failure.index));
      tally.synced += outcome.placed.supersededRows;
      outcome.rowCounts.forEach((count, index) => {
        if (!failedUpdates.has(index)) {
          tally.synced += count;
          return;
        }
        for (const { row, fields } of outcome.rowsOf[index] ?? []) {
          tally.error("write-failed");
          rejected.push({ line: row.line, fields: fields ?? [], reason: "write-failed" });
        }
      });
      for (const failure of result.failed) {
        this.options.logger.error("Entry write failed", {
          code: failure.code,
          message: failure.message,
        });
      }
      tally.inserted += result.inserted;
      tally.updated += result.updated;
      tally.unchanged += result.unchanged;
      tally.moved += outcome.placed.moved;
      tally.updated += outcome.removed.updated;
      tally.deleted += outcome.removed.deleted;
      tally.addFieldChanges(result.fieldChanges);
      rejected.sort((a, b) => a.line - b.line);
      await rejects.add(rejected);
      run.checkpoint = {
        rows: tally.rows,
        byteOffset: entry.batch.endByte,
        line: entry.batch.nextLine,
      };
    }
  }
}
