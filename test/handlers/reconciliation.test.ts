import { AthenaClient, GetQueryRuntimeStatisticsCommand } from "@aws-sdk/client-athena";
import { CloudWatchClient, PutMetricDataCommand } from "@aws-sdk/client-cloudwatch";
import { DeleteObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createLogger } from "../../handlers/shared/logger";
import { loadStartConfig } from "../../handlers/start/config";
import {
  composeStart,
  createStartClients,
  createStartHandler,
  type StartHandler,
} from "../../handlers/start/start-handler";
import { athenaStateChange } from "../helpers/athena-events";
import { buildCsv, csvRow } from "../helpers/ingest-csv";
import { order, seedLookups, trackingScript } from "../helpers/ingest-fixtures";
import {
  BUCKET,
  type IngestHarness,
  lambdaContext,
  startIngestHarness,
} from "../helpers/ingest-harness";

// Both real handlers on one S3 stand-in (conditional writes included) and the embedded
// MongoDB; only Athena's statistics and CloudWatch are mocked at the client.
const athena = mockClient(AthenaClient);
const cloudwatch = mockClient(CloudWatchClient);
const WORKGROUP = "tracking-sync";
const QUERY = "5a5a5a5a-0000-4000-8000-00000000005a";
const RESULT_KEY = `athena-results/${QUERY}.csv`;
const TWO_ROWS = buildCsv([
  csvRow(),
  csvRow({ creative_id: "cr_spring-sale_728x90", ad_size: "728x90", impressions: 500 }),
]);

let harness: IngestHarness;
let ingest: Awaited<ReturnType<IngestHarness["loadHandler"]>>;
let start: StartHandler;

beforeAll(async () => {
  harness = await startIngestHarness();
  ingest = await harness.loadHandler();
  start = createStartHandler(
    composeStart(
      loadStartConfig({ RESULTS_BUCKET: BUCKET, ATHENA_WORKGROUP: WORKGROUP }),
      createStartClients({
        s3: harness.s3.client,
        athena: new AthenaClient({ region: "us-east-1" }),
        cloudwatch: new CloudWatchClient({ region: "us-east-1" }),
        logger: createLogger({ function: "start-query" }, { write: () => undefined }),
      }),
    ),
  );
});
afterAll(async () => {
  await harness?.stop();
});
beforeEach(async () => {
  athena.reset();
  cloudwatch.reset();
  cloudwatch.on(PutMetricDataCommand).resolves({});
  await harness.clearDb();
  for (const key of ["state/watermark.json", `reports/${RESULT_KEY}.json`]) {
    await harness.s3.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key }));
  }
  await seedLookups(harness.db, {
    orders: [order()],
    trackingScripts: [
      trackingScript(),
      trackingScript({ creativeId: "cr_spring-sale_728x90", creative: { name: "728x90" } }),
    ],
  });
  await harness.s3.client.send(
    new PutObjectCommand({
      Bucket: BUCKET,
      Key: `runs/${QUERY}.json`,
      Body: JSON.stringify({
        version: 1,
        queryExecutionId: QUERY,
        request: {},
        dateRange: { start: "2025-12-10", end: "2025-12-10" },
        dryRun: false,
        attempt: 1,
        trigger: { kind: "schedule", id: "nightly" },
        startedAt: "2025-12-11T06:00:00.000Z",
      }),
    }),
  );
});

function athenaReturns(outputRows: number): void {
  athena
    .on(GetQueryRuntimeStatisticsCommand)
    .resolves({ QueryRuntimeStatistics: { Rows: { OutputRows: outputRows } } });
}

const succeeded = athenaStateChange(QUERY, "SUCCEEDED", WORKGROUP);

const ingestResult = async () =>
  ingest(await harness.putObject(RESULT_KEY, TWO_ROWS), lambdaContext);
const report = () => harness.readJson(`reports/${RESULT_KEY}.json`);
const watermark = () => harness.readJson("state/watermark.json");
const incompleteMetrics = () =>
  cloudwatch
    .commandCalls(PutMetricDataCommand)
    .flatMap((call) => call.args[0].input.MetricData ?? [])
    .filter((datum) => datum.MetricName === "IncompleteResults");

describe("reconciling a nightly result with Athena's OutputRows", () => {
  it("is recorded by the start function when the file was ingested first", async () => {
    athenaReturns(2);
    await ingestResult();
    expect(await report()).toMatchObject({ reconciliation: { status: "pending", read: 2 } });
    expect(await watermark()).toBeUndefined();

    await start(succeeded, lambdaContext);

    expect(await report()).toMatchObject({
      success: true,
      outcome: "synced",
      reconciliation: { status: "complete", expected: 2, read: 2, recordedBy: "start" },
    });
    expect(await watermark()).toMatchObject({
      lastCompleteDate: "2025-12-10",
      queryExecutionId: QUERY,
    });
  });

  it("is recorded by the ingest when the SUCCEEDED event came first", async () => {
    athenaReturns(2);
    await start(succeeded, lambdaContext);
    expect(await harness.readJson(`runs/${QUERY}.json`)).toMatchObject({ outputRows: 2 });

    const response = await ingestResult();

    expect(response).toMatchObject({ success: true });
    expect(await report()).toMatchObject({
      reconciliation: { status: "complete", expected: 2, read: 2, recordedBy: "ingest" },
    });
    expect(await watermark()).toMatchObject({ lastCompleteDate: "2025-12-10" });
  });

  it("fails the run, alarms and keeps the watermark when Athena returned more rows than were read", async () => {
    athenaReturns(3);
    await start(succeeded, lambdaContext);

    const response = await ingestResult();

    expect(response).toMatchObject({
      success: false,
      error: expect.stringContaining("read 2 records, Athena returned 3 rows"),
    });
    expect(await report()).toMatchObject({
      success: false,
      outcome: "incomplete",
      reconciliation: { status: "incomplete", expected: 3, read: 2, recordedBy: "ingest" },
    });
    expect(incompleteMetrics()).toEqual([
      { MetricName: "IncompleteResults", Value: 1, Unit: "Count" },
    ]);
    expect(await watermark()).toBeUndefined();
  });

  it("alarms from the start function when it records a mismatch after the ingest", async () => {
    athenaReturns(3);
    await ingestResult();

    await start(succeeded, lambdaContext);

    expect(await report()).toMatchObject({
      outcome: "incomplete",
      reconciliation: { status: "incomplete", recordedBy: "start" },
    });
    expect(incompleteMetrics()).toHaveLength(1);
    expect(await watermark()).toBeUndefined();
  });

  it("says a manual drop is not reconciled", async () => {
    await ingest(await harness.putObject("reprocess/by-hand.csv", TWO_ROWS), lambdaContext);

    expect(await harness.readJson("reports/reprocess/by-hand.csv.json")).toMatchObject({
      success: true,
      reconciliation: { status: "not-reconciled" },
    });
  });
});
