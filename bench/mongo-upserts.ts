/**
 * Upsert throughput of the embedded MongoDB server through the real driver, by the
 * ingest's unique compound key {orderId, itemPath, dateStart, source}, in unordered
 * bulkWrite batches of 1,000. The server runs in a child process so client and server
 * CPU are separate. Measured at 10k and at 1M stored documents; printed, never asserted.
 *
 *   npm run bench:mongo                 # 10k and 1M
 *   npm run bench:mongo -- --max 100000 # a quicker run
 */
import { type ChildProcess, spawn } from "node:child_process";
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
}

function parseMax(argv: readonly string[]): number {
  const position = argv.indexOf("--max");
  if (position < 0) return 1_000_000;
  const value = Number(argv[position + 1]);
  if (!Number.isInteger(value) || value < WINDOW * 2) {
    throw new Error(`--max must be an integer >= ${WINDOW * 2}`);
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
): Promise<number> {
  const started = process.hrtime.bigint();
  for (let start = from; start < to; start += BATCH_SIZE) {
    const operations: AnyBulkWriteOperation[] = [];
    for (let i = start; i < Math.min(start + BATCH_SIZE, to); i++) {
      operations.push(upsert(i, orderIds, round));
    }
    await entries.bulkWrite(operations, { ordered: false });
  }
  return Number(process.hrtime.bigint() - started) / 1e9;
}

function printTable(measurements: readonly Measurement[]): void {
  const rows = measurements.map((m) => [
    m.label,
    m.documents.toLocaleString("en-US"),
    m.ops.toLocaleString("en-US"),
    Math.round(m.ops / m.seconds).toLocaleString("en-US"),
    ((m.seconds / m.ops) * 1e6).toFixed(1),
  ]);
  const header = ["measured window", "docs stored", "upserts", "upserts/s", "µs/upsert"];
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
    const entries = client.db("bench").collection("performance_entries");
    await entries.createIndex(
      { orderId: 1, itemPath: 1, dateStart: 1, source: 1 },
      { unique: true, name: "upsert_key" },
    );

    const smallInsert = await runUpserts(entries, 0, WINDOW, orderIds, 0);
    measurements.push({
      label: "inserting 0 -> 10k",
      documents: WINDOW,
      ops: WINDOW,
      seconds: smallInsert,
    });
    const smallUpdate = await runUpserts(entries, 0, WINDOW, orderIds, 1);
    measurements.push({
      label: "updating at 10k",
      documents: WINDOW,
      ops: WINDOW,
      seconds: smallUpdate,
    });

    let stored = WINDOW;
    while (stored < max - WINDOW) {
      const next = Math.min(stored + 100_000, max - WINDOW);
      await runUpserts(entries, stored, next, orderIds, 0);
      stored = next;
      process.stderr.write(`\rfilled ${stored.toLocaleString("en-US")} documents`);
    }
    process.stderr.write("\n");
    const bigInsert = await runUpserts(entries, max - WINDOW, max, orderIds, 0);
    measurements.push({
      label: `inserting last 10k -> ${max / 1000}k`,
      documents: max,
      ops: WINDOW,
      seconds: bigInsert,
    });
    const bigUpdate = await runUpserts(entries, max - WINDOW, max, orderIds, 1);
    measurements.push({
      label: `updating at ${max / 1000}k`,
      documents: max,
      ops: WINDOW,
      seconds: bigUpdate,
    });

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
