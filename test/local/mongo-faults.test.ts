import { connect, type Socket } from "node:net";
import {
  BSON,
  MongoClient,
  MongoNetworkTimeoutError,
  MongoServerError,
  MongoServerSelectionError,
} from "mongodb";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { MongoServer } from "../../local/mongo-server.js";
import { startTestMongo, type TestMongo } from "../helpers/mongo.js";

// Fault injection and raw-socket abuse only exist on the embedded server.
const againstRealServer = Boolean(process.env.MONGODB_TEST_URI);
let mongo: TestMongo;
let server: MongoServer | undefined;
let client: MongoClient;

beforeAll(async () => {
  mongo = await startTestMongo();
  server = mongo.server;
  client = new MongoClient(mongo.uri, { serverSelectionTimeoutMS: 5_000 });
  await client.connect();
});

afterEach(() => {
  server?.faults.reset();
});

afterAll(async () => {
  await client?.close();
  await mongo?.stop();
});

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the operation to fail, but it succeeded");
}

describe.skipIf(againstRealServer)("fault injection", () => {
  it("fails the next command with the injected code as a MongoServerError", async () => {
    const entries = client.db(mongo.freshDbName("fail_next")).collection("entries");
    server?.faults.failNext({ code: 2, errmsg: "injected" });

    const error = await rejectionOf(entries.findOne({}));

    expect(error).toBeInstanceOf(MongoServerError);
    expect((error as MongoServerError).code).toBe(2);
    expect((error as MongoServerError).message).toBe("injected");
    expect(await entries.findOne({})).toBeNull();
  });

  it("fails only the named command, as many times as asked", async () => {
    const entries = client.db(mongo.freshDbName("fail_named")).collection("entries");
    server?.faults.failNext({ command: "insert", code: 112, count: 2 });

    const found = await entries.findOne({});
    const first = await rejectionOf(entries.insertOne({ n: 1 }));
    const second = await rejectionOf(entries.insertOne({ n: 2 }));
    await entries.insertOne({ n: 3 });

    expect(found).toBeNull();
    expect((first as MongoServerError).codeName).toBe("WriteConflict");
    expect((second as MongoServerError).code).toBe(112);
    expect(await entries.find({}, { projection: { _id: 0 } }).toArray()).toEqual([{ n: 3 }]);
  });

  it("lets the driver retry a write failed with the RetryableWriteError label", async () => {
    const entries = client.db(mongo.freshDbName("retryable")).collection("entries");
    server?.faults.failNext({ command: "insert", code: 6, errorLabels: ["RetryableWriteError"] });

    await entries.insertOne({ n: 1 });

    expect(await entries.countDocuments()).toBe(1);
  });

  it("makes the client reconnect after every connection is dropped", async () => {
    const events: string[] = [];
    const watched = new MongoClient(mongo.uri, { serverSelectionTimeoutMS: 5_000 });
    watched.on("connectionCreated", () => events.push("created"));
    watched.on("connectionClosed", () => events.push("closed"));
    const entries = watched.db(mongo.freshDbName("drop_connections")).collection("entries");
    try {
      await entries.insertOne({ n: 1 });
      const createdBefore = events.filter((event) => event === "created").length;

      server?.faults.dropConnections();
      // The first operation may fail (or be retried by the driver); a later one must work.
      await entries.findOne({}).catch(() => undefined);
      const found = await entries.findOne({}, { projection: { _id: 0 } });

      expect(found).toEqual({ n: 1 });
      expect(events.filter((event) => event === "created").length).toBeGreaterThan(createdBefore);
    } finally {
      await watched.close();
    }
  });

  it("fails server selection quickly while refusing connections, and recovers after", async () => {
    server?.faults.refuseConnections(true);
    const refused = new MongoClient(mongo.uri, { serverSelectionTimeoutMS: 300 });

    const error = await rejectionOf(refused.db("admin").command({ ping: 1 }));
    await refused.close();
    server?.faults.refuseConnections(false);
    const accepted = new MongoClient(mongo.uri, { serverSelectionTimeoutMS: 5_000 });
    const ping = await accepted.db("admin").command({ ping: 1 });
    await accepted.close();

    expect(error).toBeInstanceOf(MongoServerSelectionError);
    expect(ping.ok).toBe(1);
  });

  it("delays replies of the chosen command past the client's socket timeout", async () => {
    const impatient = new MongoClient(mongo.uri, {
      serverSelectionTimeoutMS: 5_000,
      socketTimeoutMS: 500,
      retryReads: false,
    });
    const db = impatient.db(mongo.freshDbName("latency"));
    try {
      await db.command({ ping: 1 });
      server?.faults.setLatency(5_000, "count");

      const error = await rejectionOf(db.command({ count: "entries" }));
      const ping = await db.command({ ping: 1 });

      expect(error).toBeInstanceOf(MongoNetworkTimeoutError);
      expect(ping.ok).toBe(1);
    } finally {
      await impatient.close();
    }
  });
});

/** Sends raw bytes and resolves once the server has closed the socket. */
function sendRaw(port: number, bytes: Buffer, endAfterWrite = false): Promise<"closed"> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(port, "127.0.0.1", () => {
      socket.write(bytes);
      if (endAfterWrite) socket.end();
    });
    socket.on("error", () => {});
    socket.on("close", () => resolve("closed"));
    socket.setTimeout(10_000, () => {
      socket.destroy();
      reject(new Error("server kept the connection open"));
    });
  });
}

function header(length: number, opCode: number): Buffer {
  const bytes = Buffer.alloc(16);
  bytes.writeInt32LE(length, 0);
  bytes.writeInt32LE(1, 4);
  bytes.writeInt32LE(0, 8);
  bytes.writeInt32LE(opCode, 12);
  return bytes;
}

describe.skipIf(againstRealServer)("robustness against bad input", () => {
  it("closes connections that send garbage, and keeps serving everyone else", async () => {
    const port = server?.port ?? 0;
    const garbage = Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(4));
    const hugeLength = header(0x7fffffff, 2013);
    const tooShort = header(8, 2013);
    const unknownOpCode = Buffer.concat([header(21, 9999), Buffer.alloc(5)]);
    const body = Buffer.from(BSON.serialize({ ping: 1, $db: "admin" }));
    body.writeInt32LE(body.length + 1000, 0); // a BSON length pointing past the message
    const badBson = Buffer.concat([header(16 + 5 + body.length, 2013), Buffer.alloc(5), body]);
    badBson.writeUInt8(0, 20);

    const results = await Promise.all([
      sendRaw(port, garbage),
      sendRaw(port, hugeLength),
      sendRaw(port, tooShort),
      sendRaw(port, unknownOpCode),
      sendRaw(port, badBson),
      sendRaw(port, Buffer.from([1, 2, 3]), true),
    ]);

    expect(results).toEqual(Array(6).fill("closed"));
    expect((await client.db("admin").command({ ping: 1 })).ok).toBe(1);
  });

  it("answers a command that breaks the query engine with an error, not a crash", async () => {
    const db = client.db(mongo.freshDbName("bad_query"));
    await db.collection("entries").insertOne({ n: 1 });

    const badOperator = await rejectionOf(db.collection("entries").findOne({ n: { $frob: 1 } }));
    const badStage = await rejectionOf(
      db
        .collection("entries")
        .aggregate([{ $nope: {} }])
        .toArray(),
    );

    expect(badOperator).toBeInstanceOf(MongoServerError);
    expect(badStage).toBeInstanceOf(MongoServerError);
    expect((await db.command({ ping: 1 })).ok).toBe(1);
  });
});
