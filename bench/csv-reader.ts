/**
 * CPU per row of the ingest's CSV reader (`readCsvRecords`, handlers/ingest/csv-rows.ts)
 * against csv-parse's bare ceiling (bench/parse-ceiling.ts), on the bench's own file.
 *
 *   npx tsx bench/csv-reader.ts [--rows 1000000] [--passes 3] [--only ceiling,reader,...]
 *
 * Generates the CSV as `npm run bench` does (bench/lib/bench-data.ts, same seed) in a temp
 * dir, then runs each variant in its own child process, so that one variant's JIT state
 * and garbage cannot bill another, `--passes` times over the whole file, the variants
 * taking turns pass by pass (this machine is shared: a load change then hits every
 * variant alike). It prints the median and the least CPU (user + system,
 * process.cpuUsage) per data row, the median's ratio to the ceiling's,
 * and a digest of what the variant read (records, NULLs, sum of start lines, last end
 * byte and next line): readers that keep every behaviour must print the same digest.
 *
 * The variants besides `ceiling` and `reader` are the designs tried on the way (see
 * VARIANTS); each streams the file in the same 256 KiB chunks as the ceiling.
 */
import { createReadStream, realpathSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type CsvError, type Info, type Options, Parser, parse } from "csv-parse";
import {
  type CsvRecord,
  markNulls,
  readCsvChunks,
  readCsvRecords,
} from "../handlers/ingest/csv-rows";
import { buildUniverse, DEFAULT_SEED, writeBenchCsv } from "./lib/bench-data";
import {
  benchScript,
  nextMessage,
  registerTempDir,
  request,
  spawnTs,
  stopChild,
} from "./lib/processes";
import { median } from "./lib/ratios";
import { parseOnce } from "./parse-ceiling";

const CHUNK_BYTES = 256 * 1024;

/** What a variant read; every variant that keeps the reader's behaviour gives the same. */
interface Digest {
  records: number;
  nulls: number;
  lineSum: number;
  lastEndByte: number;
  lastNextLine: number;
}

interface Pass {
  cpuSeconds: number;
  digest: Digest;
}

interface Variant {
  /** One line for the table: what the variant does differently. */
  about: string;
  run(path: string): Promise<Pass>;
}

function fileStream(path: string): Readable {
  return createReadStream(path, { highWaterMark: CHUNK_BYTES });
}

function cpuSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
}

/** The consumer every reader variant shares: touches what ingest-object.ts reads. */
async function consumeRecords(records: AsyncIterable<CsvRecord>): Promise<Digest> {
  const digest: Digest = { records: 0, nulls: 0, lineSum: 0, lastEndByte: 0, lastNextLine: 0 };
  for await (const record of records) tally(digest, record);
  return digest;
}

function tally(digest: Digest, record: CsvRecord): void {
  digest.records++;
  digest.lineSum += record.line;
  for (const field of record.fields) if (field === null) digest.nulls++;
  digest.lastEndByte = record.endByte;
  digest.lastNextLine = record.nextLine;
}

async function timeRecords(records: () => AsyncIterable<CsvRecord>): Promise<Pass> {
  const start = process.cpuUsage();
  const digest = await consumeRecords(records());
  return { cpuSeconds: cpuSince(start), digest };
}

/**
 * The reader as it was up to commit 41d8066: a csv-parse stream with `raw: true`, byte
 * offsets and line numbers from each record's raw text, NULLs from the raw text. Kept
 * here, frozen, as the "before" of the measurements.
 */
async function* readWithRawText(source: Readable): AsyncGenerator<CsvRecord> {
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
    let first = true;
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
  piping.catch(() => {});
  let line = 1;
  let byte = 0;
  let delimiterExtra = -1;
  let recordsSeen = 0;
  const advance = (raw: string) => {
    byte += bomBytes;
    bomBytes = 0;
    if (delimiterExtra < 0) {
      const delimiter = parser.options.record_delimiter[0];
      delimiterExtra = delimiter && delimiter.length === 2 ? 1 : 0;
    }
    let newlines = 0;
    for (let i = raw.indexOf("\n"); i !== -1; i = raw.indexOf("\n", i + 1)) newlines++;
    const extra = raw.endsWith("\r") && delimiterExtra === 1 ? 1 : 0;
    const startLine = line;
    byte += Buffer.byteLength(raw) + extra;
    line += newlines + (raw.charCodeAt(raw.length - 1) === 10 ? 0 : 1);
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
    if (record.length === 1 && record[0] === "" && raw.trim() === "") continue;
    yield { line: startLine, fields: markNulls(record, raw), endByte: byte, nextLine: line };
  }
  await piping;
  yield* drainSkipped(Number.MAX_SAFE_INTEGER);
}

/**
 * Lower bounds of the csv-parse stream designs that drop `raw`: the parser with the
 * option alone and a consumer that reads only what the option gives. None of them yet
 * tells NULL from "" or counts lines, so a complete reader on them costs more.
 */
async function timeStreamOption(
  path: string,
  options: Options,
  read: (item: unknown) => number,
): Promise<Pass> {
  const start = process.cpuUsage();
  const digest: Digest = { records: 0, nulls: 0, lineSum: 0, lastEndByte: 0, lastNextLine: 0 };
  for await (const item of fileStream(path).pipe(parse(options))) {
    digest.records++;
    digest.lastEndByte = read(item);
  }
  return { cpuSeconds: cpuSince(start), digest };
}

/**
 * The floor for any reader built on csv-parse: its synchronous core (Parser#api, as
 * csv-rows.ts drives it) over the file's chunks, with a push that only counts.
 */
async function timeParserCore(path: string): Promise<Pass> {
  const start = process.cpuUsage();
  const digest: Digest = { records: 0, nulls: 0, lineSum: 0, lastEndByte: 0, lastNextLine: 0 };
  const core = (
    new Parser({ relax_column_count: true, relax_quotes: true }) as unknown as {
      api: {
        parse(chunk: Buffer | undefined, end: boolean, push: () => void, close: () => void): void;
      };
    }
  ).api;
  const push = () => {
    digest.records++;
  };
  const close = () => {};
  for await (const chunk of fileStream(path)) core.parse(chunk as Buffer, false, push, close);
  core.parse(undefined, true, push, close);
  return { cpuSeconds: cpuSince(start), digest };
}

const VARIANTS: Record<string, Variant> = {
  ceiling: {
    about: "csv-parse stream, records as arrays, nothing else (bench/parse-ceiling.ts)",
    async run(path) {
      const pass = await parseOnce(path);
      const digest = {
        records: pass.records,
        nulls: 0,
        lineSum: 0,
        lastEndByte: 0,
        lastNextLine: 0,
      };
      return { cpuSeconds: pass.cpuSeconds, digest };
    },
  },
  "core-bound": {
    about: "floor: csv-parse's core driven per chunk, a push that only counts",
    run: timeParserCore,
  },
  "raw-stream": {
    about: "before: csv-parse stream with raw: true, offsets/lines/NULLs from the raw text",
    run: (path) => timeRecords(() => readWithRawText(fileStream(path))),
  },
  "info-stream-bound": {
    about: "lower bound: csv-parse stream with info: true, reading info.bytes only",
    run: (path) =>
      timeStreamOption(path, { info: true }, (item) => (item as { info: Info }).info.bytes),
  },
  "cast-stream-bound": {
    about: "lower bound: csv-parse stream, cast function marking unquoted empty fields",
    run: (path) =>
      timeStreamOption(
        path,
        { cast: (value, context) => (value === "" && !context.quoting ? null : value) },
        () => 0,
      ),
  },
  reader: {
    about: "readCsvRecords as it is now, one record per iteration",
    run: (path) => timeRecords(() => readCsvRecords(fileStream(path))),
  },
  "reader-delegated": {
    about: "readCsvRecords through one more async generator (yield*), as ingest-object.ts reads it",
    run: (path) =>
      timeRecords(async function* () {
        yield* readCsvRecords(fileStream(path));
      }),
  },
  batches: {
    about: "readCsvChunks: the same records, one array per chunk of input",
    async run(path) {
      const start = process.cpuUsage();
      const digest: Digest = { records: 0, nulls: 0, lineSum: 0, lastEndByte: 0, lastNextLine: 0 };
      for await (const batch of readCsvChunks(fileStream(path))) {
        for (const record of batch) tally(digest, record);
      }
      return { cpuSeconds: cpuSince(start), digest };
    },
  },
};

/** A child runs one variant, one pass per request, until the parent disconnects. */
function serveChild(name: string, path: string): void {
  const variant = VARIANTS[name];
  if (!variant) throw new Error(`unknown variant ${name}`);
  process.on("message", async (message: { type: string }) => {
    if (message.type !== "pass") return;
    try {
      process.send?.({ type: "pass", pass: await variant.run(path) });
    } catch (error) {
      process.send?.({ type: "pass", error: String(error) });
    }
  });
  process.send?.({ type: "ready" });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rows: { type: "string", default: "1000000" },
      passes: { type: "string", default: "3" },
      only: { type: "string" },
    },
  });
  const rows = Number(values.rows);
  const passes = Number(values.passes);
  if (!Number.isInteger(rows) || rows < 1 || !Number.isInteger(passes) || passes < 1) {
    throw new Error("--rows and --passes take positive integers");
  }
  const names = values.only ? values.only.split(",") : Object.keys(VARIANTS);
  for (const name of names) if (!VARIANTS[name]) throw new Error(`unknown variant ${name}`);

  const dir = await mkdtemp(join(tmpdir(), "tracking-sync-csv-reader-"));
  registerTempDir(dir);
  const path = join(dir, "bench.csv");
  const file = await writeBenchCsv(path, buildUniverse(), rows, DEFAULT_SEED);
  process.stdout.write(
    `${rows.toLocaleString("en-US")} rows, ${(file.bytes / 1e6).toFixed(1)} MB; each variant in ` +
      `its own process, passes taken in turns (so a load change hits every variant alike)\n\n`,
  );

  const children = names.map((name) =>
    spawnTs(benchScript("csv-reader.ts"), { args: ["--child", name, path] }),
  );
  await Promise.all(children.map((child) => nextMessage(child, "ready")));
  const results: Pass[][] = names.map(() => []);
  for (let round = 0; round < passes; round++) {
    for (const [index, child] of children.entries()) {
      const { pass } = await request<{ pass: Pass }>(child, { type: "pass" });
      results[index]?.push(pass);
    }
  }
  await Promise.all(children.map((child) => stopChild(child)));

  const perRow = (cpuSeconds: number) => (cpuSeconds / rows) * 1e6;
  const ceilingIndex = names.indexOf("ceiling");
  const ceiling =
    ceilingIndex === -1
      ? undefined
      : median((results[ceilingIndex] ?? []).map((p) => p.cpuSeconds));
  for (const [index, name] of names.entries()) {
    const own = results[index] ?? [];
    const cpu = own.map((pass) => pass.cpuSeconds);
    const ratio = ceiling === undefined ? "" : `${(median(cpu) / ceiling).toFixed(2)} x`;
    process.stdout.write(
      `${name.padEnd(18)} median ${perRow(median(cpu)).toFixed(2).padStart(5)} µs/row ` +
        `${ratio.padStart(7)}  min ${perRow(Math.min(...cpu)).toFixed(2)}  ` +
        `(passes ${cpu.map((c) => perRow(c).toFixed(2)).join(" ")})\n` +
        `${"".padEnd(18)} ${VARIANTS[name]?.about}\n` +
        `${"".padEnd(18)} read ${JSON.stringify(own[0]?.digest)}\n`,
    );
  }
}

function isEntryModule(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryModule()) {
  const [flag, name, path] = process.argv.slice(2);
  if (flag === "--child" && name && path) serveChild(name, path);
  else await main();
}
