/**
 * Upsert throughput of the embedded MongoDB server through the real driver, by the
 * ingest's unique compound key {orderId, itemPath, dateStart, source}, in unordered
 * bulkWrite batches of 1,000. The server runs in a child process so client and server
 * CPU are separate. Measured at 10k and at 1M stored documents (median of three 10k
 * windows each, wall clock and CPU time per process); printed, never asserted.
 *
 *   npm run bench:mongo                 # 10k and 1M
 *   npm run bench:mongo -- --max 100000 # a quicker run
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { type AnyBulkWriteOperation, type Document, MongoClient, ObjectId } from "mongodb";

const BATCH_SIZE = 1_000;
const WINDOW = 10_000;
const ITEM_PATHS = 50;
const DAYS = 20;
const FIRST_DAY = Date.UTC(2025, 0, 1);
const DAY_MS = 86_400_000;

interface Measurement {
  label: string;
  documents: number;
  ops: number;
  seconds: number;
  /** CPU time of the server process, when the OS exposes it (Linux /proc). */
  serverCpuSeconds?: number;
  clientCpuSeconds: number;
}

/** Wall-clock figures move with whatever else runs on the machine; CPU time much less. */
interface Window {
  seconds: number;
  serverCpuSeconds?: number;
  clientCpuSeconds: number;
}

const CLOCK_TICKS_PER_SECOND = 100;

function processCpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

function parseMax(argv: readonly string[]): number {
  const position = argv.indexOf("--max");
  if (position < 0) return 1_000_000;
  const value = Number(argv[position + 1]);
  if (!Number.isInteger(value) || value < WINDOW * 4) {
    throw new Error(`--max must be an integer >= ${WINDOW * 4}`);
  }
  return value;
}

async function startServerChild(): Promise<{ child: ChildProcess; uri: string }> {
  const serverPath = fileURLToPath(new URL("../local/mongo-server.ts", import.meta.url));
  const child = spawn(
    process.execPath,
    ["--max-old-space-size=6144", "--import", "tsx", serverPath, "--port", "0"],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const uri = await new Promise<string>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`server exited early with code ${code}`)));
    lines.once("line", (line) => resolve(line.trim()));
  });
  return { child, uri };
}

/** The i-th distinct key: orders x item paths x days covers every i up to the maximum. */
function keyFor(i: number, orderIds: readonly ObjectId[]): Document {
  const day = i % DAYS;
  const item = Math.floor(i / DAYS) % ITEM_PATHS;
  const order = Math.floor(i / (DAYS * ITEM_PATHS));
  return {
    orderId: orderIds[order],
    itemPath: `pub-${item}/ad-slot`,
    dateStart: new Date(FIRST_DAY + day * DAY_MS),
    source: "automated",
  };
}

function upsert(i: number, orderIds: readonly ObjectId[], round: number): AnyBulkWriteOperation {
  const now = new Date();
  return {
    updateOne: {
      filter: keyFor(i, orderIds),
      update: {
        $set: {
          impressions: 1000 + round + (i % 97),
          clicks: i % 13,
          ctr: ((i % 13) / (1000 + (i % 97))) * 100,
          updatedAt: now,
        },
        $setOnInsert: { createdAt: now, enteredBy: "lambda-tracking-sync" },
      },
      upsert: true,
    },
  };
}

async function runUpserts(
  entries: ReturnType<ReturnType<MongoClient["db"]>["collection"]>,
  from: number,
  to: number,
  orderIds: readonly ObjectId[],
  round: number,
  serverPid?: number,
): Promise<Window> {
  const serverCpuBefore = processCpuSeconds(serverPid);
  const clientCpuBefore = process.cpuUsage();
  const started = process.hrtime.bigint();
  for (let start = from; start < to; start += BATCH_SIZE) {
    const operations: AnyBulkWriteOperation[] = [];
    for (let i = start; i < Math.min(start + BATCH_SIZE, to); i++) {
      operations.push(upsert(i, orderIds, round));
    }
    await entries.bulkWrite(operations, { ordered: false });
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const clientCpu = process.cpuUsage(clientCpuBefore);
  const serverCpuAfter = processCpuSeconds(serverPid);
  return {
    seconds,
    serverCpuSeconds:
      serverCpuBefore === undefined || serverCpuAfter === undefined
        ? undefined
        : serverCpuAfter - serverCpuBefore,
    clientCpuSeconds: (clientCpu.user + clientCpu.system) / 1e6,
  };
}

function printTable(measurements: readonly Measurement[]): void {
  const perOp = (seconds: number | undefined, ops: number) =>
    seconds === undefined ? "n/a" : ((seconds / ops) * 1e6).toFixed(1);
  const rows = measurements.map((m) => [
    m.label,
    m.documents.toLocaleString("en-US"),
    m.ops.toLocaleString("en-US"),
    Math.round(m.ops / m.seconds).toLocaleString("en-US"),
    perOp(m.seconds, m.ops),
    perOp(m.serverCpuSeconds, m.ops),
    perOp(m.clientCpuSeconds, m.ops),
  ]);
  const header = [
    "measured window",
    "docs stored",
    "upserts",
    "upserts/s",
    "wall µs/op",
    "server CPU µs/op",
    "client CPU µs/op",
  ];
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? "").length)),
  );
  const line = (cells: readonly string[]) =>
    cells.map((cell, column) => cell.padStart(widths[column] ?? 0)).join("  ");
  process.stdout.write(`${line(header)}\n${line(widths.map((w) => "-".repeat(w)))}\n`);
  for (const row of rows) process.stdout.write(`${line(row)}\n`);
}

async function main(): Promise<void> {
  const max = parseMax(process.argv.slice(2));
  const orderIds = Array.from(
    { length: Math.ceil(max / (DAYS * ITEM_PATHS)) },
    () => new ObjectId(),
  );
  const { child, uri } = await startServerChild();
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 5_000 });
  const measurements: Measurement[] = [];
  try {
    // Warm both JITs on a throwaway collection so the 10k figure is not a cold start.
    const warmup = client.db("bench").collection("warmup");
    await warmup.createIndex(
      { orderId: 1, itemPath: 1, dateStart: 1, source: 1 },
      { unique: true },
    );
    await runUpserts(warmup, 0, 2 * WINDOW, orderIds, 0);
    await runUpserts(warmup, 0, 2 * WINDOW, orderIds, 1);
    await warmup.drop();

    const createCollection = async (name: string) => {
      const collection = client.db("bench").collection(name);
      await collection.createIndex(
        { orderId: 1, itemPath: 1, dateStart: 1, source: 1 },
        { unique: true, name: "upsert_key" },
      );
      return collection;
    };
    // Each figure is the median of three 10k windows: one major GC landing in a single
    // window (or a neighbour's burst of CPU) would otherwise decide the number.
    const measure = async (
      label: string,
      documents: number,
      windows: Array<() => Promise<Window>>,
    ) => {
      const results: Window[] = [];
      for (const window of windows) results.push(await window());
      results.sort((a, b) => a.seconds - b.seconds);
      measurements.push({ label, documents, ops: WINDOW, ...(results[1] as Window) });
    };
    const upsertWindow =
      (collection: Awaited<ReturnType<typeof createCollection>>, from: number, round: number) =>
      () =>
        runUpserts(collection, from, from + WINDOW, orderIds, round, child.pid);

    const small = [
      await createCollection("small_1"),
      await createCollection("small_2"),
      await createCollection("small_3"),
    ];
    await measure(
      "inserting 0 -> 10k",
      WINDOW,
      small.map((collection) => upsertWindow(collection, 0, 0)),
    );
    await measure(
      "updating at 10k",
      WINDOW,
      [1, 2, 3].map((round) => upsertWindow(small[0] as (typeof small)[number], 0, round)),
    );
    for (const collection of small) await collection.drop();

    const entries = await createCollection("performance_entries");
    const firstTimed = max - 3 * WINDOW;
    let stored = 0;
    while (stored < firstTimed) {
      const next = Math.min(stored + 100_000, firstTimed);
      await runUpserts(entries, stored, next, orderIds, 0);
      stored = next;
      process.stderr.write(`\rfilled ${stored.toLocaleString("en-US")} documents`);
    }
    process.stderr.write("\n");
    await measure(
      `inserting last 30k -> ${max / 1000}k`,
      max,
      [0, 1, 2].map((k) => upsertWindow(entries, firstTimed + k * WINDOW, 0)),
    );
    await measure(
      `updating at ${max / 1000}k`,
      max,
      [1, 2, 3].map((round) => upsertWindow(entries, max - WINDOW, round)),
    );

    const count = await entries.estimatedDocumentCount();
    if (count !== max) throw new Error(`expected ${max} stored documents, found ${count}`);
    printTable(measurements);
  } finally {
    await client.close();
    child.kill("SIGTERM");
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
});
