import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { type CsvError, parse } from "csv-parse";

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
  malformed?: "unclosed-quote";
}

export interface ReadCsvOptions {
  /** Bytes before the first record of the input (a ranged GET resumes mid-file). */
  startByte?: number;
  /** Line number of the first record of the input. */
  startLine?: number;
}

const NEWLINE = 10;
const CARRIAGE_RETURN = "\r";

/**
 * Streams the records of a CSV (the header included, as the first record) from a byte
 * stream. Records are arrays (not objects) for speed; `for await` over the parser
 * keeps its backpressure, so memory stays flat whatever the file size.
 *
 * Quotes are relaxed (a stray `"` inside a field is data) because csv-parse's recovery
 * after a strict quote error silently swallows the rows that follow. The only record
 * that cannot be parsed is one whose quote never closes; it swallows the rest of the
 * file and is yielded once, `malformed`, at its start line.
 */
export async function* readCsvRecords(
  source: Readable | AsyncIterable<Uint8Array>,
  options: ReadCsvOptions = {},
): AsyncGenerator<CsvRecord> {
  const skipped: { raw: string; recordsBefore: number }[] = [];
  let bomBytes = 0;
  const parser = parse({
    raw: true,
    relax_column_count: true,
    relax_quotes: true,
    skip_records_with_error: true,
    on_skip: (_error: CsvError | undefined, raw: string | undefined) => {
      skipped.push({ raw: raw ?? "", recordsBefore: parser.info.records });
    },
  });
  const stripBom = async function* (chunks: AsyncIterable<Uint8Array>) {
    let first = options.startByte === undefined || options.startByte === 0;
    for await (const chunk of chunks) {
      if (first) {
        first = false;
        if (chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) {
          bomBytes = 3;
          yield chunk.subarray(3);
          continue;
        }
      }
      yield chunk;
    }
  };
  const piping = pipeline(source, stripBom, parser);
  // The consumer may stop early (an error downstream): the rejection is then expected.
  piping.catch(() => {});

  let line = options.startLine ?? 1;
  let byte = options.startByte ?? 0;
  let delimiterExtra = -1;
  let recordsSeen = 0;

  const advance = (raw: string) => {
    byte += bomBytes;
    bomBytes = 0;
    if (delimiterExtra < 0) {
      // With CRLF, the raw text ends at `\r`: the `\n` is consumed but not kept.
      const delimiter = parser.options.record_delimiter[0];
      delimiterExtra = delimiter && delimiter.length === 2 ? 1 : 0;
    }
    let newlines = 0;
    for (let i = raw.indexOf("\n"); i !== -1; i = raw.indexOf("\n", i + 1)) newlines++;
    const endsWithCr = raw.endsWith(CARRIAGE_RETURN);
    const extra = endsWithCr && delimiterExtra === 1 ? 1 : 0;
    const startLine = line;
    byte += Buffer.byteLength(raw) + extra;
    line += newlines + (raw.charCodeAt(raw.length - 1) === NEWLINE ? 0 : 1);
    return startLine;
  };

  const drainSkipped = function* (upTo: number): Generator<CsvRecord> {
    while (skipped.length > 0 && (skipped[0]?.recordsBefore ?? 0) <= upTo) {
      const skip = skipped.shift() as { raw: string };
      const startLine = advance(skip.raw);
      yield {
        line: startLine,
        fields: [],
        endByte: byte,
        nextLine: line,
        malformed: "unclosed-quote",
      };
    }
  };

  for await (const { record, raw } of parser as AsyncIterable<{ record: string[]; raw: string }>) {
    yield* drainSkipped(recordsSeen);
    recordsSeen++;
    const startLine = advance(raw);
    if (record.length === 1 && record[0] === "" && raw.trim() === "") continue; // blank line
    yield { line: startLine, fields: markNulls(record, raw), endByte: byte, nextLine: line };
  }
  await piping;
  yield* drainSkipped(Number.MAX_SAFE_INTEGER);
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
