import type { Logger } from "../shared/logger";
import type { CsvEnd, CsvRecord } from "./csv-rows";
import { groupIntoUpdates, type PlacedRow, type ResolvedRow, UNPLACED } from "./entry-batch";
import type { FactLedger, LedgerBatch } from "./ledger";
import type { OrderResolver } from "./order-resolver";
import type { PublicationDirectory } from "./publications";
import type { RejectedRow } from "./rejects";
import type { RowLog } from "./row-log";
import type { Tally } from "./tally";
import { type ColumnIndex, type ValidRow, validateRecord } from "./validate-row";
import type { BatchWriteResult, EntryWriter, RemovalResult } from "./writer";

/**
 * A resolved row and the record it was read from (for the rejects and the line counts),
 * as the ledger places it: the ledger hands the caller's rows back with their provenance
 * and key set. It is built with every field the ledger sets, so setting them later does
 * not give each row a second, out-of-object property store.
 */
type PipelineRow = PlacedRow & { record: CsvRecord };

/** Records read since the last batch boundary, in file order (the unit of one bulk write). */
export class RowBatch {
  /** The valid rows and, at the same index, the records they were read from. */
  readonly validRows: ValidRow[] = [];
  readonly validRecords: CsvRecord[] = [];
  readonly rejected: (RejectedRow & { bucket: "error" | "skip" })[] = [];
  records = 0;
  /** Blank lines between the end of the previous batch and this batch's last record. */
  blankLines = 0;
  /** Byte offset just past the batch's last record, and the line after it. */
  endByte = 0;
  nextLine = 1;

  addValid(row: ValidRow, record: CsvRecord): void {
    this.validRows.push(row);
    this.validRecords.push(record);
    this.records++;
  }

  addError(record: CsvRecord, reason: string): void {
    this.rejected.push({ ...rejectedRow(record, reason), bucket: "error" });
    this.records++;
  }
}

/** A record as the rejects file keeps it: its values, its lines and, when kept, its text. */
function rejectedRow(record: CsvRecord, reason: string): RejectedRow {
  const row: RejectedRow = {
    line: record.line,
    lastLine: record.nextLine - 1,
    fields: record.fields,
    reason,
  };
  if (record.raw !== undefined) row.raw = record.raw;
  return row;
}

/** How many lines a row takes (a record spans lines when a quoted field does). */
function linesOf(row: { line: number; lastLine: number }): number {
  return row.lastLine - row.line + 1;
}

function recordLines(record: CsvRecord): number {
  return record.nextLine - record.line;
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
  rowsOf: PipelineRow[][];
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
  /** The line the records start on: after the header, or at the resumed checkpoint. */
  startLine: number;
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
  /** The line after the last record added: blank lines are the gaps between records. */
  private nextLine: number;

  constructor(private readonly options: BatchPipelineOptions) {
    this.nextLine = options.startLine;
  }

  /**
   * Reads the records into batches of `batchSize` and writes them. After each submitted
   * batch `shouldStop` may end the reading there (a batch boundary); either way every
   * batch in flight commits before this returns. Throws the first failed write. The
   * records' source returns where it ended (csv-rows.ts), for the blank lines after the
   * last record.
   */
  async readAll(
    records: AsyncIterator<CsvRecord[], CsvEnd | undefined>,
    shouldStop: () => boolean = () => false,
  ): Promise<{ stopped: boolean }> {
    let batch = new RowBatch();
    try {
      let next = await records.next();
      while (!next.done) {
        for (const record of next.value) {
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
        next = await records.next();
      }
      if (batch.records > 0) await this.submit(batch);
      await this.finish();
      if (next.value) this.countEnd(next.value);
      return { stopped: false };
    } finally {
      // As `for await` does: leaving early (stopped or failed) closes the source.
      await records.return?.();
    }
  }

  /** Lets outstanding writes settle without committing (the object is failing anyway). */
  async abandon(): Promise<void> {
    await Promise.all(this.queue.map((entry) => entry.done));
  }

  /** Validates one record into the batch: a valid row, or an error with its reason. */
  private add(batch: RowBatch, record: CsvRecord): void {
    const { columns, run, rowLog } = this.options;
    batch.blankLines += record.line - this.nextLine;
    this.nextLine = record.nextLine;
    if (record.malformed) {
      batch.addError(record, record.malformed);
    } else {
      const validation = validateRecord(
        record.fields,
        record.line,
        columns.index,
        columns.width,
        this.knownDates,
      );
      if (!validation.ok) {
        batch.addError(record, validation.reason);
        rowLog.warn("Row rejected", {
          line: record.line,
          reason: validation.reason,
          detail: validation.detail,
        });
      } else {
        batch.addValid(validation.row, record);
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
    const { validRows, validRecords } = batch;
    const publicationIds: (number | undefined)[] = new Array(validRows.length);
    const unseen = new Set<string>();
    for (let index = 0; index < validRows.length; index++) {
      const row = validRows[index] as ValidRow;
      const publicationId = directory.lookup(row.publicationCode);
      publicationIds[index] = publicationId;
      if (publicationId === undefined) {
        this.skip(batch, row, validRecords[index] as CsvRecord, "unknown-publication");
      } else if (!resolver.knows(row.creativeId)) {
        unseen.add(row.creativeId);
      }
    }
    const queriesBefore = resolver.queries;
    try {
      await resolver.prepare(unseen);
    } finally {
      this.options.run.countLookupQueries(resolver.queries - queriesBefore);
    }
    const resolved: PipelineRow[] = [];
    for (let index = 0; index < validRows.length; index++) {
      const publicationId = publicationIds[index];
      if (publicationId === undefined) continue;
      const row = validRows[index] as ValidRow;
      const record = validRecords[index] as CsvRecord;
      const resolution = resolver.get(row.creativeId, publicationId);
      if (resolution.kind === "skipped") {
        this.skip(batch, row, record, resolution.reason, resolution.detail);
        continue;
      }
      resolved.push({
        row,
        target: resolution.target,
        record,
        provenance: UNPLACED,
        key: undefined,
        sameAsThisRun: undefined,
      });
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
    const grouped = groupIntoUpdates(placed.placed as PipelineRow[]);
    const result =
      grouped.updates.length > 0
        ? await writer.write(grouped.updates)
        : { inserted: 0, updated: 0, unchanged: 0, failed: [] };
    if (result.failed.length > 0) {
      ledger.writeFailed(
        placed,
        result.failed.flatMap((failure) => grouped.rowsOf[failure.index] ?? []),
      );
    }
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

  /** The object is read to its end: the blank lines after its last record are counted. */
  private countEnd(end: CsvEnd): void {
    const { lines } = this.options.run.tally;
    lines.blank += end.nextLine - this.nextLine;
    lines.read = end.nextLine - 1;
  }

  private skip(
    batch: RowBatch,
    row: ValidRow,
    record: CsvRecord,
    reason: string,
    detail?: string,
  ): void {
    batch.rejected.push({ ...rejectedRow(record, reason), bucket: "skip" });
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
        if (item.bucket === "skip") {
          tally.skip(item.reason);
          tally.lines.skipped += linesOf(item);
        } else {
          tally.error(item.reason);
          tally.lines.errors += linesOf(item);
        }
        rejected.push(item);
      }
      const failedUpdates = new Set(result.failed.map((failure) => failure.index));
      tally.synced += outcome.placed.unplaced.length;
      for (const row of outcome.placed.unplaced) {
        tally.lines.synced += recordLines((row as PipelineRow).record);
      }
      outcome.rowCounts.forEach((count, index) => {
        const rows = outcome.rowsOf[index] ?? [];
        if (!failedUpdates.has(index)) {
          tally.synced += count;
          for (const { record } of rows) tally.lines.synced += recordLines(record);
          return;
        }
        for (const { record } of rows) {
          tally.error("write-failed");
          tally.lines.errors += recordLines(record);
          rejected.push(rejectedRow(record, "write-failed"));
        }
      });
      tally.lines.blank += entry.batch.blankLines;
      tally.lines.read = entry.batch.nextLine - 1;
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
