import { type ChildProcess, spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * Everything the bench starts (child processes, temp dirs) is registered here and torn
 * down on exit, on an uncaught error and on Ctrl-C, so no server or GB-sized file
 * outlives a run.
 */
const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();
const cleanups = new Set<() => void>();
let installed = false;

export function cleanUpNow(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
  children.clear();
  for (const cleanup of cleanups) {
    try {
      cleanup();
    } catch {
      // Best effort: the process is going away.
    }
  }
  cleanups.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

function installHandlers(): void {
  if (installed) return;
  installed = true;
  process.once("exit", cleanUpNow);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => {
      process.stderr.write(`\n${signal}: stopping children and removing temp files\n`);
      cleanUpNow();
      process.exit(130);
    });
  }
}

export function registerTempDir(dir: string): void {
  installHandlers();
  tempDirs.add(dir);
}

/** A synchronous cleanup run at exit (e.g. closing a server socket). */
export function registerCleanup(cleanup: () => void): () => void {
  installHandlers();
  cleanups.add(cleanup);
  return () => cleanups.delete(cleanup);
}

export const TSX_IMPORT = ["--import", "tsx"];

/** Path of a bench script next to this folder (`bench/<name>`). */
export function benchScript(name: string): string {
  return fileURLToPath(new URL(`../${name}`, import.meta.url));
}

export interface SpawnOptions {
  args?: string[];
  nodeOptions?: string[];
  env?: NodeJS.ProcessEnv;
  /** stdout destination: "inherit", "ignore", "pipe" or an open file descriptor. */
  stdout?: "inherit" | "ignore" | "pipe" | number;
}

/** Runs a TypeScript file in a fresh Node process (via tsx) with an IPC channel. */
export function spawnTs(file: string, options: SpawnOptions = {}): ChildProcess {
  return spawnNode(file, {
    ...options,
    nodeOptions: [...(options.nodeOptions ?? []), ...TSX_IMPORT],
  });
}

/** Runs a JavaScript file in a fresh Node process with an IPC channel; tracked for cleanup. */
export function spawnNode(file: string, options: SpawnOptions = {}): ChildProcess {
  installHandlers();
  const child = spawn(
    process.execPath,
    [...(options.nodeOptions ?? []), file, ...(options.args ?? [])],
    {
      stdio: ["ignore", options.stdout ?? "inherit", "inherit", "ipc"],
      env: options.env ?? process.env,
    },
  );
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

/** Sends one request over IPC and waits for the reply of the same type. */
export function request<T>(child: ChildProcess, message: { type: string }): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onMessage = (reply: { type: string; error?: string }) => {
      if (reply.type !== message.type) return;
      cleanup();
      if (reply.error !== undefined) reject(new Error(reply.error));
      else resolve(reply as T);
    };
    const onExit = (code: number | null, signal: string | null) => {
      cleanup();
      reject(
        new Error(`child exited (code ${code}, signal ${signal}) before answering ${message.type}`),
      );
    };
    const cleanup = () => {
      child.off("message", onMessage);
      child.off("exit", onExit);
    };
    child.on("message", onMessage);
    child.once("exit", onExit);
    child.send(message);
  });
}

/** Waits for the first IPC message of `type` (e.g. "ready", "result"). */
export function nextMessage<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onMessage = (message: { type: string; error?: string }) => {
      if (message.type !== type && message.type !== "error") return;
      cleanup();
      if (message.type === "error") reject(new Error(message.error ?? "child failed"));
      else resolve(message as T);
    };
    const onExit = (code: number | null, signal: string | null) => {
      cleanup();
      reject(new Error(`child exited (code ${code}, signal ${signal}) before sending ${type}`));
    };
    const cleanup = () => {
      child.off("message", onMessage);
      child.off("exit", onExit);
    };
    child.on("message", onMessage);
    child.once("exit", onExit);
  });
}

/** Ends a child politely, then firmly; resolves once it has exited. */
export async function stopChild(child: ChildProcess, graceMs = 3_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}
