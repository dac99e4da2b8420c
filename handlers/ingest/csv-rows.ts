import type { Readable } from "node:stream";
import { type CsvError, type Info, Parser } from "csv-parse";

/** One CSV record as read, before any interpretation of its columns. */
export interface CsvRecord {
  /** 1-based line on which the record starts (a quoted field may span lines). */
  line: number;
  /**
   * Field values. `null` is a NULL (an unquoted empty field, as Athena writes it);
   * `""` is the empty string (a quoted empty field).
   */
  fields: (string | null)[];
  /** Byte offset just past this record and its line ending: where a ranged GET resumes. */
  endByte: number;
  /** The line on which the next record starts. */
  nextLine: number;
  /** Set when the record could not be parsed at all (its fields are then empty). */
  malformed?: "unclosed-quote" | "record-too-large";
}

export interface ReadCsvOptions {
  /** Bytes before the first record of the input (a ranged GET resumes mid-file). */
  startByte?: number;
  /** Line number of the first record of the input. */
  startLine?: number;
}

const LINE_FEED = 10;

/**
 * The longest record the reader holds (bytes). An Athena row of the nine columns is well
 * under 1 KB; a record that grows past this is almost always a quote that never closes,
 * which would otherwise hold the rest of the file in memory.
 */
export const MAX_RECORD_BYTES = 1024 * 1024;

/**
 * Streams the records of a CSV (the header included, as the first record) from a byte
 * stream. Records are arrays (not objects) for speed; the source is read only as fast
 * as records are taken, so memory stays flat whatever the file size.
 *
 * Quotes are relaxed (a stray `"` inside a field is data) because csv-parse's recovery
 * after a strict quote error silently swallows the rows that follow. The only record
 * that cannot be parsed is one whose quote never closes; it swallows the rest of the
 * file and is yielded once, `malformed`, at its start line. So is a record that grows
 * past MAX_RECORD_BYTES (`record-too-large`): from there on the reader only counts lines,
 * so memory stays bounded whatever follows.
 */
export async function* readCsvRecords(
  source: Readable | AsyncIterable<Uint8Array>,
  options: ReadCsvOptions = {},
): AsyncGenerator<CsvRecord> {
  for await (const batch of readCsvChunks(source, options)) {
    for (const record of batch) yield record;
  }
}

/**
 * The records of `readCsvRecords`, one array per chunk of input (never an empty one):
 * a caller that loops over each array saves an async iteration per record.
 */
export async function* readCsvChunks(
  source: Readable | AsyncIterable<Uint8Array>,
  options: ReadCsvOptions = {},
): AsyncGenerator<CsvRecord[]> {
  const reader = new CsvRecordReader(options.startByte ?? 0, options.startLine ?? 1);
  // From the start of the file, the first three bytes decide whether there is a BOM; they
  // may arrive in more than one chunk, so they are held until there are three.
  let head: Buffer | undefined = (options.startByte ?? 0) === 0 ? EMPTY : undefined;
  for await (const chunk of source as AsyncIterable<Uint8Array | string>) {
    let bytes = asBuffer(chunk);
    if (head !== undefined) {
      bytes = head.length === 0 ? bytes : Buffer.concat([head, bytes]);
      if (bytes.length < BOM.length) {
        head = bytes;
        continue;
      }
      head = undefined;
      bytes = withoutBom(bytes, reader);
    }
    const records = reader.write(bytes);
    if (records.length > 0) yield records;
  }
  // A file shorter than a BOM cannot start with one.
  if (head !== undefined && head.length > 0) {
    const records = reader.write(head);
    if (records.length > 0) yield records;
  }
  const records = reader.end();
  if (records.length > 0) yield records;
}

const EMPTY = Buffer.alloc(0);
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

function withoutBom(bytes: Buffer, reader: CsvRecordReader): Buffer {
  if (bytes[0] !== BOM[0] || bytes[1] !== BOM[1] || bytes[2] !== BOM[2]) return bytes;
  reader.skipBom();
  return bytes.subarray(BOM.length);
}

function asBuffer(chunk: Uint8Array | string): Buffer {
  if (typeof chunk === "string") return Buffer.from(chunk, "utf8");
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
}

/**
 * csv-parse's synchronous core: what its own stream and sync entry points drive. It
 * calls `push` with each record while `parse` runs, when `info.bytes` is the offset
 * just past that record and its line ending.
 */
interface ParserCore {
  readonly info: Info;
  parse(
    chunk: Buffer | undefined,
    end: boolean,
    push: (record: string[]) => void,
    close: () => void,
  ): CsvError | undefined;
}

function createParserCore(): ParserCore {
  const parser = new Parser({ relax_column_count: true, relax_quotes: true });
  const core = (parser as unknown as { api?: Partial<ParserCore> }).api;
  if (typeof core?.parse !== "function" || typeof core.info?.bytes !== "number") {
    throw new Error("csv-parse no longer exposes its parser core (Parser#api)");
  }
  return core as ParserCore;
}

/**
 * Parses chunk after chunk without csv-parse's stream (whose per-record buffering costs
 * about as much again as the parsing) and without its `raw` option (which copies every
 * byte once more): a record's end offset is `info.bytes` when it is pushed. Its text is
 * looked at only when the record needs it: a record that spans lines (csv-parse's line
 * count moved by more than its line ending), or has an empty field (NULL or `""`, a
 * blank line). So the input chunks are kept from the start of the current record on.
 */
class CsvRecordReader {
  private readonly core = createParserCore();
  private readonly push = (fields: string[]) => this.onRecord(fields);
  private readonly close = () => {};
  private records: CsvRecord[] = [];
  /** Bytes of the input that the parser never sees: the resume offset and a stripped BOM. */
  private base: number;
  /** Input offset just past the last record: where the next one starts. */
  private byte: number;
  private line: number;
  /** `info.lines` when the last record was pushed. */
  private linesBefore = 0;
  /** The input from `keptFrom` on, as fed to the parser. */
  private kept: Buffer[] = [];
  private keptFrom: number;
  /** Input offset just past the last byte fed. */
  private fed: number;
  /**
   * Set once the current record has grown past MAX_RECORD_BYTES: the rest of the input
   * is that record, and only its line feeds (and whether it ends in one) are counted.
   */
  private oversized: { lineFeeds: number; endsInLineFeed: boolean } | undefined;

  constructor(startByte: number, startLine: number) {
    this.base = startByte;
    this.byte = startByte;
    this.keptFrom = startByte;
    this.fed = startByte;
    this.line = startLine;
  }

  skipBom(): void {
    this.base += 3;
    this.byte += 3;
    this.keptFrom += 3;
    this.fed += 3;
  }

  /** The records that end in `chunk`. */
  write(chunk: Buffer): CsvRecord[] {
    if (this.oversized) {
      this.fed += chunk.length;
      this.countRest(chunk);
      return [];
    }
    this.kept.push(chunk);
    this.fed += chunk.length;
    const error = this.core.parse(chunk, false, this.push, this.close);
    if (error) throw error;
    this.release();
    if (this.fed - this.byte > MAX_RECORD_BYTES) {
      // The parser is not fed again: its half-built record is dropped with it.
      const rest = this.text(this.byte, this.fed);
      this.kept = [];
      this.keptFrom = this.fed;
      this.oversized = { lineFeeds: 0, endsInLineFeed: false };
      this.countRest(rest);
    }
    return this.take();
  }

  /** The last records: one without a final line ending, or the unclosed quote's. */
  end(): CsvRecord[] {
    if (this.oversized) {
      const { lineFeeds, endsInLineFeed } = this.oversized;
      this.records.push({
        line: this.line,
        fields: [],
        endByte: this.fed,
        nextLine: this.line + (endsInLineFeed ? lineFeeds : lineFeeds + 1),
        malformed: "record-too-large",
      });
      return this.take();
    }
    const error = this.core.parse(undefined, true, this.push, this.close);
    if (error) {
      // With relaxed quotes and column counts, the only error csv-parse can raise.
      if (error.code !== "CSV_QUOTE_NOT_CLOSED") throw error;
      const raw = this.text(this.byte, this.fed);
      this.records.push({
        line: this.line,
        fields: [],
        endByte: this.fed,
        nextLine: this.line + countLines(raw),
        malformed: "unclosed-quote",
      });
    }
    return this.take();
  }

  private onRecord(fields: (string | null)[]): void {
    const info = this.core.info;
    const line = this.line;
    const start = this.byte;
    const endByte = this.base + info.bytes;
    let raw: Buffer | undefined;
    let nextLine = line + 1;
    // csv-parse counts a CR or LF inside the record (twice for CRLF) as a line: recount `\n`s.
    if (info.lines - this.linesBefore !== 1) {
      raw = this.text(start, endByte);
      nextLine = line + countLines(raw);
    }
    this.linesBefore = info.lines;
    this.byte = endByte;
    this.line = nextLine;
    if (fields.includes("")) {
      const text = (raw ?? this.text(start, endByte)).toString("utf8");
      if (fields.length === 1 && text.trim() === "") return; // blank line
      markNulls(fields, text);
    }
    this.records.push({ line, fields, endByte, nextLine });
  }

  private take(): CsvRecord[] {
    const records = this.records;
    if (records.length > 0) this.records = [];
    return records;
  }

  private countRest(bytes: Buffer): void {
    const oversized = this.oversized;
    if (!oversized || bytes.length === 0) return;
    for (let i = bytes.indexOf(LINE_FEED); i !== -1; i = bytes.indexOf(LINE_FEED, i + 1)) {
      oversized.lineFeeds++;
    }
    oversized.endsInLineFeed = bytes[bytes.length - 1] === LINE_FEED;
  }

  /** Drops the chunks wholly before the current record. */
  private release(): void {
    for (let first = this.kept[0]; first !== undefined; first = this.kept[0]) {
      if (this.keptFrom + first.length > this.byte) return;
      this.keptFrom += first.length;
      this.kept.shift();
    }
  }

  /** The input bytes from `start` to `end` (both at or after `keptFrom`). */
  private text(start: number, end: number): Buffer {
    const parts: Buffer[] = [];
    let offset = this.keptFrom;
    for (const chunk of this.kept) {
      const chunkEnd = offset + chunk.length;
      if (chunkEnd > start && offset < end) {
        parts.push(chunk.subarray(Math.max(start - offset, 0), Math.min(end, chunkEnd) - offset));
      }
      if (chunkEnd >= end) break;
      offset = chunkEnd;
    }
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
  }
}

/**
 * How many lines a record's bytes (its line ending included) take: one per `\n`, plus
 * one when they do not end in `\n` (a lone CR ending, or the end of the file).
 */
function countLines(raw: Buffer): number {
  let lines = 0;
  for (let i = raw.indexOf(LINE_FEED); i !== -1; i = raw.indexOf(LINE_FEED, i + 1)) lines++;
  return raw[raw.length - 1] === LINE_FEED ? lines : lines + 1;
}

/**
 * Replaces unquoted empty fields (NULL) with `null`, keeping quoted empty fields
 * (`""`) as the empty string. Only records with an empty field pay for the scan.
 */
export function markNulls(record: (string | null)[], raw: string): (string | null)[] {
  if (!record.includes("")) return record;
  const quoted = quotedFieldFlags(raw);
  for (let i = 0; i < record.length; i++) {
    if (record[i] === "" && quoted[i] !== true) record[i] = null;
  }
  return record;
}

/** For each field of one raw record, whether it was written inside quotes. */
export function quotedFieldFlags(raw: string): boolean[] {
  const flags: boolean[] = [];
  const length = raw.length;
  let i = 0;
  for (;;) {
    const quoted = raw[i] === '"';
    flags.push(quoted);
    if (quoted) {
      i++;
      while (i < length) {
        if (raw[i] === '"') {
          if (raw[i + 1] === '"') {
            i += 2;
            continue;
          }
          i++;
          break;
        }
        i++;
      }
    }
    while (i < length && raw[i] !== "," && raw[i] !== "\r" && raw[i] !== "\n") i++;
    if (i < length && raw[i] === ",") {
      i++;
      continue;
    }
    return flags;
  }
}
