import type { Readable } from "node:stream";
import { StringDecoder } from "node:string_decoder";
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
  /**
   * The record's text as it is in the file, without its final line ending, when its fields
   * may not be what the file meant: it is `malformed`, its field count is not the header's,
   * or it spans lines (how a quote that never closes swallows the next line). So the text
   * is still there to fix by hand once its fields are cut to the header's width. For
   * `record-too-large`, only its first MAX_RECORD_BYTES bytes: the reader holds no more.
   */
  raw?: string;
}

/** Where the input ended: past its last byte, and the line after its last (blank lines too). */
export interface CsvEnd {
  endByte: number;
  nextLine: number;
}

export interface ReadCsvOptions {
  /** Bytes before the first record of the input (a ranged GET resumes mid-file). */
  startByte?: number;
  /** Line number of the first record of the input. */
  startLine?: number;
  /**
   * The header's field count, for an input that does not start with the header (a ranged
   * GET resumes mid-file); otherwise the first record's. Records of another width keep `raw`.
   */
  headerWidth?: number;
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
 * so memory stays bounded whatever follows. Records whose fields may not be what the
 * file meant keep their text (`raw`).
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
 * a caller that loops over each array saves an async iteration per record. Returns where
 * the input ended, so trailing blank lines are counted too.
 */
export async function* readCsvChunks(
  source: Readable | AsyncIterable<Uint8Array>,
  options: ReadCsvOptions = {},
): AsyncGenerator<CsvRecord[], CsvEnd> {
  const reader = new CsvRecordReader(
    options.startByte ?? 0,
    options.startLine ?? 1,
    options.headerWidth,
  );
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
  return reader.position();
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
 * count moved by more than its line ending), has an empty field (NULL or `""`, a
 * blank line), or has another width than the header. So the input chunks are kept from the start of the current record on.
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
  private oversized: { lineFeeds: number; endsInLineFeed: boolean; head: Buffer } | undefined;
  /** Records of another field count keep their text; unknown until the header is read. */
  private width: number | undefined;

  constructor(startByte: number, startLine: number, headerWidth: number | undefined) {
    this.width = headerWidth;
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
      // A copy, so the chunks it came from are not held; the rest is only counted.
      const head = Buffer.from(rest.subarray(0, MAX_RECORD_BYTES));
      this.oversized = { lineFeeds: 0, endsInLineFeed: false, head };
      this.countRest(rest);
    }
    return this.take();
  }

  /** The last records: one without a final line ending, or the unclosed quote's. */
  end(): CsvRecord[] {
    if (this.oversized) {
      const { lineFeeds, endsInLineFeed, head } = this.oversized;
      this.pushRest("record-too-large", endsInLineFeed ? lineFeeds : lineFeeds + 1, head);
      return this.take();
    }
    const error = this.core.parse(undefined, true, this.push, this.close);
    if (error) {
      // With relaxed quotes and column counts, the only error csv-parse can raise.
      if (error.code !== "CSV_QUOTE_NOT_CLOSED") throw error;
      const raw = this.text(this.byte, this.fed);
      this.pushRest("unclosed-quote", countLines(raw), raw);
    }
    return this.take();
  }

  /** After `end`: the end of the input, past any blank lines after the last record. */
  position(): CsvEnd {
    const left = this.fed > this.byte ? countLines(this.text(this.byte, this.fed)) : 0;
    return { endByte: this.fed, nextLine: this.line + left };
  }

  /** The rest of the input as one unparseable record of `lines` lines, starting at its text. */
  private pushRest(malformed: CsvRecord["malformed"], lines: number, head: Buffer): void {
    const nextLine = this.line + lines;
    this.records.push({
      line: this.line,
      fields: [],
      endByte: this.fed,
      nextLine,
      malformed,
      raw: rawText(head),
    });
    this.byte = this.fed;
    this.line = nextLine;
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
    let text: string | undefined;
    if (fields.includes("")) {
      text = (raw ?? this.text(start, endByte)).toString("utf8");
      if (fields.length === 1 && text.trim() === "") return; // blank line
      markNulls(fields, text);
    }
    this.width ??= fields.length;
    if (raw === undefined && fields.length === this.width) {
      this.records.push({ line, fields, endByte, nextLine });
      return;
    }
    // Rare: a record on several lines, or of another width than the header's.
    const kept = withoutLineEnding(text ?? (raw ?? this.text(start, endByte)).toString("utf8"));
    this.records.push({ line, fields, endByte, nextLine, raw: kept });
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

/** The text of a record's bytes; a character cut short at their end is left out. */
function rawText(bytes: Buffer): string {
  return withoutLineEnding(new StringDecoder("utf8").write(bytes));
}

/** A record's text without its final `\n` or `\r\n` (a field's own line breaks stay). */
function withoutLineEnding(text: string): string {
  if (!text.endsWith("\n")) return text;
  return text.slice(0, text.endsWith("\r\n") ? -2 : -1);
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
