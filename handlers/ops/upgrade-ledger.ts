/**
 * One-off: gives the contributions of entries written before the facts ledger existed
 * their facts (`npm run ledger:upgrade`). Safe to run again, and while ingests run.
 *
 *   MONGODB_URI=... MONGODB_DB_NAME=... npm run ledger:upgrade
 */
import { MongoClient } from "mongodb";
import { upgradeLedger } from "../ingest/ledger-upgrade";
import { redactSecrets } from "../shared/redact";

async function main(): Promise<void> {
  const uri = process.env.MONGODB_URI;
  const dbName = process.env.MONGODB_DB_NAME;
  if (!uri || !dbName) {
    throw new Error("set MONGODB_URI and MONGODB_DB_NAME (the database the ingest writes)");
  }
  const client = new MongoClient(uri);
  try {
    await client.connect();
    const result = await upgradeLedger(client.db(dbName));
    console.log(JSON.stringify({ upgraded: dbName, ...result }));
  } finally {
    await client.close();
  }
}

main().catch((error: unknown) => {
  console.error(redactSecrets((error as Error)?.message ?? String(error)));
  process.exitCode = 1;
});
