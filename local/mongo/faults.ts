import type { Document } from "mongodb";
import { codeNameOf } from "./errors.js";

export interface FailNextSpec {
  /** How many matching commands fail (default 1). */
  count?: number;
  /** Only this command fails; without it any command except the handshake does. */
  command?: string;
  code: number;
  codeName?: string;
  errmsg?: string;
  errorLabels?: string[];
}

export interface MongoFaults {
  failNext(spec: FailNextSpec): void;
  /** Destroys every open client socket now. */
  dropConnections(): void;
  /** While on, new connections are closed as soon as they are accepted. */
  refuseConnections(on: boolean): void;
  /** Extra delay before replies: to every command, or only to `command`. */
  setLatency(ms: number, command?: string): void;
  reset(): void;
}

/** Commands the driver sends on its own (handshake, monitoring, cleanup). */
const DRIVER_HOUSEKEEPING = new Set([
  "hello",
  "isMaster",
  "ismaster",
  "endSessions",
  "killCursors",
]);

/** The state behind {@link MongoFaults}, consulted by the connection loop. */
export class FaultState {
  private failures: Array<Required<Pick<FailNextSpec, "count" | "code">> & FailNextSpec> = [];
  private readonly commandLatency = new Map<string, number>();
  private globalLatency: number;
  refusing = false;

  constructor(private readonly initialLatencyMs: number) {
    this.globalLatency = initialLatencyMs;
  }

  failNext(spec: FailNextSpec): void {
    const count = spec.count ?? 1;
    if (!Number.isInteger(count) || count < 1) {
      throw new RangeError(`failNext count must be a positive integer, got ${count}`);
    }
    this.failures.push({ ...spec, count });
  }

  /** The error reply for this command if an injected failure applies, consuming it. */
  takeFailure(commandName: string): Document | undefined {
    const position = this.failures.findIndex((spec) =>
      spec.command === undefined
        ? !DRIVER_HOUSEKEEPING.has(commandName)
        : spec.command === commandName,
    );
    const spec = this.failures[position];
    if (!spec) return undefined;
    spec.count--;
    if (spec.count === 0) this.failures.splice(position, 1);
    return {
      ok: 0,
      errmsg: spec.errmsg ?? `Failing command ${commandName} via fault injection`,
      code: spec.code,
      codeName: spec.codeName ?? codeNameOf(spec.code),
      ...(spec.errorLabels ? { errorLabels: spec.errorLabels } : {}),
    };
  }

  setLatency(ms: number, command?: string): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`latency must be >= 0, got ${ms}`);
    if (command === undefined) this.globalLatency = ms;
    else this.commandLatency.set(command, ms);
  }

  latencyFor(commandName: string): number {
    return this.globalLatency + (this.commandLatency.get(commandName) ?? 0);
  }

  reset(): void {
    this.failures = [];
    this.commandLatency.clear();
    this.globalLatency = this.initialLatencyMs;
    this.refusing = false;
  }
}
