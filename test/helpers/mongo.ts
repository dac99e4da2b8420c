import { randomBytes } from "node:crypto";
import { MongoClient } from "mongodb";
import { type MongoServer, startMongoServer } from "../../local/mongo-server.js";

export interface TestMongo {
  /** Connection string for handlers / MongoClient. */
  uri: string;
  /** The embedded server (faults); undefined when MONGODB_TEST_URI is set. */
  server?: MongoServer;
  /** A unique database name for one test. */
  freshDbName(prefix?: string): string;
  stop(): Promise<void>;
}

/**
 * Starts the embedded MongoDB server, or points at the real one named by
 * MONGODB_TEST_URI. With a real server, the databases handed out by freshDbName are
 * dropped again on stop().
 */
export async function startTestMongo(): Promise<TestMongo> {
  const externalUri = process.env.MONGODB_TEST_URI;
  const server = externalUri ? undefined : await startMongoServer();
  const uri = externalUri ?? (server as MongoServer).uri;
  const runId = randomBytes(3).toString("hex");
  const handedOut: string[] = [];
  let counter = 0;
  return {
    uri,
    server,
    freshDbName(prefix = "test") {
      counter++;
      // MongoDB database names are limited to 63 bytes and may not contain . / \ " $ or spaces.
      const safePrefix = prefix.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 40);
      const name = `${safePrefix}_${runId}_${counter}`;
      handedOut.push(name);
      return name;
    },
    async stop() {
      if (server) {
        await server.stop();
        return;
      }
      const client = new MongoClient(uri, { serverSelectionTimeoutMS: 5_000 });
      try {
        for (const name of handedOut) await client.db(name).dropDatabase();
      } finally {
        await client.close();
      }
    },
  };
}
