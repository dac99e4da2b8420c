import type { ChildProcess } from "node:child_process";
import { benchScript, nextMessage, request, spawnTs, stopChild } from "./processes";

/** Commands the driver sends by itself (handshake, heartbeats): not the ingest's work. */
export const HOUSEKEEPING_COMMANDS = new Set(["hello", "isMaster", "ismaster"]);

export interface CommandCounts {
  /** Commands executed, by name, since the last reset. */
  counts: Record<string, number>;
  /** Statements inside `update` commands (documents upserted or updated). */
  updateStatements: number;
  /** Documents inside `insert` commands. */
  insertedDocuments: number;
  /** Bytes the clients sent the server (every message, heartbeats included). */
  requestBytes: number;
  /** CPU seconds the server process spent. */
  cpuSeconds: number;
}

export interface MongoChild {
  uri: string;
  latencyMs: number;
  commandCounts(): Promise<CommandCounts>;
  resetCommandCounts(): Promise<void>;
  stop(): Promise<void>;
  process: ChildProcess;
}

/**
 * The embedded MongoDB server in its own process (so the client's CPU is measured apart
 * from the server's), with reply latency injected for every command, and a command count.
 * `maxOldSpaceMb` leaves the server room for a million stored entries.
 */
export async function startMongoChild(
  options: { latencyMs?: number; maxOldSpaceMb?: number } = {},
): Promise<MongoChild> {
  const latencyMs = options.latencyMs ?? 0;
  const child = spawnTs(benchScript("lib/mongo-child-main.ts"), {
    args: ["--latency-ms", String(latencyMs)],
    nodeOptions: [`--max-old-space-size=${options.maxOldSpaceMb ?? 4096}`],
    stdout: "ignore",
  });
  const { uri } = await nextMessage<{ uri: string }>(child, "ready");
  return {
    uri,
    latencyMs,
    process: child,
    commandCounts: () => request<CommandCounts>(child, { type: "counts" }),
    resetCommandCounts: async () => {
      await request(child, { type: "reset-counts" });
    },
    stop: () => stopChild(child),
  };
}

/** Commands that are the client's own work: everything but the handshake and heartbeats. */
export function workCommands(counts: Record<string, number>): number {
  let total = 0;
  for (const [name, count] of Object.entries(counts)) {
    if (!HOUSEKEEPING_COMMANDS.has(name)) total += count;
  }
  return total;
}
