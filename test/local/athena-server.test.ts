import {
  AthenaClient,
  GetQueryExecutionCommand,
  GetQueryResultsCommand,
  GetQueryRuntimeStatisticsCommand,
  GetWorkGroupCommand,
  type QueryExecution,
  StartQueryExecutionCommand,
  type StartQueryExecutionCommandInput,
  StopQueryExecutionCommand,
} from "@aws-sdk/client-athena";
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import type { S3Event } from "aws-lambda";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { buildSyncQuery, createAthenaQueryStarter } from "../../handlers/start/athena-query";
import {
  type AthenaQueryStateChangeEvent,
  type AthenaServer,
  startAthenaServer,
} from "../../local/athena-server";
import { startTestS3, type TestS3 } from "../helpers/s3";

const BUCKET = "results";
const WORKGROUP = "tracking-sync";
const OUTPUT = `s3://${BUCKET}/athena-results/`;

const SEED_SQL = `
  CREATE TABLE ad_tracking.daily_aggregates (
    report_date DATE, creative_id VARCHAR, publication_code VARCHAR, channel VARCHAR,
    ad_size VARCHAR, impressions BIGINT, clicks BIGINT, viewable_impressions BIGINT,
    unique_ips BIGINT
  );
  INSERT INTO ad_tracking.daily_aggregates VALUES
    (DATE '2025-12-09', 'cr-old', 'chireader', 'website', '300x250', 10, 1, 5, 3),
    (DATE '2025-12-10', 'cr-b', 'ChiReader', 'website', '728x90', 200, 4, 150, 90),
    (DATE '2025-12-10', 'cr-a', 'chireader', 'newsletter', NULL, 100, 2, 80, 50),
    (DATE '2025-12-10', 'cr-z', 'other', 'website', '300x250', 50, 0, 20, 10),
    (DATE '2025-12-10', 'cr-zero', 'chireader', 'website', '300x250', 0, 0, 0, 0),
    (DATE '2025-12-11', 'cr-c', 'chireader', 'website', '', 300, 6, 240, 120),
    (DATE '2025-12-12', 'cr-late', 'chireader', 'website', '300x250', 5, 0, 1, 1);
`;

/** The production query for chireader over two days: three rows of the seed. */
const CHIREADER_QUERY = buildSyncQuery({
  database: "ad_tracking",
  table: "daily_aggregates",
  dateRange: { start: "2025-12-10", end: "2025-12-11" },
  publicationCode: "CHIREADER",
});

describe("Athena stand-in through the real AthenaClient", () => {
  // Assigned in beforeEach; afterEach tolerates a beforeEach that failed half-way.
  let s3: TestS3;
  let athena: AthenaServer;
  let client: AthenaClient;
  let csvEvents: S3Event[];
  let stateChanges: AthenaQueryStateChangeEvent[];

  beforeEach(async () => {
    csvEvents = [];
    stateChanges = [];
    s3 = await startTestS3({
      buckets: [BUCKET],
      notifications: [
        {
          bucket: BUCKET,
          prefix: "athena-results/",
          suffix: ".csv",
          deliver: (event) => {
            csvEvents.push(event);
          },
        },
      ],
    });
    athena = await startAthenaServer({
      s3: s3.client,
      workGroups: { [WORKGROUP]: { outputLocation: OUTPUT } },
      setup: async (db) => {
        await db.run(SEED_SQL);
      },
      onStateChange: (event) => {
        stateChanges.push(event);
      },
    });
    client = new AthenaClient({
      endpoint: athena.endpoint,
      region: "us-east-1",
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
    });
  });

  afterEach(async () => {
    client?.destroy();
    await athena?.stop();
    await s3?.stop();
  });

  async function start(input: Partial<StartQueryExecutionCommandInput> & { QueryString: string }) {
    const response = await client.send(
      new StartQueryExecutionCommand({
        WorkGroup: WORKGROUP,
        QueryExecutionContext: { Catalog: "AwsDataCatalog", Database: "ad_tracking" },
        ...input,
      }),
    );
    if (!response.QueryExecutionId) throw new Error("no QueryExecutionId");
    return response.QueryExecutionId;
  }

  /** Waits for the query (and the S3 notifications it caused), then describes it. */
  async function settled(queryExecutionId: string): Promise<QueryExecution> {
    await athena.idle();
    await s3.server.idle();
    const response = await client.send(
      new GetQueryExecutionCommand({ QueryExecutionId: queryExecutionId }),
    );
    if (!response.QueryExecution) throw new Error("no QueryExecution");
    return response.QueryExecution;
  }

  async function resultCsv(queryExecutionId: string): Promise<string> {
    const object = await s3.client.send(
      new GetObjectCommand({ Bucket: BUCKET, Key: `athena-results/${queryExecutionId}.csv` }),
    );
    return (await object.Body?.transformToString()) ?? "";
  }

  async function resultKeys(): Promise<string[]> {
    const listed = await s3.client.send(
      new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "athena-results/" }),
    );
    return (listed.Contents ?? []).map((object) => object.Key ?? "");
  }

  it("runs the production query with its execution parameters and writes Athena's CSV", async () => {
    const query = CHIREADER_QUERY;

    const id = await start({
      QueryString: query.queryString,
      ExecutionParameters: query.executionParameters,
      ResultConfiguration: { OutputLocation: OUTPUT },
      ResultReuseConfiguration: { ResultReuseByAgeConfiguration: { Enabled: false } },
    });
    const execution = await settled(id);

    expect(execution.Status?.State).toBe("SUCCEEDED");
    expect(execution.ResultConfiguration?.OutputLocation).toBe(`${OUTPUT}${id}.csv`);
    expect(execution.Status?.SubmissionDateTime).toBeInstanceOf(Date);
    expect(execution.Status?.CompletionDateTime).toBeInstanceOf(Date);
    expect(execution.Query).toBe(query.queryString);
    expect(execution.ExecutionParameters).toEqual(query.executionParameters);
    expect(execution.Statistics?.ResultReuseInformation?.ReusedPreviousResult).toBe(false);
    expect(await resultCsv(id)).toBe(
      [
        '"report_date","creative_id","publication_code","channel","ad_size","impressions","clicks","viewable_impressions","unique_ips"',
        '"2025-12-10","cr-b","ChiReader","website","728x90","200","4","150","90"',
        '"2025-12-10","cr-a","chireader","newsletter",,"100","2","80","50"',
        '"2025-12-11","cr-c","chireader","website","","300","6","240","120"',
        "",
      ].join("\n"),
    );
  });

  it("answers GetQueryRuntimeStatistics with the result's data rows and sends SUCCEEDED", async () => {
    const query = CHIREADER_QUERY;
    const id = await start({
      QueryString: query.queryString,
      ExecutionParameters: query.executionParameters,
    });
    await settled(id);

    const response = await client.send(
      new GetQueryRuntimeStatisticsCommand({ QueryExecutionId: id }),
    );

    // Three data rows (the header is not a row), as in the CSV of the test above.
    expect(response.QueryRuntimeStatistics?.Rows?.OutputRows).toBe(3);
    expect(
      stateChanges
        .filter((event) => event.detail.queryExecutionId === id)
        .map((event) => event.detail.currentState),
    ).toContain("SUCCEEDED");
  });

  it("refuses runtime statistics of a query still queued", async () => {
    athena.pauseQueue();
    const id = await start({ QueryString: "SELECT 1" });

    await expect(
      client.send(new GetQueryRuntimeStatisticsCommand({ QueryExecutionId: id })),
    ).rejects.toThrow(/QUEUED/);
    athena.resumeQueue();
    await settled(id);
  });

  it("writes a .csv.metadata beside the result and notifies only the .csv, as a multipart upload", async () => {
    const id = await start({ QueryString: "SELECT 1 AS one" });
    await settled(id);

    const metadata = await s3.client.send(
      new HeadObjectCommand({ Bucket: BUCKET, Key: `athena-results/${id}.csv.metadata` }),
    );

    expect(metadata.ContentLength).toBeGreaterThan(0);
    expect(await resultKeys()).toEqual([
      `athena-results/${id}.csv`,
      `athena-results/${id}.csv.metadata`,
    ]);
    expect(
      csvEvents.map((event) => [event.Records[0]?.eventName, event.Records[0]?.s3.object.key]),
    ).toEqual([["ObjectCreated:CompleteMultipartUpload", `athena-results/${id}.csv`]]);
  });

  it("keeps NULL and the empty string apart, doubles quotes and keeps line breaks inside fields", async () => {
    const id = await start({
      QueryString: `SELECT NULL AS "null", '' AS empty, 'say "hi"' AS quoted,
        'line 1' || chr(10) || 'line 2' AS multiline, CAST(42 AS BIGINT) AS count,
        DATE '2025-12-10' AS day, 0.5 :: DOUBLE AS ratio, 'a,b' AS comma`,
    });
    await settled(id);

    expect(await resultCsv(id)).toBe(
      '"null","empty","quoted","multiline","count","day","ratio","comma"\n' +
        ',"","say ""hi""","line 1\nline 2","42","2025-12-10","0.5","a,b"\n',
    );
  });

  it("writes large results in several parts without losing a row", async () => {
    const id = await start({
      QueryString: "SELECT i, repeat('x', 100) AS padding FROM range(60000) t(i) ORDER BY i",
    });
    const execution = await settled(id);
    const csv = await resultCsv(id);
    const lines = csv.split("\n");

    expect(execution.Status?.State).toBe("SUCCEEDED");
    expect(csv.length).toBeGreaterThan(5 * 1024 * 1024);
    expect(lines).toHaveLength(60002);
    expect(lines[1]).toBe(`"0","${"x".repeat(100)}"`);
    expect(lines[60000]).toBe(`"59999","${"x".repeat(100)}"`);
    expect(csvEvents[0]?.Records[0]?.s3.object.eTag).toMatch(/-2$/);
  });

  describe("GetQueryResults", () => {
    it("pages through the result with the header first and NULL as no value", async () => {
      const id = await start({
        QueryString:
          "SELECT creative_id, ad_size FROM daily_aggregates WHERE report_date = DATE '2025-12-10' ORDER BY creative_id",
      });
      await settled(id);

      const first = await client.send(
        new GetQueryResultsCommand({ QueryExecutionId: id, MaxResults: 3 }),
      );
      const second = await client.send(
        new GetQueryResultsCommand({
          QueryExecutionId: id,
          MaxResults: 3,
          NextToken: first.NextToken,
        }),
      );
      const values = (page: typeof first) =>
        (page.ResultSet?.Rows ?? []).map((row) =>
          (row.Data ?? []).map((datum) => datum.VarCharValue ?? null),
        );

      expect(values(first)).toEqual([
        ["creative_id", "ad_size"],
        ["cr-a", null],
        ["cr-b", "728x90"],
      ]);
      expect(values(second)).toEqual([
        ["cr-z", "300x250"],
        ["cr-zero", "300x250"],
      ]);
      expect(second.NextToken).toBeUndefined();
      expect(
        first.ResultSet?.ResultSetMetadata?.ColumnInfo?.map((column) => [column.Name, column.Type]),
      ).toEqual([
        ["creative_id", "varchar"],
        ["ad_size", "varchar"],
      ]);
    });

    it("refuses results of a query that has not finished", async () => {
      athena.pauseQueue();
      const id = await start({ QueryString: "SELECT 1 AS one" });

      await expect(
        client.send(new GetQueryResultsCommand({ QueryExecutionId: id })),
      ).rejects.toMatchObject({
        name: "InvalidRequestException",
        message: "Query has not yet finished. Current state: QUEUED",
      });
      athena.resumeQueue();
    });
  });

  describe("execution parameters", () => {
    it("binds ? in order and leaves a ? inside a string literal alone", async () => {
      const id = await start({
        QueryString: "SELECT '?' AS literal, ? AS first, ? AS second -- trailing ? in a comment",
        ExecutionParameters: ["DATE '2025-12-10'", "'chi''reader'"],
      });
      await settled(id);

      expect(await resultCsv(id)).toBe(
        '"literal","first","second"\n"?","2025-12-10","chi\'reader"\n',
      );
    });

    it("fails the query as Athena does when the count does not match", async () => {
      const id = await start({
        QueryString: "SELECT ? AS a, ? AS b",
        ExecutionParameters: ["1"],
      });
      const execution = await settled(id);

      expect(execution.Status?.State).toBe("FAILED");
      expect(execution.Status?.StateChangeReason).toContain(
        "Incorrect number of parameters: expected 2 but found 1",
      );
      expect(execution.Status?.AthenaError).toMatchObject({
        ErrorCategory: 2,
        ErrorType: 1006,
        Retryable: false,
      });
      expect(await resultKeys()).toEqual([]);
    });

    it("binds a value as one expression, so a value carrying a second statement fails", async () => {
      const id = await start({
        QueryString: "SELECT count(*) AS n FROM daily_aggregates WHERE publication_code = ?",
        ExecutionParameters: ["'x'; DROP TABLE ad_tracking.daily_aggregates"],
      });
      const execution = await settled(id);
      const check = await start({ QueryString: "SELECT count(*) AS n FROM daily_aggregates" });
      await settled(check);

      expect(execution.Status?.State).toBe("FAILED");
      expect(await resultCsv(check)).toBe('"n"\n"7"\n');
    });
  });

  describe("ClientRequestToken", () => {
    it("returns the same query for the same token and runs it once", async () => {
      const token = "a".repeat(64);
      const first = await start({ QueryString: "SELECT 1 AS one", ClientRequestToken: token });
      await settled(first);
      const second = await start({ QueryString: "SELECT 1 AS one", ClientRequestToken: token });
      await settled(second);

      expect(second).toBe(first);
      expect(athena.executions()).toHaveLength(1);
      expect(csvEvents).toHaveLength(1);
    });

    it("refuses a token reused for a different request", async () => {
      const token = "b".repeat(64);
      await start({ QueryString: "SELECT 1 AS one", ClientRequestToken: token });

      await expect(
        start({ QueryString: "SELECT 2 AS two", ClientRequestToken: token }),
      ).rejects.toMatchObject({
        name: "InvalidRequestException",
      });
    });

    it("gives calls without a token separate queries (the SDK invents one each time)", async () => {
      const first = await start({ QueryString: "SELECT 1 AS one" });
      const second = await start({ QueryString: "SELECT 1 AS one" });
      await settled(second);

      expect(second).not.toBe(first);
      expect(csvEvents).toHaveLength(2);
    });
  });

  describe("result reuse", () => {
    it("runs again when reuse is disabled, and reuses without writing a file when enabled", async () => {
      const query = "SELECT 1 AS one";
      const first = await start({ QueryString: query });
      await settled(first);
      const disabled = await start({
        QueryString: query,
        ResultReuseConfiguration: { ResultReuseByAgeConfiguration: { Enabled: false } },
      });
      await settled(disabled);
      const enabled = await start({
        QueryString: query,
        ResultReuseConfiguration: {
          ResultReuseByAgeConfiguration: { Enabled: true, MaxAgeInMinutes: 60 },
        },
      });
      const reused = await settled(enabled);

      expect(csvEvents).toHaveLength(2);
      expect(reused.Status?.State).toBe("SUCCEEDED");
      expect(reused.Statistics?.ResultReuseInformation?.ReusedPreviousResult).toBe(true);
      expect(reused.ResultConfiguration?.OutputLocation).toBe(`${OUTPUT}${disabled}.csv`);
    });
  });

  describe("failures and state changes", () => {
    it("ends failed SQL in FAILED with the engine's message and writes nothing", async () => {
      const id = await start({ QueryString: "SELECT no_such_column FROM daily_aggregates" });
      const execution = await settled(id);

      expect(execution.Status?.State).toBe("FAILED");
      expect(execution.Status?.StateChangeReason).toContain("no_such_column");
      expect(execution.Status?.AthenaError?.ErrorCategory).toBe(2);
      expect(await resultKeys()).toEqual([]);
      expect(csvEvents).toEqual([]);
    });

    it("emits EventBridge-shaped state changes QUEUED → RUNNING → terminal", async () => {
      const ok = await start({ QueryString: "SELECT 1 AS one" });
      await settled(ok);
      const bad = await start({ QueryString: "SELECT FROM WHERE" });
      await settled(bad);

      const of = (id: string) =>
        stateChanges
          .filter((event) => event.detail.queryExecutionId === id)
          .map((event) => [
            event.detail.previousState,
            event.detail.currentState,
            event.detail.sequenceNumber,
          ]);
      expect(of(ok)).toEqual([
        [undefined, "QUEUED", "1"],
        ["QUEUED", "RUNNING", "2"],
        ["RUNNING", "SUCCEEDED", "3"],
      ]);
      expect(of(bad).at(-1)).toEqual(["RUNNING", "FAILED", "3"]);
      const failed = stateChanges.find((event) => event.detail.currentState === "FAILED");
      expect(failed).toMatchObject({
        version: "0",
        source: "aws.athena",
        "detail-type": "Athena Query State Change",
        region: "us-east-1",
        detail: {
          versionId: "0",
          statementType: "DML",
          workgroupName: WORKGROUP,
          athenaError: { errorCategory: 2, retryable: false },
        },
      });
    });

    it("cancels a queued query on StopQueryExecution without writing a result", async () => {
      athena.pauseQueue();
      const id = await start({ QueryString: "SELECT 1 AS one" });
      const queued = await client.send(new GetQueryExecutionCommand({ QueryExecutionId: id }));

      await client.send(new StopQueryExecutionCommand({ QueryExecutionId: id }));
      athena.resumeQueue();
      const execution = await settled(id);

      expect(queued.QueryExecution?.Status?.State).toBe("QUEUED");
      expect(execution.Status?.State).toBe("CANCELLED");
      expect(await resultKeys()).toEqual([]);
    });

    it("answers unknown ids and work groups with InvalidRequestException", async () => {
      await expect(
        client.send(
          new GetQueryExecutionCommand({
            QueryExecutionId: "00000000-0000-0000-0000-000000000000",
          }),
        ),
      ).rejects.toMatchObject({ name: "InvalidRequestException" });
      await expect(start({ QueryString: "SELECT 1", WorkGroup: "nope" })).rejects.toMatchObject({
        name: "InvalidRequestException",
      });
    });

    it("describes its work groups", async () => {
      const response = await client.send(new GetWorkGroupCommand({ WorkGroup: WORKGROUP }));

      expect(response.WorkGroup?.Configuration?.ResultConfiguration?.OutputLocation).toBe(OUTPUT);
      expect(response.WorkGroup?.Configuration?.EnforceWorkGroupConfiguration).toBe(true);
    });
  });

  describe("the start Lambda's Athena adapter", () => {
    afterEach(() => {
      vi.unstubAllEnvs();
    });

    it("reaches the stand-in through AWS_ENDPOINT_URL_ATHENA alone", async () => {
      vi.stubEnv("AWS_ENDPOINT_URL_ATHENA", athena.endpoint);
      for (const [name, value] of Object.entries(s3.env)) vi.stubEnv(name, value);
      const adapterClient = new AthenaClient({});
      const queries = createAthenaQueryStarter(adapterClient, {
        workgroup: WORKGROUP,
        database: "ad_tracking",
        outputLocation: OUTPUT,
      });

      const id = await queries.start({
        query: buildSyncQuery({
          database: "ad_tracking",
          table: "daily_aggregates",
          dateRange: { start: "2025-12-12", end: "2025-12-12" },
        }),
        clientRequestToken: "c".repeat(64),
      });
      await settled(id);
      const failedId = await queries.start({
        query: { queryString: "SELECT ? AS x", executionParameters: [] },
        clientRequestToken: "d".repeat(64),
      });
      await settled(failedId);
      const failure = await queries.describeFailure(failedId);
      adapterClient.destroy();

      expect(await resultCsv(id)).toContain('"2025-12-12","cr-late","chireader"');
      expect(failure).toMatchObject({ errorType: 1006, retryable: false });
      expect(failure.reason).toContain("Incorrect number of parameters");
    });
  });
});
