import { redactSecrets } from "./redact";

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogContext = Record<string, unknown>;

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(message: string, fields?: LogContext): void;
  info(message: string, fields?: LogContext): void;
  warn(message: string, fields?: LogContext): void;
  error(message: string, fields?: LogContext): void;
  /** A logger whose every line also carries `context` (e.g. the object key or query id). */
  child(context: LogContext): Logger;
}

export interface LoggerOptions {
  level?: LogLevel;
  /**
   * Where lines go; defaults to stdout (one JSON object per line, as CloudWatch
   * expects), or to what `setDefaultLogWriter` chose.
   */
  write?: (line: string) => void;
}

const writeToStdout = (line: string) => {
  process.stdout.write(`${line}\n`);
};
let defaultWrite: (line: string) => void = writeToStdout;

/**
 * Where loggers created without `write` send their lines, from now on (including
 * loggers already created). Lambda keeps the default, stdout; local tools that own
 * stdout (the demo's `--json`) send handler logs elsewhere. `undefined` restores stdout.
 */
export function setDefaultLogWriter(write: ((line: string) => void) | undefined): void {
  defaultWrite = write ?? writeToStdout;
}

/**
 * Structured JSON logger: one line per call, with timestamp, level, message, the
 * bound context and the call's fields. Errors are flattened to name/message and
 * every line passes through `redactSecrets`, so a connection string never lands in a log.
 */
export function createLogger(context: LogContext = {}, options: LoggerOptions = {}): Logger {
  const threshold = LEVELS[options.level ?? levelFromEnv()];
  const write = options.write ?? ((line: string) => defaultWrite(line));

  const log = (level: LogLevel, message: string, fields?: LogContext) => {
    if (LEVELS[level] < threshold) return;
    const line = JSON.stringify(
      { timestamp: new Date().toISOString(), level, message, ...context, ...fields },
      jsonReplacer,
    );
    write(redactSecrets(line));
  };

  return {
    debug: (message, fields) => log("debug", message, fields),
    info: (message, fields) => log("info", message, fields),
    warn: (message, fields) => log("warn", message, fields),
    error: (message, fields) => log("error", message, fields),
    child: (extra) => createLogger({ ...context, ...extra }, options),
  };
}

function levelFromEnv(): LogLevel {
  const raw = process.env.LOG_LEVEL?.toLowerCase();
  return raw && raw in LEVELS ? (raw as LogLevel) : "info";
}

function jsonReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    const context = (value as { context?: unknown }).context;
    return { name: value.name, message: value.message, ...(context ? { context } : {}) };
  }
  if (typeof value === "bigint") return value.toString();
  return value;
}
