import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { createReadStream, createWriteStream } from "node:fs";
import { rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { type Stringifier, stringify } from "csv-stringify";

/** The columns a rejects file adds; dropped from the input first, so re-rejected rows keep one of each. */
export const LINE_COLUMN = "line";
export const REASON_COLUMN = "reject_reason";

export interface RejectedRow {
  line: number;
  /** The row's original values (`null` = NULL); empty for an unparseable row. */
  fields: readonly (string | null)[];
  reason: string;
}

/**
 * The rows that were not synced, as CSV: the original columns in their original order
 * with their original values, plus `line` and `reject_reason`. Strings are quoted and
 * NULL is an unquoted empty field (Athena's dialect), so NULL and `""` survive a
 * round trip through `reprocess/`. Rows stream to a temporary file as they come and
 * are uploaded at the end: memory stays flat however many rows are rejected.
 * Rows with the wrong field count are padded with NULLs or cut to the header's width.
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
      .filter(({ name }) => name !== LINE_COLUMN && name !== REASON_COLUMN)
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
      record.push(row.line, row.reason);
      mustDrain = !stringifier.write(record) || mustDrain;
      this.count++;
    }
    if (mustDrain) await once(stringifier, "drain");
  }

  /** Uploads the file (when any row was rejected) and removes the temporary copy. */
  async upload(s3: S3Client, bucket: string, key: string): Promise<boolean> {
    if (!this.stringifier) return false;
    try {
      this.stringifier.end();
      await this.finished;
      const { size } = await stat(this.path);
      await s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: createReadStream(this.path),
          ContentLength: size,
          ContentType: "text/csv",
        }),
      );
      return true;
    } finally {
      await this.discard();
    }
  }

  /**
   * The finished file to upload with other chunks (the caller calls `discard` after);
   * `undefined` when no row was rejected.
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
        LINE_COLUMN,
        REASON_COLUMN,
      ]);
    this.finished = pipeline(stringifier, createWriteStream(this.path));
    this.finished.catch(() => {});
    this.stringifier = stringifier;
    return stringifier;
  }
}
