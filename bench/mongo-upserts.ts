/**
 * Upsert throughput of the embedded MongoDB server through the real driver, by the
 * ingest's unique compound key {orderId, itemPath, dateStart, source}, in unordered
 * bulkWrite batches of 1,000. The server runs in a child process so client and server
 * CPU are separate. Measured at 10k and at 1M stored documents (median of three 10k
 * windows each, wall clock and CPU time per process); printed, never asserted.
 *
 * `--shape` picks the statement:
 * - `set` (default): `$set` of four numbers plus `$setOnInsert` of two fields;
 * - `setOnInsert`: the ingest's insert-first upsert, `$setOnInsert` of a whole entry
 *   (1–3 contributions, metrics, strings, dates); on a stored key it is a no-op;
 * - `pipeline`: the ingest's merge, `buildUpdatePipeline` of the same entries; on a
 *   stored key each round changes the numbers, so every match modifies.
 *
 *   npm run bench:mongo                                      # 10k and 1M
 *   npm run bench:mongo -- --max 100000 --shape pipeline     # a quicker run, one shape
 *   npm run bench:mongo -- --max 100000 --cpu-prof-dir prof  # also profile the server
 *   npx tsx bench/profile-summary.ts prof/<file>.cpuprofile /dev/null 30
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { type AnyBulkWriteOperation, MongoClient, ObjectId } from "mongodb";
import { buildUpdatePipeline, insertedFields } from "../handlers/ingest/entry-update";
import { entryFor, keyFor, ordersFor } from "./lib/entry-shapes";

const BATCH_SIZE = 1_000;
const WINDOW = 10_000;

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

type Shape = "set" | "setOnInsert" | "pipeline";
const SHAPES: readonly Shape[] = ["set", "setOnInsert", "pipeline"];

interface Options {
  max: number;
  shape: Shape;
  /** Where the server child writes its V8 CPU profile (on exit), if anywhere. */
  cpuProfDir?: string;
}

function parseOptions(argv: readonly string[]): Options {
  const flagValue = (flag: string) => {
    const position = argv.indexOf(flag);
    return position < 0 ? undefined : argv[position + 1];
  };
  const shape = flagValue("--shape") ?? "set";
  if (!SHAPES.includes(shape as Shape)) {
    throw new Error(`--shape must be one of ${SHAPES.join(", ")}, got '${shape}'`);
  }
  return { max: parseMax(argv), shape: shape as Shape, cpuProfDir: flagValue("--cpu-prof-dir") };
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

async function startServerChild(
  cpuProfDir: string | undefined,
): Promise<{ child: ChildProcess; uri: string }> {
  const serverPath = fileURLToPath(new URL("../local/mongo-server.ts", import.meta.url));
  const profiling = cpuProfDir === undefined ? [] : ["--cpu-prof", "--cpu-prof-dir", cpuProfDir];
  const child = spawn(
    process.execPath,
    ["--max-old-space-size=6144", ...profiling, "--import", "tsx", serverPath, "--port", "0"],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const uri = await new Promise<string>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`server exited early with code ${code}`)));
    lines.once("line", (line) => resolve(line.trim()));
  });
  return { child, uri };
}

function upsert(
  shape: Shape,
  i: number,
  orderIds: readonly ObjectId[],
  round: number,
): AnyBulkWriteOperation {
  const now = new Date();
  if (shape !== "set") {
    const entry = entryFor(i, orderIds, round);
    const update =
      shape === "pipeline"
        ? buildUpdatePipeline(entry)
        : { $setOnInsert: insertedFields(entry, now) };
    return { updateOne: { filter: entry.key, update, upsert: true } };
  }
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
  shape: Shape,
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
      operations.push(upsert(shape, i, orderIds, round));
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
  const { max, shape, cpuProfDir } = parseOptions(process.argv.slice(2));
  const orderIds = Array.from({ length: ordersFor(max) }, () => new ObjectId());
  const { child, uri } = await startServerChild(cpuProfDir);
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 5_000 });
  const measurements: Measurement[] = [];
  try {
    // Warm both JITs on a throwaway collection so the 10k figure is not a cold start.
    const warmup = client.db("bench").collection("warmup");
    await warmup.createIndex(
      { orderId: 1, itemPath: 1, dateStart: 1, source: 1 },
      { unique: true },
    );
    await runUpserts(shape, warmup, 0, 2 * WINDOW, orderIds, 0);
    await runUpserts(shape, warmup, 0, 2 * WINDOW, orderIds, 1);
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
        runUpserts(shape, collection, from, from + WINDOW, orderIds, round, child.pid);

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
    // An insert-only upsert on a stored key changes nothing: it only matches.
    const onStored = shape === "setOnInsert" ? "matching" : "updating";
    await measure(
      `${onStored} at 10k`,
      WINDOW,
      [1, 2, 3].map((round) => upsertWindow(small[0] as (typeof small)[number], 0, round)),
    );
    for (const collection of small) await collection.drop();

    const entries = await createCollection("performance_entries");
    const firstTimed = max - 3 * WINDOW;
    let stored = 0;
    while (stored < firstTimed) {
      const next = Math.min(stored + 100_000, firstTimed);
      await runUpserts(shape, entries, stored, next, orderIds, 0);
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
      `${onStored} at ${max / 1000}k`,
      max,
      [1, 2, 3].map((round) => upsertWindow(entries, max - WINDOW, round)),
    );

    const count = await entries.estimatedDocumentCount();
    if (count !== max) throw new Error(`expected ${max} stored documents, found ${count}`);
    process.stdout.write(`shape: ${shape}\n`);
    printTable(measurements);
  } finally {
    await client.close();
    // The server writes its CPU profile while exiting: wait for that.
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await exited;
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
});
