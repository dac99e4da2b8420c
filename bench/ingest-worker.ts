/**
 * Child-process entry: the real ingest handler, invoked once for one S3 object, in a
 * process of its own so that its CPU time and peak RSS are the ingest's alone (the S3
 * stand-in and MongoDB run in other processes). Configuration comes from the
 * environment exactly as in Lambda; the object from argv.
 *
 *   tsx bench/ingest-worker.ts <bucket> <key> <size> <eTag>
 *
 * Sends `{type: "result", ...}` over IPC (or prints it when run by hand). The handler's
 * JSON logs go to stdout, which the bench points at a file.
 */
import type { IngestResponse } from "../handlers/ingest/response";
import { createLambdaContext, INGEST_FUNCTION_NAME } from "../local/lambda-runtime";
import { createObjectCreatedEvent } from "../local/s3-events";

export interface IngestWorkerResult {
  type: "result";
  /** Time to import the handler module (tsx-transpiled here; see bundle-size for the bundle). */
  importMs: number;
  wallSeconds: number;
  /** user + system CPU of this process during the invocation only. */
  cpuSeconds: number;
  /** user + system CPU of the whole process (loader and import included). */
  processCpuSeconds: number;
  /** Peak resident set size of the process, bytes. */
  maxRssBytes: number;
  /** process.memoryUsage() when the invocation returned (heap vs buffers, for diagnosis). */
  memoryAtEnd: NodeJS.MemoryUsage;
  response?: IngestResponse;
  error?: string;
}

const [bucket, key, size, eTag] = process.argv.slice(2);
if (!bucket || !key) {
  process.stderr.write("usage: tsx bench/ingest-worker.ts <bucket> <key> <size> <eTag>\n");
  process.exit(2);
}

const importStarted = performance.now();
const { handler } = await import("../handlers/ingest-results");
const importMs = performance.now() - importStarted;

const event = createObjectCreatedEvent({
  bucket,
  key,
  size: Number(size ?? 0),
  eTag: eTag ?? "",
});
// Lambda's longest timeout: the bench measures one invocation over the whole file.
const context = createLambdaContext({ functionName: INGEST_FUNCTION_NAME, timeoutMs: 900_000 });

const cpu = process.cpuUsage();
const started = performance.now();
let response: IngestResponse | undefined;
let error: string | undefined;
try {
  response = await handler(event, context);
} catch (caught) {
  error = (caught as Error).message;
}
const wallSeconds = (performance.now() - started) / 1000;
const used = process.cpuUsage(cpu);
const usage = process.resourceUsage();
const result: IngestWorkerResult = {
  type: "result",
  importMs,
  wallSeconds,
  cpuSeconds: (used.user + used.system) / 1e6,
  processCpuSeconds: (usage.userCPUTime + usage.systemCPUTime) / 1e6,
  // resourceUsage reports maxRSS in kilobytes.
  maxRssBytes: usage.maxRSS * 1024,
  memoryAtEnd: process.memoryUsage(),
  ...(response ? { response } : {}),
  ...(error !== undefined ? { error } : {}),
};
if (process.send) {
  // The handler's MongoClient stays open (as in a warm Lambda): exit once the result is out.
  process.send(result, () => process.exit(0));
} else {
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}
