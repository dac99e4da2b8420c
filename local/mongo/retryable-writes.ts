import { type Document, Long } from "mongodb";
import { CommandError } from "./errors.js";
import { toNumber } from "./values.js";

const RETRYABLE_COMMANDS = new Set(["insert", "update", "delete", "findAndModify"]);

interface LastWrite {
  txnNumber: number;
  /** A promise while the write still runs (a long command yields between statements). */
  reply: Document | Promise<Document>;
}

/**
 * mongod's retryable-write memory: the driver resends a write with the same session and
 * txnNumber when the reply was lost (a dropped connection after the write was applied).
 * The retry must get the first reply back instead of applying the write twice.
 */
export class RetryableWrites {
  private readonly lastBySession = new Map<string, LastWrite>();

  /**
   * Runs `execute` unless this exact write already ran or is running; remembers its
   * reply. A retry that arrives while the first attempt still runs waits for its reply.
   */
  run(
    commandName: string,
    command: Document,
    execute: () => Document | Promise<Document>,
  ): Document | Promise<Document> {
    const session = sessionKey(command);
    const txnNumber = toNumber(command.txnNumber);
    if (!RETRYABLE_COMMANDS.has(commandName) || session === undefined || txnNumber === undefined) {
      return execute();
    }
    const last = this.lastBySession.get(session);
    if (last && txnNumber === last.txnNumber) return last.reply;
    if (last && txnNumber < last.txnNumber) {
      throw new CommandError(
        225,
        `Retryable write with txnNumber ${txnNumber} is prohibited on session because a newer retryable write with txnNumber ${last.txnNumber} has already started on this session.`,
        {},
        "TransactionTooOld",
      );
    }
    const reply = execute();
    const entry: LastWrite = { txnNumber, reply };
    this.lastBySession.set(session, entry);
    if (reply instanceof Promise) {
      reply.then(
        (settled) => {
          entry.reply = settled;
        },
        () => {
          // A write that failed as a whole is not remembered (as for a synchronous throw).
          if (this.lastBySession.get(session) === entry) this.lastBySession.delete(session);
        },
      );
    }
    return reply;
  }

  /** Sessions the driver ended need no memory. */
  forget(command: Document): void {
    const ids = Array.isArray(command.endSessions) ? command.endSessions : [];
    for (const lsid of ids) {
      const key = sessionKey({ lsid });
      if (key !== undefined) this.lastBySession.delete(key);
    }
  }

  clear(): void {
    this.lastBySession.clear();
  }
}

function sessionKey(command: Document): string | undefined {
  const lsid = command.lsid as { id?: { toString(encoding?: string): string } } | undefined;
  const id = lsid?.id;
  if (id === undefined || id === null) return undefined;
  return id instanceof Long ? id.toString() : id.toString("hex");
}
