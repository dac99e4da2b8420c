import { connect, type Socket } from "node:net";
import { BSON, type Document, Long, UUID } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MongoServer, startMongoServer } from "../../local/mongo-server.js";

// Speaks the wire protocol by hand: what the embedded server accepts beyond what the
// driver happens to send, and the retryable-write memory the driver relies on.
let server: MongoServer;

beforeAll(async () => {
  server = await startMongoServer();
});

afterAll(async () => {
  await server?.stop();
});

const OP_REPLY = 1;
const OP_QUERY = 2004;
const OP_MSG = 2013;

function header(length: number, requestId: number, opCode: number): Buffer {
  const bytes = Buffer.alloc(16);
  bytes.writeInt32LE(length, 0);
  bytes.writeInt32LE(requestId, 4);
  bytes.writeInt32LE(0, 8);
  bytes.writeInt32LE(opCode, 12);
  return bytes;
}

function opMsg(body: Document, sequences: Record<string, Document[]> = {}): Buffer {
  const parts: Buffer[] = [Buffer.alloc(4), Buffer.from([0]), Buffer.from(BSON.serialize(body))];
  for (const [identifier, documents] of Object.entries(sequences)) {
    const docs = documents.map((doc) => Buffer.from(BSON.serialize(doc)));
    const name = Buffer.from(`${identifier}\0`, "utf8");
    const size = Buffer.alloc(4);
    size.writeInt32LE(4 + name.length + docs.reduce((total, doc) => total + doc.length, 0), 0);
    parts.push(Buffer.from([1]), size, name, ...docs);
  }
  const payload = Buffer.concat(parts);
  return Buffer.concat([header(16 + payload.length, 7, OP_MSG), payload]);
}

function opQuery(collection: string, query: Document): Buffer {
  const name = Buffer.from(`${collection}\0`, "utf8");
  const skipAndReturn = Buffer.alloc(8);
  skipAndReturn.writeInt32LE(-1, 4);
  const payload = Buffer.concat([
    Buffer.alloc(4),
    name,
    skipAndReturn,
    Buffer.from(BSON.serialize(query)),
  ]);
  return Buffer.concat([header(16 + payload.length, 9, OP_QUERY), payload]);
}

/** Sends one message on a fresh connection and decodes the single reply. */
function roundTrip(
  message: Buffer,
): Promise<{ opCode: number; responseTo: number; reply: Document }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket: Socket = connect(server.port, "127.0.0.1", () => socket.write(message));
    socket.on("error", reject);
    socket.on("data", (chunk) => {
      chunks.push(chunk);
      const received = Buffer.concat(chunks);
      if (received.length < 4 || received.length < received.readInt32LE(0)) return;
      socket.destroy();
      const opCode = received.readInt32LE(12);
      const responseTo = received.readInt32LE(8);
      const bodyOffset = opCode === OP_MSG ? 21 : 36;
      resolve({ opCode, responseTo, reply: BSON.deserialize(received.subarray(bodyOffset)) });
    });
  });
}

describe("wire protocol", () => {
  it("answers a legacy OP_QUERY isMaster with an OP_REPLY", async () => {
    const { opCode, responseTo, reply } = await roundTrip(opQuery("admin.$cmd", { isMaster: 1 }));

    expect(opCode).toBe(OP_REPLY);
    expect(responseTo).toBe(9);
    expect(reply).toMatchObject({ ismaster: true, ok: 1 });
  });

  it("reads document sequences (kind 1 sections) of an OP_MSG", async () => {
    const insert = opMsg(
      { insert: "entries", $db: "wire_sequences" },
      { documents: [{ _id: 1 }, { _id: 2 }, { _id: 3 }] },
    );

    const { opCode, responseTo, reply } = await roundTrip(insert);
    const counted = await roundTrip(opMsg({ count: "entries", $db: "wire_sequences" }));

    expect(opCode).toBe(OP_MSG);
    expect(responseTo).toBe(7);
    expect(reply).toMatchObject({ n: 3, ok: 1 });
    expect(counted.reply).toMatchObject({ n: 3 });
  });

  it("fails only the statement of a sequence whose bytes are not valid BSON, as InvalidBSON", async () => {
    const db = "wire_bad_statement";
    const updates = [1, 2, 3].map((k) => ({
      q: { _id: k },
      u: { $set: { label: k === 2 ? "BADX" : "good" } },
      upsert: true,
    }));
    const message = opMsg({ update: "entries", ordered: false, $db: db }, { updates });
    message[message.indexOf("BADX")] = 0xff; // not UTF-8

    const { reply } = await roundTrip(message);
    const counted = await roundTrip(opMsg({ count: "entries", $db: db }));

    expect(reply).toMatchObject({ ok: 1, n: 2, writeErrors: [{ index: 1, code: 22 }] });
    expect(counted.reply).toMatchObject({ n: 2 });
  });

  it("returns the first reply for a retried write instead of applying it twice", async () => {
    const lsid = { id: new UUID() };
    const write = (txnNumber: number) =>
      opMsg(
        {
          update: "entries",
          ordered: true,
          lsid,
          txnNumber: Long.fromNumber(txnNumber),
          $db: "wire_retry",
        },
        { updates: [{ q: { k: 1 }, u: { $inc: { n: 1 } }, upsert: true }] },
      );

    const first = await roundTrip(write(1));
    const retried = await roundTrip(write(1));
    const next = await roundTrip(write(2));
    const stale = await roundTrip(write(1));
    const stored = await roundTrip(opMsg({ find: "entries", filter: { k: 1 }, $db: "wire_retry" }));

    expect(retried.reply).toEqual(first.reply);
    expect(next.reply).toMatchObject({ n: 1, nModified: 1 });
    expect(stale.reply).toMatchObject({ ok: 0, code: 225 });
    expect(stored.reply.cursor.firstBatch).toMatchObject([{ k: 1, n: 2 }]);
  });

  it("gives a retry that arrives while the first attempt still runs that attempt's reply", async () => {
    const lsid = { id: new UUID() };
    const db = "wire_retry_running";
    // Long enough that the server pauses between its statements to read other connections.
    const updates = Array.from({ length: 2_000 }, (_, i) => ({
      q: { _id: i },
      u: { $inc: { n: 1 } },
      upsert: true,
    }));
    const write = opMsg(
      { update: "entries", ordered: true, lsid, txnNumber: Long.fromNumber(1), $db: db },
      { updates },
    );

    const [first, retried] = await Promise.all([roundTrip(write), roundTrip(write)]);
    const all = await roundTrip(opMsg({ count: "entries", query: {}, $db: db }));
    const twice = await roundTrip(opMsg({ count: "entries", query: { n: { $ne: 1 } }, $db: db }));

    expect(first.reply).toMatchObject({ n: 2_000, ok: 1 });
    expect(retried.reply).toEqual(first.reply);
    expect(all.reply).toMatchObject({ n: 2_000 });
    expect(twice.reply).toMatchObject({ n: 0 });
  });

  it("does not reply to an OP_MSG sent with moreToCome, but still applies it", async () => {
    const fireAndForget = opMsg({ insert: "entries", $db: "wire_more", documents: [{ _id: 1 }] });
    fireAndForget.writeUInt32LE(2, 16);
    await new Promise<void>((resolve, reject) => {
      const socket = connect(server.port, "127.0.0.1", () => {
        socket.write(fireAndForget);
        socket.end();
      });
      socket.on("data", () => reject(new Error("the server replied to a moreToCome message")));
      socket.on("error", reject);
      socket.on("close", () => resolve());
    });

    const counted = await roundTrip(opMsg({ count: "entries", $db: "wire_more" }));

    expect(counted.reply).toMatchObject({ n: 1 });
  });
});

describe("stop", () => {
  it("closes the listener so new connections are refused, and can be called twice", async () => {
    const temporary = await startMongoServer();

    await temporary.stop();
    await temporary.stop();
    const outcome = await new Promise<string>((resolve) => {
      const socket = connect(temporary.port, "127.0.0.1", () => resolve("connected"));
      socket.on("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? "error"));
    });

    expect(outcome).toBe("ECONNREFUSED");
  });
});
