import type { DateRange } from "../shared/sync-request";

/**
 * The object's physical lines, by where each went: the header's, a synced, skipped or
 * error record's (a record may span lines: a line break inside quotes, or a quote that
 * never closed swallowing the lines after it), or blank. Lines count as `wc -l` counts
 * them, plus a last line without a line ending. `read` is how far the object was read: to
 * the committed checkpoint, and once it is read to its end, all of it. The other counts
 * sum to `read`: a line lost or counted twice shows as a difference.
 */
export interface LineCounts {
  read: number;
  header: number;
  synced: number;
  skipped: number;
  errors: number;
  blank: number;
}

/** Running counts for one object. Every data row lands in exactly one bucket. */
export class Tally {
  synced = 0;
  skipped = 0;
  errors = 0;
  inserted = 0;
  updated = 0;
  unchanged = 0;
  /** Row identities whose contribution left another entry (a re-mapping). */
  moved = 0;
  /** Automated entries deleted because every contribution left them. */
  deleted = 0;
  /** Reopens of the source's body after it broke mid-file (every invocation's). */
  streamResumes = 0;
  readonly skippedByReason: Record<string, number> = {};
  readonly errorsByReason: Record<string, number> = {};
  readonly warnings: Record<string, number> = {};
  readonly fieldChanges: Record<string, number> = {};
  readonly lines: LineCounts = { read: 0, header: 0, synced: 0, skipped: 0, errors: 0, blank: 0 };
  private minDate: string | undefined;
  private maxDate: string | undefined;

  get rows(): number {
    return this.synced + this.skipped + this.errors;
  }

  skip(reason: string, count = 1): void {
    this.skipped += count;
    this.skippedByReason[reason] = (this.skippedByReason[reason] ?? 0) + count;
  }

  error(reason: string, count = 1): void {
    this.errors += count;
    this.errorsByReason[reason] = (this.errorsByReason[reason] ?? 0) + count;
  }

  /** The header took lines `line` to `nextLine - 1`; any lines before it were blank. */
  countHeader(line: number, nextLine: number): void {
    this.lines.blank += line - 1;
    this.lines.header += nextLine - line;
    this.lines.read = nextLine - 1;
  }

  /** The lines the buckets and the blank lines account for: `lines.read` when none is lost. */
  get linesAccounted(): number {
    const { header, synced, skipped, errors, blank } = this.lines;
    return header + synced + skipped + errors + blank;
  }

  warn(warning: string): void {
    this.warnings[warning] = (this.warnings[warning] ?? 0) + 1;
  }

  addFieldChanges(changes: Record<string, number> | undefined): void {
    for (const [field, count] of Object.entries(changes ?? {})) {
      this.fieldChanges[field] = (this.fieldChanges[field] ?? 0) + count;
    }
  }

  /** Widens the date range of the rows seen (valid `YYYY-MM-DD` dates compare as strings). */
  seeDate(reportDate: string): void {
    if (this.minDate === undefined || reportDate < this.minDate) this.minDate = reportDate;
    if (this.maxDate === undefined || reportDate > this.maxDate) this.maxDate = reportDate;
  }

  get dateRange(): DateRange {
    return { start: this.minDate ?? "", end: this.maxDate ?? "" };
  }

  /** Plain JSON of every count: what a continuation carries to the next invocation. */
  snapshot(): TallySnapshot {
    return {
      synced: this.synced,
      skipped: this.skipped,
      errors: this.errors,
      inserted: this.inserted,
      updated: this.updated,
      unchanged: this.unchanged,
      moved: this.moved,
      deleted: this.deleted,
      streamResumes: this.streamResumes,
      skippedByReason: { ...this.skippedByReason },
      errorsByReason: { ...this.errorsByReason },
      warnings: { ...this.warnings },
      fieldChanges: { ...this.fieldChanges },
      lines: { ...this.lines },
      ...(this.minDate !== undefined ? { minDate: this.minDate } : {}),
      ...(this.maxDate !== undefined ? { maxDate: this.maxDate } : {}),
    };
  }

  /** The tally a previous invocation handed over, to keep counting where it stopped. */
  static restore(snapshot: TallySnapshot): Tally {
    const tally = new Tally();
    tally.synced = snapshot.synced;
    tally.skipped = snapshot.skipped;
    tally.errors = snapshot.errors;
    tally.inserted = snapshot.inserted;
    tally.updated = snapshot.updated;
    tally.unchanged = snapshot.unchanged;
    tally.moved = snapshot.moved ?? 0;
    tally.deleted = snapshot.deleted ?? 0;
    // Absent from the state of an invocation that ran before resumes were counted.
    tally.streamResumes = snapshot.streamResumes ?? 0;
    Object.assign(tally.skippedByReason, snapshot.skippedByReason);
    Object.assign(tally.errorsByReason, snapshot.errorsByReason);
    Object.assign(tally.warnings, snapshot.warnings);
    Object.assign(tally.fieldChanges, snapshot.fieldChanges);
    Object.assign(tally.lines, snapshot.lines);
    tally.minDate = snapshot.minDate;
    tally.maxDate = snapshot.maxDate;
    return tally;
  }
}

export interface TallySnapshot {
  synced: number;
  skipped: number;
  errors: number;
  inserted: number;
  updated: number;
  unchanged: number;
  moved?: number;
  deleted?: number;
  streamResumes?: number;
  skippedByReason: Record<string, number>;
  errorsByReason: Record<string, number>;
  warnings: Record<string, number>;
  fieldChanges: Record<string, number>;
  /** Absent from a continuation handed over before lines were counted. */
  lines?: LineCounts;
  minDate?: string;
  maxDate?: string;
}
