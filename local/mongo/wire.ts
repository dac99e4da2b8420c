import { BSON, type Document } from "mongodb";
import { CommandError } from "./errors.js";

export const OP_REPLY = 1;
export const OP_QUERY = 2004;
export const OP_MSG = 2013;
export const HEADER_SIZE = 16;
export const MAX_MESSAGE_SIZE = 48_000_000;
export const MAX_BSON_OBJECT_SIZE = 16 * 1024 * 1024;

const CHECKSUM_PRESENT = 1;
const MORE_TO_COME = 2;

/** Raised for bytes that are not a well-formed message: the connection gets closed. */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProtocolError";
  }
}

export interface MessageHeader {
  length: number;
  requestId: number;
  responseTo: number;
  opCode: number;
}

export interface IncomingCommand {
  header: MessageHeader;
  opCode: typeof OP_QUERY | typeof OP_MSG;
  command: Document;
  /** OP_MSG with moreToCome: the client expects no reply. */
  noReply: boolean;
}

/** Commands keep Longs as Long (cursor ids, fidelity); Int32/Double become JS numbers. */
const DESERIALIZE_OPTIONS = { promoteLongs: false } as const;

export function readHeader(buffer: Buffer): MessageHeader {
  return {
    length: buffer.readInt32LE(0),
    requestId: buffer.readInt32LE(4),
    responseTo: buffer.readInt32LE(8),
    opCode: buffer.readInt32LE(12),
  };
}

function deserializeDocument(buffer: Buffer, offset: number, limit: number): [Document, number] {
  if (offset + 4 > limit) throw new ProtocolError("truncated BSON document");
  const size = buffer.readInt32LE(offset);
  if (size < 5 || offset + size > limit) throw new ProtocolError("invalid BSON document size");
  try {
    const doc = BSON.deserialize(buffer.subarray(offset, offset + size), DESERIALIZE_OPTIONS);
    return [doc, offset + size];
  } catch (error) {
    throw new ProtocolError(`invalid BSON: ${(error as Error).message}`);
  }
}

/**
 * The document sequences of the write commands: thousands of statements that the engine
 * runs one at a time. Decoding each only when its turn comes lets a statement's objects
 * die young instead of all of them outliving the whole command (which made the garbage
 * collector promote and later trace them). Their sizes are checked here, as for every
 * document; a statement whose content is not valid BSON fails alone, as InvalidBSON.
 */
const STATEMENT_SEQUENCES = new Set(["documents", "updates", "deletes"]);

/** One statement of a write command, still as the bytes the client sent. */
export class RawStatement {
  constructor(private readonly bytes: Buffer) {}

  decode(): Document {
    try {
      return BSON.deserialize(this.bytes, DESERIALIZE_OPTIONS);
    } catch (error) {
      throw new CommandError(22, `invalid BSON: ${(error as Error).message}`);
    }
  }
}

/** A statement as the engine uses it: decoded now if it still is bytes. */
export function statementValue(statement: unknown): unknown {
  return statement instanceof RawStatement ? statement.decode() : statement;
}

function rawDocument(buffer: Buffer, offset: number, limit: number): [RawStatement, number] {
  if (offset + 4 > limit) throw new ProtocolError("truncated BSON document");
  const size = buffer.readInt32LE(offset);
  if (size < 5 || offset + size > limit || buffer[offset + size - 1] !== 0) {
    throw new ProtocolError("invalid BSON document size");
  }
  return [new RawStatement(buffer.subarray(offset, offset + size)), offset + size];
}

function readCString(buffer: Buffer, offset: number, limit: number): [string, number] {
  const end = buffer.indexOf(0, offset);
  if (end < 0 || end >= limit) throw new ProtocolError("unterminated cstring");
  return [buffer.toString("utf8", offset, end), end + 1];
}

/** Decodes one complete message (header included) into a command document. */
export function parseMessage(message: Buffer): IncomingCommand {
  const header = readHeader(message);
  if (header.opCode === OP_MSG) return parseOpMsg(message, header);
  if (header.opCode === OP_QUERY) return parseOpQuery(message, header);
  throw new ProtocolError(`unsupported opCode ${header.opCode}`);
}

function parseOpMsg(message: Buffer, header: MessageHeader): IncomingCommand {
  if (message.length < HEADER_SIZE + 5) throw new ProtocolError("OP_MSG too short");
  const flags = message.readUInt32LE(HEADER_SIZE);
  const limit = flags & CHECKSUM_PRESENT ? message.length - 4 : message.length;
  let offset = HEADER_SIZE + 4;
  let body: Document | undefined;
  const sequences: Record<string, unknown[]> = {};
  while (offset < limit) {
    const kind = message.readUInt8(offset);
    offset += 1;
    if (kind === 0) {
      if (body) throw new ProtocolError("OP_MSG with two body sections");
      [body, offset] = deserializeDocument(message, offset, limit);
    } else if (kind === 1) {
      if (offset + 4 > limit) throw new ProtocolError("truncated document sequence");
      const sectionEnd = offset + message.readInt32LE(offset);
      if (sectionEnd > limit || sectionEnd <= offset + 4) {
        throw new ProtocolError("invalid document sequence size");
      }
      let identifier: string;
      [identifier, offset] = readCString(message, offset + 4, sectionEnd);
      const documents: unknown[] = [];
      const lazy = STATEMENT_SEQUENCES.has(identifier);
      while (offset < sectionEnd) {
        let doc: unknown;
        [doc, offset] = lazy
          ? rawDocument(message, offset, sectionEnd)
          : deserializeDocument(message, offset, sectionEnd);
        documents.push(doc);
      }
      sequences[identifier] = documents;
    } else {
      throw new ProtocolError(`unknown OP_MSG section kind ${kind}`);
    }
  }
  if (!body) throw new ProtocolError("OP_MSG without a body section");
  for (const [identifier, documents] of Object.entries(sequences)) {
    body[identifier] = documents;
  }
  return { header, opCode: OP_MSG, command: body, noReply: (flags & MORE_TO_COME) !== 0 };
}

function parseOpQuery(message: Buffer, header: MessageHeader): IncomingCommand {
  const [collectionName, afterName] = readCString(message, HEADER_SIZE + 4, message.length);
  // Skip numberToSkip and numberToReturn: commands always return one document.
  const [query] = deserializeDocument(message, afterName + 8, message.length);
  if (!collectionName.endsWith(".$cmd")) {
    throw new ProtocolError("legacy OP_QUERY is only supported for commands");
  }
  const command = "$query" in query && typeof query.$query === "object" ? query.$query : query;
  command.$db = collectionName.slice(0, -".$cmd".length);
  return { header, opCode: OP_QUERY, command, noReply: false };
}

function writeHeader(
  buffer: Buffer,
  length: number,
  requestId: number,
  responseTo: number,
  opCode: number,
) {
  buffer.writeInt32LE(length, 0);
  buffer.writeInt32LE(requestId, 4);
  buffer.writeInt32LE(responseTo, 8);
  buffer.writeInt32LE(opCode, 12);
}

/** Stored documents never hold undefined; projections may produce it, mongod omits such fields. */
const SERIALIZE_OPTIONS = { ignoreUndefined: true } as const;

export function buildReply(request: IncomingCommand, reply: Document, requestId: number): Buffer {
  const body = BSON.serialize(reply, SERIALIZE_OPTIONS);
  if (request.opCode === OP_MSG) {
    const buffer = Buffer.alloc(HEADER_SIZE + 5 + body.length);
    writeHeader(buffer, buffer.length, requestId, request.header.requestId, OP_MSG);
    buffer.writeUInt32LE(0, HEADER_SIZE);
    buffer.writeUInt8(0, HEADER_SIZE + 4);
    buffer.set(body, HEADER_SIZE + 5);
    return buffer;
  }
  const buffer = Buffer.alloc(HEADER_SIZE + 20 + body.length);
  writeHeader(buffer, buffer.length, requestId, request.header.requestId, OP_REPLY);
  buffer.writeInt32LE(0, HEADER_SIZE); // responseFlags
  buffer.writeBigInt64LE(0n, HEADER_SIZE + 4); // cursorID
  buffer.writeInt32LE(0, HEADER_SIZE + 12); // startingFrom
  buffer.writeInt32LE(1, HEADER_SIZE + 16); // numberReturned
  buffer.set(body, HEADER_SIZE + 20);
  return buffer;
}
