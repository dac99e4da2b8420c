/**
 * Child-process entry for `npm run bench:continuation`: one warm ingest container. It
 * imports the real handler once and runs it for every event the parent sends over IPC,
 * as a warm Lambda container runs one invocation after another, so its RSS is the
 * function's alone (the S3 stand-in runs in the parent, MongoDB in another child) and
 * anything an invocation leaves behind shows up in the next one's memory.
 *
 *   parent → {type: "invoke", event, timeoutMs}
 *   worker → {type: "invoke", seconds, cpuSeconds, rssBytes, maxRssBytes, error?}
 *
 * Configuration comes from the environment exactly as in Lambda. The handler's JSON logs
 * go to stdout, which the parent points at a file.
 */
import type { Context } from "aws-lambda";
import { createLambdaContext } from "../local/lambda-runtime";

export interface InvokeRequest {
  type: "invoke";
  event: unknown;
  functionName: string;
  timeoutMs: number;
}

export interface InvokeReply {
  type: "invoke";
  seconds: number;
  /** user + system CPU of this process during the invocation. */
  cpuSeconds: number;
  /** RSS when the invocation returned. */
  rssBytes: number;
  /**
   * What the invocation left alive: V8 heap in use after a full collection (the worker
   * runs with --expose-gc; the collection runs after RSS is read), and ArrayBuffer bytes.
   */
  heapUsedBytes: number;
  arrayBuffersBytes: number;
  /** Peak RSS of the process so far (all invocations). */
  maxRssBytes: number;
  error?: string;
}

const { handler } = (await import("../handlers/ingest-results")) as {
  handler: (event: unknown, context: Context) => Promise<unknown>;
};

process.on("message", (message: InvokeRequest) => {
  if (message.type !== "invoke") return;
  void invoke(message).then((reply) => process.send?.(reply));
});
process.send?.({ type: "ready" });

async function invoke(request: InvokeRequest): Promise<InvokeReply> {
  const context = createLambdaContext({
    functionName: request.functionName,
    timeoutMs: request.timeoutMs,
  });
  const cpu = process.cpuUsage();
  const started = performance.now();
  let error: string | undefined;
  try {
    await handler(request.event, context);
  } catch (caught) {
    error = (caught as Error).message;
  }
  const used = process.cpuUsage(cpu);
  const rssBytes = process.memoryUsage.rss();
  (globalThis as { gc?: () => void }).gc?.();
  const memory = process.memoryUsage();
  return {
    type: "invoke",
    seconds: (performance.now() - started) / 1000,
    cpuSeconds: (used.user + used.system) / 1e6,
    rssBytes,
    heapUsedBytes: memory.heapUsed,
    arrayBuffersBytes: memory.arrayBuffers,
    // resourceUsage reports maxRSS in kilobytes.
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    ...(error !== undefined ? { error } : {}),
  };
}
