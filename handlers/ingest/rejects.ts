import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { createReadStream, createWriteStream } from "node:fs";
import { rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { type Stringifier, stringify } from "csv-stringify";
import { isEarlierVersionsPart, rejectsPartKey } from "../shared/bucket-layout";
import type { Logger } from "../shared/logger";
import type { RejectsProgress } from "./continuation";
import { ObjectReplacedError } from "./errors";
import type { FileArtifacts } from "./ports";

/** The columns a rejects file adds; dropped from the input first, so re-rejected rows keep one of each. */
export const LINE_COLUMN = "line";
export const LAST_LINE_COLUMN = "last_line";
export const REASON_COLUMN = "reject_reason";
export const RAW_RECORD_COLUMN = "raw_record";
const ADDED_COLUMNS = [LINE_COLUMN, LAST_LINE_COLUMN, REASON_COLUMN, RAW_RECORD_COLUMN];

export interface RejectedRow {
  /** The first and last line of the record in the source file (a field may span lines). */
  line: number;
  lastLine: number;
  /** The row's original values (`null` = NULL); empty for an unparseable row. */
  fields: readonly (string | null)[];
  reason: string;
  /** The record's text as in the file, when its fields may not hold all of it (csv-rows.ts). */
  raw?: string;
}

/**
 * The rows that were not synced, as CSV: the original columns in their original order
 * with their original values, plus `line`, `last_line`, `reject_reason` and `raw_record`.
 * Strings are quoted and NULL is an unquoted empty field (Athena's dialect), so NULL and
 * `""` survive a round trip through `reprocess/`. Rows stream to a temporary file as they
 * come and are uploaded at the end: memory stays flat however many rows are rejected.
 * Rows with the wrong field count are padded with NULLs or cut to the header's width, so
 * `raw_record` keeps their whole text (a quote that never closed swallows the next line
 * into such a row). A row on one line with the header's width has all of its text in its
 * columns already: its `raw_record` is NULL, which keeps the file about the input's size.
 */
export class RejectsFile {
  private stringifier: Stringifier | undefined;
  private finished: Promise<void> | undefined;
  private readonly path = join(tmpdir(), `tracking-sync-rejects-${randomUUID()}.csv`);
  private readonly keep: number[];
  count = 0;

  /**
   * `continues`: an earlier invocation of the same file already wrote the header with its
   * rejected rows (continuation.ts), so this file holds rows only and appends to those.
   */
  constructor(
    private readonly header: readonly (string | null)[],
    private readonly options: { continues?: boolean } = {},
  ) {
    this.keep = header
      .map((name, position) => ({ name: (name ?? "").trim().toLowerCase(), position }))
      .filter(({ name }) => !ADDED_COLUMNS.includes(name))
      .map(({ position }) => position);
  }

  /** Appends rows (in line order); waits only when the file stream asks to. */
  async add(rows: readonly RejectedRow[]): Promise<void> {
    if (rows.length === 0) return;
    const stringifier = this.open();
    let mustDrain = false;
    for (const row of rows) {
      const record: (string | number | null)[] = this.keep.map(
        (position) => row.fields[position] ?? null,
      );
      record.push(row.line, row.lastLine, row.reason, row.raw ?? null);
      mustDrain = !stringifier.write(record) || mustDrain;
      this.count++;
    }
    if (mustDrain) await once(stringifier, "drain");
  }

  /**
   * The finished file, to upload alone or after other chunks (the caller calls `discard`
   * after); `undefined` when no row was rejected.
   */
  async close(): Promise<{ path: string; size: number } | undefined> {
    if (!this.stringifier) return undefined;
    this.stringifier.end();
    await this.finished;
    return { path: this.path, size: (await stat(this.path)).size };
  }

  /** Drops the temporary file without uploading (a failed run writes no rejects). */
  async discard(): Promise<void> {
    if (this.stringifier && !this.stringifier.writableEnded) this.stringifier.end();
    await this.finished?.catch(() => {});
    await rm(this.path, { force: true });
  }

  private open(): Stringifier {
    if (this.stringifier) return this.stringifier;
    const stringifier = stringify({ quoted_string: true, eof: true });
    if (!this.options.continues)
      stringifier.write([
        ...this.keep.map((position) => this.header[position] ?? ""),
        ...ADDED_COLUMNS,
      ]);
    this.finished = pipeline(stringifier, createWriteStream(this.path));
    this.finished.catch(() => {});
    this.stringifier = stringifier;
    return stringifier;
  }
}

/**
 * The rejects of one file, end to end, across the invocations of a continued file. Each
 * invocation collects its rows in a `RejectsFile`; a hand-over uploads them as the next
 * part; the invocation that finishes the file writes the one rejects object (the earlier
 * parts in order, then its own rows, streamed), or removes an earlier run's copy when no
 * row was rejected, and removes the parts once the report is written.
 */
export class FileRejects {
  private readonly file: RejectsFile;

  /** `earlier`: what earlier invocations of the file uploaded, under `chain`. */
  constructor(
    private readonly artifacts: FileArtifacts,
    header: readonly (string | null)[],
    private readonly earlier: RejectsProgress,
    private readonly sourceKey: string,
  ) {
    this.file = new RejectsFile(header, { continues: earlier.rows > 0 });
  }

  /** Rows rejected in this invocation. */
  get count(): number {
    return this.file.count;
  }

  add(rows: readonly RejectedRow[]): Promise<void> {
    return this.file.add(rows);
  }

  /**
   * Uploads this invocation's rows as the next part of `chain`, named `name` (unique per
   * hand-over: two copies of one invocation that stopped at different rows each keep
   * their own part); the progress to hand over.
   */
  async handOver(chain: string, name: string): Promise<RejectsProgress> {
    const progress: RejectsProgress = {
      rows: this.earlier.rows,
      parts: [...this.earlier.parts],
      names: this.earlier.parts.map((_, index) => this.partName(chain, index)),
    };
    try {
      const chunk = await this.file.close();
      if (chunk) {
        await this.artifacts.writeRejectsPart(name, {
          body: createReadStream(chunk.path),
          size: chunk.size,
        });
        progress.parts.push(chunk.size);
        progress.names?.push(name);
        progress.rows += this.file.count;
      }
      return progress;
    } finally {
      await this.file.discard();
    }
  }

  /**
   * Writes the file's one rejects object; returns its rows, or `undefined` when no row was
   * rejected (then an earlier run's rejects must not look current, and are removed).
   * `chain` names the earlier invocations' parts (none for a file read in one invocation).
   */
  async finish(chain: string | undefined): Promise<number | undefined> {
    try {
      const own = await this.file.close();
      const rows = this.earlier.rows + this.file.count;
      if (rows === 0) {
        await this.artifacts.removeRejects();
        return undefined;
      }
      const parts = chain === undefined ? [] : this.earlier.parts;
      const size = parts.reduce((sum, partSize) => sum + partSize, own?.size ?? 0);
      // A part that cannot be joined (replaced or gone) aborts the upload with its own
      // error; the body then just ends, so no stream error goes unheard inside the SDK
      // and no request waits for the rest.
      const upload = new AbortController();
      let broken: unknown;
      const abort = (error: unknown) => {
        broken = error;
        upload.abort(error);
      };
      const body =
        parts.length === 0 && own
          ? createReadStream(own.path)
          : Readable.from(this.joined(chain as string, own?.path, abort), { objectMode: false });
      try {
        await this.artifacts.writeRejects({ body, size, abortSignal: upload.signal });
      } catch (error) {
        throw broken ?? error;
      }
      if (broken !== undefined) throw broken;
      return rows;
    } finally {
      await this.file.discard();
    }
  }

  /**
   * After the report is written: removes the parts an earlier version left under
   * `rejects/`. The parts under `state/checkpoints/` stay until they expire: another line
   * of invocations of the same file (a continuation Lambda delivered twice) may still
   * join the ones both lines share, and would fail if they were gone. Best effort
   * (logged): leftovers trigger nothing, while throwing now would retry a finished file
   * whose parts may already be gone.
   */
  async removeParts(chain: string, logger: Logger): Promise<void> {
    for (const [index] of this.earlier.parts.entries()) {
      const name = this.partName(chain, index);
      if (!isEarlierVersionsPart(name)) continue;
      try {
        await this.artifacts.removeRejectsPart(name);
      } catch (error) {
        logger.warn("Could not remove a continuation leftover", {
          leftover: rejectsPartKey(this.sourceKey, name),
          error,
        });
      }
    }
  }

  /** The name of earlier part `index` (from 0): as handed over, or as earlier versions numbered it. */
  private partName(chain: string, index: number): string {
    return this.earlier.names?.[index] ?? `${chain}-${index + 1}`;
  }

  /** Drops this invocation's rows without uploading (a failed run writes no rejects). */
  discard(): Promise<void> {
    return this.file.discard();
  }

  /**
   * The earlier parts in order, then this invocation's rows. A part that cannot be read,
   * or is not the size this chain uploaded, is handed to `abort` and the bytes end there.
   */
  private async *joined(
    chain: string,
    ownPath: string | undefined,
    abort: (error: unknown) => void,
  ): AsyncGenerator<Uint8Array> {
    for (const [index, size] of this.earlier.parts.entries()) {
      const name = this.partName(chain, index);
      let part: Awaited<ReturnType<FileArtifacts["readRejectsPart"]>>;
      try {
        part = await this.artifacts.readRejectsPart(name);
      } catch (error) {
        abort(error);
        return;
      }
      // A part of another size is not the one this chain uploaded: never mix them.
      if (part.size !== size) {
        abort(
          new ObjectReplacedError(
            `Rejects part ${rejectsPartKey(this.sourceKey, name)} has ${part.size} bytes, expected ${size}`,
          ),
        );
        return;
      }
      yield* part.body;
    }
    if (ownPath) yield* createReadStream(ownPath);
  }
}
