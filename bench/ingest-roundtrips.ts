/**
 * Measures the ingest handler end to end on one machine: MongoDB commands per 10,000
 * rows, rows/s and peak RSS, for a generated Athena-dialect CSV (every field quoted)
 * with ~500 distinct creatives over the 14 built-in publications.
 *
 *   npm run bench:ingest -- [--rows 200000] [--batch-size 1000] [--runs 2]
 *   node --expose-gc --import tsx bench/ingest-roundtrips.ts ...   (adds the live heap)
 *
 * The embedded MongoDB runs in a child process (its CPU and memory are not counted);
 * the S3 stand-in and a counting TCP proxy in front of MongoDB run in this process, so
 * the CPU and peak RSS printed are the ingest's plus those two (small) helpers. The
 * command count is what the handler's driver actually sends. Numbers are printed, not
 * asserted.
 */

import { spawn } from "node:child_process";
import { once } from "node:events";
import { connect, createServer, type Server, type Socket } from "node:net";
import { Readable } from "node:stream";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import type { Context, S3Event } from "aws-lambda";
import { parse } from "csv-parse";
import { MongoClient } from "mongodb";
import { createObjectCreatedEvent } from "../local/s3-events";
import { startS3Server } from "../local/s3-server";

const args = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const index = args.indexOf(`--${name}`);
  return index >= 0 ? Number(args[index + 1]) : fallback;
};
const ROWS = option("rows", 200_000);
const BATCH_SIZE = option("batch-size", 1000);
/** 1: only the first ingest (inserts); 2 (default): also the same file again (updates). */
const RUNS = option("runs", 2);
const CAMPAIGNS = 100;
const CREATIVES_PER_CAMPAIGN = 5;
const PUBLICATIONS: [string, number][] = [
  ["chireader", 1035],
  ["suntimes", 1038],
  ["tribune", 1043],
  ["wbez", 1047],
  ["wvon", 1048],
  ["wrll", 1054],
  ["chirp", 1056],
  ["e3radio", 1058],
  ["ssweekly", 1064],
  ["triibe", 1065],
  ["ndigo", 1067],
  ["hydepark", 1037],
  ["evanstonrt", 1044],
  ["streetwise", 1055],
];
const BUCKET = "bench-results";

/** Counts OP_MSG commands by name between the driver and the server. */
async function startCountingProxy(
  target: number,
): Promise<{ port: number; counts: Map<string, number>; server: Server }> {
  const counts = new Map<string, number>();
  const server = createServer((client: Socket) => {
    const upstream = connect(target, "127.0.0.1");
    let pending: Buffer = Buffer.alloc(0);
    client.on("data", (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (pending.length >= 16) {
        const length = pending.readInt32LE(0);
        if (pending.length < length) break;
        const opCode = pending.readInt32LE(12);
        // OP_MSG: flags (4) then section kind 0 (1) then the command document; its first key is the command.
        if (opCode === 2013 && pending[20] === 0) {
          const nameStart = 21 + 4 + 1;
          const nameEnd = pending.indexOf(0, nameStart);
          const name = pending.toString("utf8", nameStart, nameEnd);
          counts.set(name, (counts.get(name) ?? 0) + 1);
        }
        pending = pending.subarray(length);
      }
      upstream.write(chunk);
    });
    upstream.on("data", (chunk) => client.write(chunk));
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", close);
    upstream.on("error", close);
    client.on("close", close);
    upstream.on("close", close);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("proxy has no port");
  return { port: address.port, counts, server };
}

function creativeId(campaign: number, creative: number): string {
  return `cr_camp${campaign}_${creative}x${creative % 2 === 0 ? "300x250" : "728x90"}`;
}

/** Athena's dialect and order (report_date, publication_code, creative_id); ~2% unknown codes. */
function generateCsv(): string {
  const lines = [
    '"report_date","creative_id","publication_code","channel","ad_size","impressions","clicks","viewable_impressions","unique_ips"',
  ];
  const creatives: string[] = [];
  for (let c = 0; c < CAMPAIGNS; c++) {
    for (let k = 0; k < CREATIVES_PER_CAMPAIGN; k++) creatives.push(creativeId(c, k));
  }
  creatives.sort();
  const codes = [...PUBLICATIONS.map(([code]) => code), "unknownpub"].sort();
  let n = 0;
  for (let day = 0; n < ROWS; day++) {
    const date = new Date(Date.UTC(2025, 10, 1) + day * 86_400_000).toISOString().slice(0, 10);
    for (const code of codes) {
      // Each publication runs a third of the creatives on a given day (most rows resolvable).
      for (const [index, creative] of creatives.entries()) {
        if (n >= ROWS) break;
        if (code === "unknownpub" && index % 10 !== 0) continue;
        const impressions = 500 + ((n * 7919) % 5000);
        const size = creative.endsWith("300x250") ? "300x250" : "728x90";
        lines.push(
          `"${date}","${creative}","${code}","website","${size}","${impressions}","${impressions % 37}","${Math.floor(impressions * 0.7)}","${Math.floor(impressions * 0.6)}"`,
        );
        n++;
      }
    }
  }
  return `${lines.join("\n")}\n`;
}

async function seed(uri: string, dbName: string): Promise<void> {
  const client = await new MongoClient(uri).connect();
  const db = client.db(dbName);
  const orders = [];
  const scripts = [];
  for (let c = 0; c < CAMPAIGNS; c++) {
    for (const [, publicationId] of PUBLICATIONS) {
      orders.push({
        campaignId: `camp${c}`,
        publicationId,
        publicationName: `Publication ${publicationId}`,
        selectedInventory: {
          publications: [
            {
              publicationId,
              inventoryItems: [{ itemPath: `web.${c}`, itemName: `Web ${c}`, channel: "website" }],
            },
          ],
        },
      });
      // Creatives 0-2 have tracking scripts (strategy 1); 3-4 resolve by campaign id (strategy 2).
      for (let k = 0; k < 3; k++) {
        scripts.push({
          creativeId: creativeId(c, k),
          publicationId,
          campaignId: `camp${c}`,
          channel: "display",
          creative: { name: `Creative ${c}/${k}` },
        });
      }
    }
  }
  await db.collection("publication_insertion_orders").insertMany(orders);
  await db.collection("tracking_scripts").insertMany(scripts);
  await client.close();
}

/** The embedded MongoDB in its own process (`npm run mongo`), so its work is not ours. */
async function startMongoProcess(): Promise<{ uri: string; port: number; stop: () => void }> {
  const child = spawn(process.execPath, ["--import", "tsx", "local/mongo-server.ts"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const [firstChunk] = (await once(child.stdout, "data")) as [Buffer];
  const uri = firstChunk.toString("utf8").split("\n")[0]?.trim() ?? "";
  const port = Number(new URL(uri).port);
  return { uri, port, stop: () => child.kill("SIGTERM") };
}

async function main(): Promise<void> {
  const mongo = await startMongoProcess();
  const proxy = await startCountingProxy(mongo.port);
  const s3Server = await startS3Server();
  const dbName = "bench_ingest";
  const proxiedUri = `mongodb://127.0.0.1:${proxy.port}/?directConnection=true`;
  await seed(mongo.uri, dbName);

  const s3 = new S3Client({
    endpoint: s3Server.endpoint,
    forcePathStyle: true,
    region: "us-east-1",
    credentials: { accessKeyId: "bench", secretAccessKey: "bench" },
  });
  const { CreateBucketCommand } = await import("@aws-sdk/client-s3");
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  // Only the bytes are kept (off the V8 heap), so the heap figures are the ingest's own.
  const bytes = Buffer.from(generateCsv());
  const key = "reprocess/bench.csv";
  const put = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: bytes }));

  Object.assign(process.env, {
    AWS_ENDPOINT_URL_S3: s3Server.endpoint,
    S3_FORCE_PATH_STYLE: "true",
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "bench",
    AWS_SECRET_ACCESS_KEY: "bench",
    MONGODB_URI: proxiedUri,
    MONGODB_DB_NAME: dbName,
    BATCH_SIZE: String(BATCH_SIZE),
    LOG_LEVEL: "error",
    // No CloudWatch here: the publish fails fast and is only logged (at warn, filtered out).
    AWS_ENDPOINT_URL_CLOUDWATCH: "http://127.0.0.1:9",
  });
  const { handler } = await import("../handlers/ingest-results");
  const event: S3Event = createObjectCreatedEvent({
    bucket: BUCKET,
    key,
    size: bytes.length,
    eTag: put.ETag ?? "",
  });
  const context = { awsRequestId: "bench" } as Context;

  // The parser's own cost on the same bytes (arrays, no casting): the yardstick for issue 6.
  const parseCpu = process.cpuUsage();
  let parsed = 0;
  const chunks = Array.from({ length: Math.ceil(bytes.length / 65_536) }, (_, i) =>
    bytes.subarray(i * 65_536, (i + 1) * 65_536),
  );
  for await (const _record of Readable.from(chunks).pipe(parse())) parsed++;
  const parseMicros = process.cpuUsage(parseCpu);
  const parsePerRow = (parseMicros.user + parseMicros.system) / (parsed - 1);
  console.log(`csv-parse alone: ${parsePerRow.toFixed(1)} µs CPU/row`);

  const run = async (label: string) => {
    proxy.counts.clear();
    let peakRss = 0;
    let peakHeap = 0;
    let peakLive = 0;
    // With `node --expose-gc`, a forced GC every second shows the live heap (not garbage).
    const collect = (globalThis as { gc?: () => void }).gc;
    let lastGc = performance.now();
    const sampler = setInterval(() => {
      if (collect && performance.now() - lastGc > 1_000) {
        collect();
        lastGc = performance.now();
        peakLive = Math.max(peakLive, process.memoryUsage().heapUsed);
      }
      const memory = process.memoryUsage();
      peakRss = Math.max(peakRss, memory.rss);
      peakHeap = Math.max(peakHeap, memory.heapUsed);
    }, 20);
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    const response = await handler(event, context);
    const seconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    clearInterval(sampler);
    const commands = [...proxy.counts.entries()].filter(
      ([name]) => !["hello", "ismaster", "isMaster", "endSessions"].includes(name),
    );
    const total = commands.reduce((sum, [, count]) => sum + count, 0);
    const rows = response.stats.rowsFromAthena;
    console.log(`\n${label}`);
    console.log(
      `  sampled during the run: RSS up to ${(peakRss / 1e6).toFixed(0)} MB, V8 heap used up to ${(peakHeap / 1e6).toFixed(0)} MB${collect ? `, live heap after GC up to ${(peakLive / 1e6).toFixed(0)} MB` : ""}`,
    );
    console.log(
      `  rows: ${rows} (synced ${response.stats.synced}, skipped ${response.stats.skipped}, errors ${response.stats.errors})`,
    );
    console.log(
      `  MongoDB commands: ${total} (${commands.map(([name, count]) => `${name} ${count}`).join(", ")})`,
    );
    console.log(`  commands per 10,000 rows: ${((total / rows) * 10_000).toFixed(2)}`);
    console.log(`  wall: ${seconds.toFixed(2)} s, ${Math.round(rows / seconds)} rows/s`);
    console.log(
      `  CPU of this process (ingest + S3 stand-in + proxy): ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s, ${((cpu.user + cpu.system) / rows).toFixed(1)} µs/row = ${((cpu.user + cpu.system) / rows / parsePerRow).toFixed(1)} × csv-parse alone`,
    );
  };

  console.log(
    `CSV: ${ROWS} rows, ${(bytes.length / 1e6).toFixed(1)} MB, ${CAMPAIGNS * CREATIVES_PER_CAMPAIGN} creatives, batch size ${BATCH_SIZE}`,
  );
  await run("first ingest (inserts)");
  if (RUNS > 1) await run("same file again (all unchanged)");
  console.log(
    `\npeak RSS of this process (ingest + S3 stand-in + proxy + the generated CSV bytes): ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`,
  );

  proxy.server.close();
  await s3Server.stop();
  mongo.stop();
  process.exit(0);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
