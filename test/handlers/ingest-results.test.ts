import { CloudWatchClient, PutMetricDataCommand } from "@aws-sdk/client-cloudwatch";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { buildCsv, csvRow } from "../helpers/ingest-csv";
import { order, seedLookups, trackingScript } from "../helpers/ingest-fixtures";
import { type IngestHarness, lambdaContext, startIngestHarness } from "../helpers/ingest-harness";

const cloudwatch = mockClient(CloudWatchClient);
let harness: IngestHarness;
let handler: Awaited<ReturnType<IngestHarness["loadHandler"]>>;

beforeAll(async () => {
  harness = await startIngestHarness();
  handler = await harness.loadHandler();
});
afterAll(async () => {
  await harness?.stop();
});
beforeEach(async () => {
  cloudwatch.reset();
  cloudwatch.on(PutMetricDataCommand).resolves({});
  await harness.clearDb();
});

describe("ingestResults handler", () => {
  it("upserts a resolved row into performance_entries with the spec's fields", async () => {
    const campaignOrder = order();
    await seedLookups(harness.db, { orders: [campaignOrder], trackingScripts: [trackingScript()] });
    const event = await harness.putObject("reprocess/day.csv", buildCsv([csvRow()]));

    const response = await handler(event, lambdaContext);

    expect(response).toMatchObject({
      success: true,
      dateRange: { start: "2025-12-10", end: "2025-12-10" },
      stats: { rowsFromAthena: 1, synced: 1, skipped: 0, errors: 0 },
    });
    const entries = await harness.db.collection("performance_entries").find().toArray();
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({
      orderId: campaignOrder._id.toString(),
      itemPath: "tracking-display",
      dateStart: new Date("2025-12-10T00:00:00.000Z"),
      dateEnd: new Date("2025-12-10T23:59:59.999Z"),
      source: "automated",
      enteredBy: "lambda-tracking-sync",
      campaignId: "spring-sale",
      publicationId: 1035,
      publicationName: "Chicago Reader",
      itemName: "Spring Sale 300x250",
      channel: "display",
      dimensions: "300x250",
      metrics: { impressions: 1000, clicks: 10, ctr: 1, viewability: 80, reach: 700 },
    });
  });
});
