/**
 * An in-process MongoDB wire-protocol server for tests, the local demo and the benchmark:
 * the real `mongodb` driver talks to it over TCP. Importing this module has no side
 * effects; run it directly (`npm run mongo`) to serve until interrupted.
 */
import { realpathSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import type { Document } from "mongodb";
import { listen } from "./listen.js";
import { commandName, MongoEngine } from "./mongo/engine.js";
import { CommandError } from "./mongo/errors.js";
import { FaultState, type MongoFaults } from "./mongo/faults.js";
import {
  buildReply,
  HEADER_SIZE,
  type IncomingCommand,
  MAX_MESSAGE_SIZE,
  parseMessage,
} from "./mongo/wire.js";

export type { FailNextSpec, MongoFaults } from "./mongo/faults.js";

export interface MongoServerOptions {
  /** TCP port; 0 (default) picks a free one. */
  port?: number;
  /** Interface to listen on (default 127.0.0.1). */
  host?: string;
  /** Delay added before every reply, in milliseconds. */
  latencyMs?: number;
}

export interface MongoServer {
  /** Connection string for MongoClient. */
  uri: string;
  port: number;
  /** Closes every client socket and the listener. */
  stop(): Promise<void>;
  faults: MongoFaults;
}

/** One client connection: reassembles messages and answers them strictly in order. */
class Connection {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    readonly id: number,
    private readonly socket: Socket,
    private readonly handle: (request: IncomingCommand, connection: Connection) => Promise<void>,
  ) {
    socket.on("data", (chunk) => this.receive(chunk));
    // A client vanishing mid-reply is normal; it must never take the process down.
    socket.on("error", () => socket.destroy());
  }

  get closed(): boolean {
    return this.socket.destroyed;
  }

  send(reply: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(reply);
  }

  destroy(): void {
    this.socket.destroy();
  }

  private receive(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (this.buffered >= 4 && !this.closed) {
      const head = this.peek(4);
      const length = head.readInt32LE(0);
      if (length < HEADER_SIZE + 1 || length > MAX_MESSAGE_SIZE) {
        this.destroy();
        return;
      }
      if (this.buffered < length) return;
      const message = this.take(length);
      let request: IncomingCommand;
      try {
        request = parseMessage(message);
      } catch {
        // Malformed bytes close this connection only.
        this.destroy();
        return;
      }
      this.queue = this.queue.then(() => this.handle(request, this)).catch(() => this.destroy());
    }
  }

  private peek(size: number): Buffer {
    if ((this.chunks[0]?.length ?? 0) < size) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] as Buffer;
  }

  private take(size: number): Buffer {
    const all = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    const message = all.subarray(0, size);
    const rest = all.subarray(size);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered -= size;
    return message;
  }
}

export async function startMongoServer(options: MongoServerOptions = {}): Promise<MongoServer> {
  const host = options.host ?? "127.0.0.1";
  const faults = new FaultState(options.latencyMs ?? 0);
  const connections = new Set<Connection>();
  const timers = new Set<NodeJS.Timeout>();
  let port = options.port ?? 0;
  let nextConnectionId = 1;
  let nextRequestId = 1;
  // IPv6 literals need brackets in host:port strings and URIs.
  const hostForUri = host.includes(":") ? `[${host}]` : host;
  const engine = new MongoEngine(() => `${hostForUri}:${port}`);

  const delay = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve();
      }, ms);
      timers.add(timer);
    });

  const handle = async (request: IncomingCommand, connection: Connection): Promise<void> => {
    const name = commandName(request.command) ?? "";
    let reply: Document;
    try {
      // A long write command yields to other connections and answers with a promise.
      reply =
        faults.takeFailure(name) ??
        (await engine.execute(request.command, { connectionId: connection.id }));
    } catch (error) {
      reply = new CommandError(1, `internal error: ${(error as Error).message}`).toReply();
    }
    const latency = faults.latencyFor(name);
    if (latency > 0) await delay(latency);
    if (request.noReply || connection.closed) return;
    try {
      connection.send(buildReply(request, reply, nextRequestId++));
    } catch (error) {
      // A reply that cannot be encoded (e.g. over 16MB) is reported, not fatal.
      const fallback = new CommandError(
        10334,
        `reply could not be encoded: ${(error as Error).message}`,
        {},
        "BSONObjectTooLarge",
      );
      connection.send(buildReply(request, fallback.toReply(), nextRequestId++));
    }
  };

  const server: Server = createServer((socket) => {
    if (faults.refusing) {
      socket.on("error", () => {});
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const connection = new Connection(nextConnectionId++, socket, handle);
    connections.add(connection);
    socket.on("close", () => connections.delete(connection));
  });
  server.on("error", () => {});

  port = await listen(server, { port, host });

  let stopping: Promise<void> | undefined;
  return {
    uri: `mongodb://${hostForUri}:${port}/?directConnection=true`,
    port,
    faults: {
      failNext: (spec) => faults.failNext(spec),
      dropConnections: () => {
        for (const connection of connections) connection.destroy();
      },
      refuseConnections: (on) => {
        faults.refusing = on;
      },
      setLatency: (ms, command) => faults.setLatency(ms, command),
      reset: () => faults.reset(),
    },
    stop: () => {
      stopping ??= new Promise<void>((resolve) => {
        for (const timer of timers) clearTimeout(timer);
        timers.clear();
        server.close(() => resolve());
        for (const connection of connections) connection.destroy();
        engine.reset();
      });
      return stopping;
    },
  };
}

function parseCommandLine(argv: readonly string[], env: NodeJS.ProcessEnv): MongoServerOptions {
  const options: MongoServerOptions = {};
  const envPort = env.MONGO_PORT;
  if (envPort !== undefined && envPort !== "")
    options.port = parsePortNumber(envPort, "MONGO_PORT");
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (flag === "--port" && value !== undefined) {
      options.port = parsePortNumber(value, "--port");
      i++;
    } else if (flag === "--latency-ms" && value !== undefined) {
      const latency = Number(value);
      if (!Number.isFinite(latency) || latency < 0) {
        throw new Error(`--latency-ms must be a non-negative number, got '${value}'`);
      }
      options.latencyMs = latency;
      i++;
    } else if (flag === "--host" && value !== undefined) {
      options.host = value;
      i++;
    } else {
      throw new Error(`unknown argument '${flag}' (use --port N, --latency-ms L, --host H)`);
    }
  }
  return options;
}

function parsePortNumber(value: string, source: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`${source} must be a port number, got '${value}'`);
  }
  return port;
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

async function main(): Promise<void> {
  const server = await startMongoServer(parseCommandLine(process.argv.slice(2), process.env));
  process.stdout.write(`${server.uri}\n`);
  process.stderr.write("embedded MongoDB server ready; Ctrl+C to stop\n");
  const shutdown = () => {
    void server.stop().then(() => process.exit(0));
  };
  process.once("SIGINT", shutdown);
  process.once("SIGTERM", shutdown);
}

if (isEntryModule()) {
  main().catch((error: unknown) => {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exit(1);
  });
}
