import { CloudWatchClient, PutMetricDataCommand } from "@aws-sdk/client-cloudwatch";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { mockClient } from "aws-sdk-client-mock";
import type { Document } from "mongodb";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { buildCsv, csvRow } from "../helpers/ingest-csv";
import { order, seedLookups, trackingScript } from "../helpers/ingest-fixtures";
import {
  BUCKET,
  clearEntriesAndLedger,
  comparableFacts,
  type IngestHarness,
  lambdaContext,
  comparableEntries as sharedComparableEntries,
  startIngestHarness,
} from "../helpers/ingest-harness";
import { s3Event } from "../helpers/s3-event";

const cloudwatch = mockClient(CloudWatchClient);
const secrets = mockClient(SecretsManagerClient);
let harness: IngestHarness;

beforeAll(async () => {
  harness = await startIngestHarness();
});
afterAll(async () => {
  await harness?.stop();
});
beforeEach(async () => {
  cloudwatch.reset();
  secrets.reset();
  cloudwatch.on(PutMetricDataCommand).resolves({});
  harness.logs.length = 0;
  harness.mongo.server?.faults.reset();
  await harness.clearDb();
});

/** Entries without ids and clocks: what must be equal between a clean run and a retried one. */
const comparableEntries = () => sharedComparableEntries(harness.db);

async function seedThreeCampaigns() {
  const orders = ["c1", "c2", "c3"].map((campaignId) => order({ campaignId }));
  await seedLookups(harness.db, {
    orders,
    trackingScripts: orders.map((o) =>
      trackingScript({ creativeId: `s-${o.campaignId}`, campaignId: o.campaignId }),
    ),
  });
}

const fault = () => {
  const server = harness.mongo.server;
  if (!server) throw new Error("fault injection needs the embedded server");
  return server.faults;
};

/** One entry per (campaign, day): batches of four rows write distinct entries. */
function rowsOverDays(days: number) {
  const rows = [];
  for (let day = 1; day <= days; day++) {
    const date = `2025-12-${String(day).padStart(2, "0")}`;
    for (const campaign of ["c1", "c2"]) {
      rows.push(
        csvRow({ report_date: date, creative_id: `s-${campaign}`, impressions: day * 100 }),
      );
      rows.push(csvRow({ report_date: date, creative_id: `cr_${campaign}_x`, ad_size: "728x90" }));
    }
  }
  rows.push(csvRow({ publication_code: "nowhere" }));
  return rows;
}

async function waitForEntries(): Promise<void> {
  const entries = harness.db.collection("performance_entries");
  for (let i = 0; i < 2_000; i++) {
    if ((await entries.countDocuments()) > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error("no entry was ever written");
}

describe.skipIf(process.env.MONGODB_TEST_URI !== undefined)(
  "ingestResults: MongoDB failures",
  () => {
    it("throws when MongoDB fails mid-file, and the retried event ends exactly as a clean run", async () => {
      const handler = await harness.loadHandler({ BATCH_SIZE: "4", MAX_IN_FLIGHT: "1" });
      await seedThreeCampaigns();
      const event = await harness.putObject("reprocess/outage.csv", buildCsv(rowsOverDays(6)));
      await handler(event, lambdaContext);
      const clean = await comparableEntries();
      const cleanFacts = await comparableFacts(harness.db);
      await clearEntriesAndLedger(harness.db);

      // Writes answer slowly; once the first batch's entries exist, the next write fails.
      fault().setLatency(300, "update");
      const run = handler(event, lambdaContext);
      const outcome = run.then(
        () => new Error("handler did not throw"),
        (error: Error) => error,
      );
      await waitForEntries();
      fault().failNext({ command: "update", code: 8, errmsg: "simulated outage" });
      const error = await outcome;
      fault().reset();

      expect(error).toMatchObject({ name: "IngestFailedError" });
      expect(error.message).toContain("simulated outage");
      expect(error.message).not.toContain(harness.mongo.uri);
      const partial = await comparableEntries();
      expect(partial.length).toBeGreaterThan(0);
      expect(partial.length).toBeLessThan(clean.length);
      expect(await harness.readJson("reports/reprocess/outage.csv.json")).toMatchObject({
        success: false,
        outcome: "failed",
        error: expect.stringContaining("simulated outage"),
      });

      await handler(event, lambdaContext);

      expect(await comparableEntries()).toEqual(clean);
      // The ledger too: the retry is the same run (same object version) and ends as it would.
      expect(await comparableFacts(harness.db)).toEqual(cleanFacts);
      expect(await harness.db.collection("tracking_sync_runs").find().toArray()).toEqual([
        expect.objectContaining({
          outcome: "synced",
          counts: expect.objectContaining({ errors: 0 }),
        }),
      ]);
      expect(await harness.readJson("reports/reprocess/outage.csv.json")).toMatchObject({
        success: true,
      });
    });

    it("throws when updating existing entries fails, and the retry ends exactly as a clean run", async () => {
      const handler = await harness.loadHandler({ BATCH_SIZE: "4" });
      await seedThreeCampaigns();
      const before = await harness.putObject(
        "reprocess/update-outage.csv",
        buildCsv(rowsOverDays(3)),
      );
      await handler(before, lambdaContext);
      const changedRows = rowsOverDays(3).map((row) => ({ ...row, clicks: 99 }));
      const event = await harness.putObject("reprocess/update-outage.csv", buildCsv(changedRows));
      await handler(event, lambdaContext);
      const clean = await comparableEntries();
      const cleanFacts = await comparableFacts(harness.db);
      await clearEntriesAndLedger(harness.db);
      // The same two versions again (the key holds the newer one now, so it is put back first).
      await handler(
        await harness.putObject("reprocess/update-outage.csv", buildCsv(rowsOverDays(3))),
        lambdaContext,
      );
      const again = await harness.putObject("reprocess/update-outage.csv", buildCsv(changedRows));

      fault().failNext({ command: "update", code: 8, errmsg: "simulated outage" });
      await expect(handler(again, lambdaContext)).rejects.toThrow("simulated outage");
      await handler(again, lambdaContext);

      expect(await comparableEntries()).toEqual(clean);
      expect(await comparableFacts(harness.db)).toEqual(cleanFacts);
    });

    it("throws fast when MongoDB is unreachable, without the connection string anywhere", async () => {
      const unreachable = "mongodb://sync-user:s3cr3t-pass@127.0.0.1:9/?directConnection=true";
      const handler = await harness.loadHandler({ MONGODB_URI: unreachable });
      const event = await harness.putObject("reprocess/unreachable.csv", buildCsv([csvRow()]));

      const error = await handler(event, lambdaContext).then(
        () => new Error("handler did not throw"),
        (caught: Error) => caught,
      );

      expect(error).toMatchObject({ name: "IngestFailedError" });
      expect(error.message).not.toContain("s3cr3t-pass");
      const report = await harness.readText("reports/reprocess/unreachable.csv.json");
      expect(report).toContain('"success": false');
      expect(report).not.toContain("s3cr3t-pass");
      expect(harness.logs.join("\n")).not.toContain("s3cr3t-pass");
      expect(harness.logs.some((line) => line.includes("Ingest failed"))).toBe(true);
    });

    it("fails the other records of the event at once when MongoDB is down, with a report each", async () => {
      const handler = await harness.loadHandler({
        MONGODB_URI: "mongodb://127.0.0.1:9/?directConnection=true",
      });
      const first = await harness.putObject("reprocess/down-1.csv", buildCsv([csvRow()]));
      const second = await harness.putObject("reprocess/down-2.csv", buildCsv([csvRow()]));

      const error = await handler(
        { Records: [...first.Records, ...second.Records] },
        lambdaContext,
      ).then(
        () => new Error("handler did not throw"),
        (caught: Error) => caught,
      );

      expect(error.message).toContain("2 object(s)");
      for (const key of ["reprocess/down-1.csv", "reprocess/down-2.csv"]) {
        expect(await harness.readJson(`reports/${key}.json`)).toMatchObject({
          success: false,
          outcome: "failed",
        });
      }
      expect(harness.logs.filter((line) => line.includes("Ingest not attempted"))).toHaveLength(1);
    });
  },
);

describe("ingestResults: objects and manifests", () => {
  it("throws when the object cannot be read, after writing a failure report", async () => {
    const handler = await harness.loadHandler();

    const error = await handler(s3Event(BUCKET, "reprocess/vanished.csv"), lambdaContext).then(
      () => new Error("handler did not throw"),
      (caught: Error) => caught,
    );

    expect(error).toMatchObject({ name: "IngestFailedError" });
    expect(await harness.readJson("reports/reprocess/vanished.csv.json")).toMatchObject({
      success: false,
      outcome: "failed",
    });
  });

  it("rejects, without writing or throwing, an Athena result whose run manifest is invalid", async () => {
    const handler = await harness.loadHandler();
    await seedThreeCampaigns();
    const qid = "44444444-2222-4333-8444-555555555555";
    await harness.s3.client.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: `runs/${qid}.json`, Body: '{"version": 1}' }),
    );
    const event = await harness.putObject(
      `athena-results/${qid}.csv`,
      buildCsv([csvRow({ creative_id: "s-c1" })]),
    );

    const response = await handler(event, lambdaContext);

    expect(response).toMatchObject({ success: false, objects: [{ status: "rejected" }] });
    expect(await harness.db.collection("performance_entries").countDocuments()).toBe(0);
  });
});

describe("ingestResults: MongoDB setup", () => {
  it("reads the connection string from Secrets Manager once per cold start", async () => {
    const arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:tracking-sync-mongo";
    secrets.on(GetSecretValueCommand, { SecretId: arn }).resolves({
      SecretString: JSON.stringify({ uri: harness.mongo.uri }),
    });
    const handler = await harness.loadHandler({
      MONGODB_URI: undefined,
      MONGODB_URI_SECRET_ARN: arn,
    });
    await seedThreeCampaigns();
    const event = await harness.putObject(
      "reprocess/secret.csv",
      buildCsv([csvRow({ creative_id: "s-c1" })]),
    );

    await handler(event, lambdaContext);
    await handler(event, lambdaContext);

    expect(secrets).toHaveReceivedCommandTimes(GetSecretValueCommand, 1);
    expect(await harness.db.collection("performance_entries").countDocuments()).toBe(1);
  });

  it("fails with a clear error when duplicate entries prevent the unique upsert-key index", async () => {
    const dbName = harness.mongo.freshDbName("duplicates");
    const key = {
      orderId: "o1",
      itemPath: "tracking-display",
      dateStart: new Date("2025-12-10"),
      source: "automated",
    };
    await harness.client
      .db(dbName)
      .collection("performance_entries")
      .insertMany([{ ...key }, { ...key }]);
    const handler = await harness.loadHandler({ MONGODB_DB_NAME: dbName });
    const event = await harness.putObject("reprocess/dups.csv", buildCsv([csvRow()]));

    const error = await handler(event, lambdaContext).then(
      () => new Error("handler did not throw"),
      (caught: Error) => caught,
    );

    expect(error.message).toContain("duplicate entries for the upsert key");
  });
});

describe("ingestResults: configuration", () => {
  it("refuses records for another bucket when RESULTS_BUCKET is set", async () => {
    const handler = await harness.loadHandler({ RESULTS_BUCKET: BUCKET });
    await seedThreeCampaigns();

    const response = await handler(
      s3Event("someone-elses-bucket", "reprocess/x.csv"),
      lambdaContext,
    );

    expect(response).toMatchObject({
      success: false,
      objects: [{ status: "refused", bucket: "someone-elses-bucket" }],
    });
    expect(harness.logs.some((line) => line.includes("Object refused"))).toBe(true);
  });

  it("merges PUBLICATION_CODE_MAP over the built-in map", async () => {
    const handler = await harness.loadHandler({ PUBLICATION_CODE_MAP: '{"NewSite": 5050}' });
    const target = order({ campaignId: "fresh", publicationId: 5050 });
    await seedLookups(harness.db, { orders: [target] });
    const event = await harness.putObject(
      "reprocess/override.csv",
      buildCsv([csvRow({ creative_id: "cr_fresh_1", publication_code: "newsite" })]),
    );

    await handler(event, lambdaContext);

    expect(
      await harness.db
        .collection("performance_entries")
        .countDocuments({ orderId: target._id.toString() }),
    ).toBe(1);
  });
});
