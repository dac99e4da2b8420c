/**
 * A file too big for one Lambda invocation, run to the end across invocations:
 *
 *   npm run bench:continuation -- [--rows 10000000] [--budget-s 60] [--margin-s 10] [--order query|shuffled]
 *
 * Generates a seeded Athena-dialect CSV (bench/lib/bench-data.ts) into the S3 stand-in,
 * starts the embedded MongoDB in a child process and seeds the lookup data, then runs the
 * real ingest handler, bundled, in a warm worker process with the function's heap
 * (bench/continuation-worker.ts), with a simulated Lambda deadline per invocation
 * (`--budget-s` of work before the `--margin-s` CONTINUATION_MARGIN_MS). The handler's
 * self-invoke goes through the real Lambda client to a local endpoint that only queues
 * the payload (Lambda answers 202 for an `Event` invocation); each queued payload is fed
 * back into the worker, as Lambda would, until an invocation finishes the file.
 * Prints invocations, rows, total time, the worker's peak RSS and the final report's
 * counts, and checks them against the counts the generator designed.
 */
import { closeSync, createReadStream, openSync } from "node:fs";
import { mkdtemp, stat } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  CreateBucketCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { MongoClient } from "mongodb";
import type { ContinuationEvent } from "../handlers/ingest/continuation";
import type { ObjectReport } from "../handlers/ingest/report";
import { CONTAINER_HEAP_FLAGS, INGEST_V8_FLAGS } from "../infra/ingest-memory";
import { startCloudWatchServer } from "../local/cloudwatch-server";
import { createObjectCreatedEvent } from "../local/s3-events";
import { startS3Server } from "../local/s3-server";
import { seedMongo } from "../local/seed";
import type { InvokeReply, InvokeRequest } from "./continuation-worker";
import { buildUniverse, DEFAULT_SEED, parseRowOrder, writeBenchCsv } from "./lib/bench-data";
import { bundle } from "./lib/bundle";
import { startMongoChild } from "./lib/mongo-child";
import {
  benchScript,
  cleanUpNow,
  nextMessage,
  registerCleanup,
  registerTempDir,
  request,
  spawnNode,
} from "./lib/processes";

const BUCKET = "bench-continuation";
const KEY = "reprocess/bench-continuation.csv";
const DB_NAME = "bench_continuation";
const FUNCTION_NAME = "tracking-sync-ingest";
/** The heap the ingest function gets (infra/ingest-memory.ts), as `npm run bench` uses. */
const WORKER_HEAP_FLAGS = [...CONTAINER_HEAP_FLAGS, ...INGEST_V8_FLAGS];

const { values } = parseArgs({
  options: {
    rows: { type: "string", default: "10000000" },
    "budget-s": { type: "string", default: "60" },
    "margin-s": { type: "string", default: "10" },
    order: { type: "string", default: "query" },
  },
});
const order = parseRowOrder(values.order);
const rows = Number(values.rows);
const budgetMs = Number(values["budget-s"]) * 1000;
const marginMs = Number(values["margin-s"]) * 1000;
const progress = (message: string) => process.stderr.write(`[continuation] ${message}\n`);
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;

try {
  const dir = await mkdtemp(join(tmpdir(), "tracking-sync-continuation-"));
  registerTempDir(dir);

  progress(
    `generating ${rows.toLocaleString("en-US")} rows (seed ${DEFAULT_SEED}, ${order} order)`,
  );
  const universe = buildUniverse({ order });
  const csvPath = join(dir, "input.csv");
  const designed = await writeBenchCsv(csvPath, universe, rows, DEFAULT_SEED);
  const { size } = await stat(csvPath);

  const s3Server = await startS3Server({ dir: join(dir, "s3") });
  const cloudwatch = await startCloudWatchServer();
  // The self-invoke endpoint: queues the payload and answers as Lambda does for `Event`.
  const queued: ContinuationEvent[] = [];
  const lambdaEndpoint = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      queued.push(JSON.parse(Buffer.concat(chunks).toString("utf-8")));
      res.writeHead(202, { "content-type": "application/json" }).end();
    });
  });
  await new Promise<void>((resolve) => lambdaEndpoint.listen(0, "127.0.0.1", resolve));
  registerCleanup(() => {
    void s3Server.stop();
    void cloudwatch.stop();
    lambdaEndpoint.close();
  });
  const credentials = { accessKeyId: "bench", secretAccessKey: "bench" };
  const s3 = new S3Client({
    endpoint: s3Server.endpoint,
    forcePathStyle: true,
    region: "us-east-1",
    credentials,
  });
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  progress(`uploading ${mb(size)} to the S3 stand-in`);
  const put = await s3.send(
    new PutObjectCommand({
      Bucket: BUCKET,
      Key: KEY,
      Body: createReadStream(csvPath),
      ContentLength: size,
      ContentType: "text/csv",
    }),
  );

  progress("starting MongoDB in a child process and seeding lookup data");
  // Ten million rows leave about nine million entries in the stand-in's memory.
  const mongo = await startMongoChild({ maxOldSpaceMb: 16_384 });
  registerCleanup(() => mongo.process.kill("SIGKILL"));
  const client = new MongoClient(mongo.uri);
  const db = client.db(DB_NAME);
  await seedMongo(db, universe.fixtures);
  // The lookup indexes a Hub database has (as bench.ts seeds them).
  await db.collection("tracking_scripts").createIndex({ creativeId: 1, publicationId: 1 });
  await db
    .collection("publication_insertion_orders")
    .createIndex({ campaignId: 1, publicationId: 1 });
  await client.close();

  // The ingest runs as Lambda runs it: one esbuild bundle under plain node, with the
  // function's heap (infra/ingest-memory.ts), in a process that stays warm across
  // invocations. Nothing from the caller's shell may point it at real AWS or a database.
  const workerEnv: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(workerEnv)) {
    if (name.startsWith("AWS_") || name.startsWith("MONGODB_")) delete workerEnv[name];
  }
  Object.assign(workerEnv, {
    MONGODB_URI: mongo.uri,
    MONGODB_DB_NAME: DB_NAME,
    RESULTS_BUCKET: BUCKET,
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
    AWS_ENDPOINT_URL_S3: s3Server.endpoint,
    S3_FORCE_PATH_STYLE: "true",
    AWS_ENDPOINT_URL_CLOUDWATCH: cloudwatch.endpoint,
    AWS_ENDPOINT_URL_LAMBDA: `http://127.0.0.1:${(lambdaEndpoint.address() as AddressInfo).port}`,
    AWS_LAMBDA_FUNCTION_NAME: FUNCTION_NAME,
    CONTINUATION_MARGIN_MS: String(marginMs),
    METRICS_NAMESPACE: "Bench/TrackingSync",
  });
  const workerBundle = join(dir, "continuation-worker.mjs");
  await bundle(benchScript("continuation-worker.ts"), workerBundle, {
    target: "node20",
    minify: false,
  });
  const logPath = join(dir, "handler.log");
  const logFd = openSync(logPath, "w");
  const worker = spawnNode(workerBundle, {
    nodeOptions: [
      // The AWS SDK warns about Node 20 on stderr; it is noise here.
      "--no-warnings",
      "--enable-source-maps",
      // Only so the worker can report the live heap between invocations.
      "--expose-gc",
      ...WORKER_HEAP_FLAGS,
    ],
    env: workerEnv,
    stdout: logFd,
  });
  await nextMessage(worker, "ready");

  const timeoutMs = budgetMs + marginMs;
  progress(
    `ingesting: ${budgetMs / 1000} s of work per invocation (timeout ${timeoutMs / 1000} s, margin ${marginMs / 1000} s), ` +
      `worker heap ${WORKER_HEAP_FLAGS.join(" ")}`,
  );
  const started = performance.now();
  const invocations: InvokeReply[] = [];
  let event: unknown = createObjectCreatedEvent({
    bucket: BUCKET,
    key: KEY,
    size,
    eTag: (put.ETag ?? "").replaceAll('"', ""),
  });
  for (;;) {
    const invoke: InvokeRequest = { type: "invoke", event, functionName: FUNCTION_NAME, timeoutMs };
    const reply = await request<InvokeReply>(worker, invoke);
    if (reply.error !== undefined) {
      throw new Error(`invocation ${invocations.length + 1} threw: ${reply.error}`);
    }
    invocations.push(reply);
    const next = queued.shift();
    const done = next?.trackingSyncContinuation.checkpoint.rows ?? rows;
    progress(
      `invocation ${invocations.length}: ${reply.seconds.toFixed(1)} s, ${reply.cpuSeconds.toFixed(1)} CPU-s, ` +
        `${done.toLocaleString("en-US")} rows committed, RSS ${mb(reply.rssBytes)} (peak ${mb(reply.maxRssBytes)}), ` +
        `live heap ${mb(reply.heapUsedBytes)}, array buffers ${mb(reply.arrayBuffersBytes)}`,
    );
    if (!next) break;
    event = next;
  }
  const totalSeconds = (performance.now() - started) / 1000;
  const peakRss = Math.max(...invocations.map((invocation) => invocation.maxRssBytes));
  const invocationSeconds = invocations.map((invocation) => invocation.seconds);

  const reportBody = await s3.send(
    new GetObjectCommand({ Bucket: BUCKET, Key: `reports/${KEY}.json` }),
  );
  const report = JSON.parse(
    (await reportBody.Body?.transformToString("utf-8")) ?? "{}",
  ) as ObjectReport;
  const expectedSkipped =
    designed.designed["unknown-publication"] + designed.designed["order-not-found"];
  const checks = {
    "every row counted once": report.stats.rowsFromAthena === rows,
    "synced as designed": report.stats.synced === designed.designed.synced,
    "skipped as designed": report.stats.skipped === expectedSkipped,
    "errors as designed": report.stats.errors === designed.designed.error,
    "one report, invocations recorded": report.invocations === invocationSeconds.length,
  };
  const figures = {
    rows,
    bytes: size,
    invocations: invocationSeconds.length,
    budgetSecondsPerInvocation: budgetMs / 1000,
    marginSeconds: marginMs / 1000,
    totalSeconds: Number(totalSeconds.toFixed(1)),
    rowsPerSecond: Math.round(rows / totalSeconds),
    longestInvocationSeconds: Number(Math.max(...invocationSeconds).toFixed(1)),
    ingestCpuSeconds: Number(
      invocations.reduce((sum, invocation) => sum + invocation.cpuSeconds, 0).toFixed(1),
    ),
    peakRssMb: Math.round(peakRss / 1024 / 1024),
    rssAfterEachInvocationMb: invocations.map((invocation) =>
      Math.round(invocation.rssBytes / 1024 / 1024),
    ),
    liveHeapAfterEachInvocationMb: invocations.map((invocation) =>
      Math.round(invocation.heapUsedBytes / 1024 / 1024),
    ),
    workerHeapFlags: WORKER_HEAP_FLAGS,
    report: {
      success: report.success,
      invocations: report.invocations,
      stats: report.stats,
      inserted: report.inserted,
      updated: report.updated,
      unchanged: report.unchanged,
      skippedByReason: report.skippedByReason,
      errorsByReason: report.errorsByReason,
      rejectsRows: report.rejects?.rows ?? 0,
      writeBatches: report.writeBatches,
    },
    checks,
  };
  process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
  process.stdout.write(
    `\n${rows.toLocaleString("en-US")} rows in ${invocationSeconds.length} invocations, ${totalSeconds.toFixed(1)} s, peak RSS ${mb(peakRss)} (the ingest worker alone, with the function's heap)\n`,
  );
  worker.kill("SIGKILL");
  closeSync(logFd);
  await mongo.stop();
  if (Object.values(checks).some((ok) => !ok)) process.exitCode = 1;
} finally {
  cleanUpNow();
}
// Open sockets of the stand-ins would otherwise keep this process alive.
process.exit();
