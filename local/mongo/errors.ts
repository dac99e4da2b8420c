import type { Document } from "mongodb";

/** MongoDB's code names for the error codes this server can return. */
const CODE_NAMES: Readonly<Record<number, string>> = {
  1: "InternalError",
  2: "BadValue",
  6: "HostUnreachable",
  7: "HostNotFound",
  9: "FailedToParse",
  13: "Unauthorized",
  14: "TypeMismatch",
  22: "InvalidBSON",
  26: "NamespaceNotFound",
  27: "IndexNotFound",
  40: "ConflictingUpdateOperators",
  43: "CursorNotFound",
  48: "NamespaceExists",
  52: "DollarPrefixedFieldName",
  59: "CommandNotFound",
  66: "ImmutableField",
  67: "CannotCreateIndex",
  72: "InvalidOptions",
  73: "InvalidNamespace",
  85: "IndexOptionsConflict",
  86: "IndexKeySpecsConflict",
  89: "NetworkTimeout",
  91: "ShutdownInProgress",
  112: "WriteConflict",
  189: "PrimarySteppedDown",
  225: "TransactionTooOld",
  262: "ExceededTimeLimit",
  10107: "NotWritablePrimary",
  10334: "BSONObjectTooLarge",
  11000: "DuplicateKey",
  11600: "InterruptedAtShutdown",
  11602: "InterruptedDueToReplStateChange",
  13435: "NotPrimaryNoSecondaryOk",
  13436: "NotPrimaryOrSecondary",
};

export function codeNameOf(code: number): string {
  return CODE_NAMES[code] ?? "UnknownError";
}

/**
 * A failure MongoDB reports with a code: becomes `{ok: 0, code, codeName, errmsg}` for a
 * command, or one entry of `writeErrors` for a statement inside a write batch.
 */
export class CommandError extends Error {
  readonly code: number;
  readonly codeName: string;
  /** Extra fields MongoDB puts beside errmsg (keyPattern/keyValue for 11000, errorLabels). */
  readonly extra: Document;

  constructor(code: number, errmsg: string, extra: Document = {}, codeName = codeNameOf(code)) {
    super(errmsg);
    this.name = "CommandError";
    this.code = code;
    this.codeName = codeName;
    this.extra = extra;
  }

  toReply(): Document {
    return { ok: 0, errmsg: this.message, code: this.code, codeName: this.codeName, ...this.extra };
  }

  toWriteError(index: number): Document {
    return { index, code: this.code, errmsg: this.message, ...this.extra };
  }
}

export function badValue(message: string): CommandError {
  return new CommandError(2, message);
}

export function failedToParse(message: string): CommandError {
  return new CommandError(9, message);
}

export function typeMismatch(message: string): CommandError {
  return new CommandError(14, message);
}

/** Turns anything a handler throws (mingo errors, bugs) into a MongoDB-shaped error. */
export function toCommandError(error: unknown): CommandError {
  if (error instanceof CommandError) return error;
  const message = error instanceof Error ? error.message : String(error);
  // mingo reports invalid queries/expressions with plain Errors; MongoDB answers BadValue.
  return badValue(message);
}
