import { StartQueryExecutionCommand, StopQueryExecutionCommand } from "@aws-sdk/client-athena";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import {
  accessDenied,
  athena,
  BUCKET,
  captureLogs,
  lambdaContext,
  manifestAt,
  manifestPuts,
  queryIdForToken,
  s3,
  scheduledEvent,
  setToday,
  startCalls,
  useStartHandler,
  WORKGROUP,
} from "./harness";

const { handler, objects } = useStartHandler();

const SPEC_SQL = `SELECT
  DATE_FORMAT(report_date, '%Y-%m-%d') AS report_date,
  creative_id,
  publication_code,
  channel,
  ad_size,
  impressions,
  clicks,
  viewable_impressions,
  unique_ips
FROM ad_tracking.daily_aggregates
WHERE report_date >= ?
  AND report_date <= ?
  AND impressions > 0
ORDER BY report_date, publication_code, creative_id`;

describe("the query the start Lambda sends", () => {
  it("is the spec's SQL with the dates as typed execution parameters, in our workgroup, result reuse off", async () => {
    await handler({ date: "2025-12-10" }, lambdaContext());

    expect(athena).toHaveReceivedCommandTimes(StartQueryExecutionCommand, 1);
    expect(athena).toHaveReceivedCommandWith(StartQueryExecutionCommand, {
      QueryString: SPEC_SQL,
      ExecutionParameters: ["DATE '2025-12-10'", "DATE '2025-12-10'"],
      WorkGroup: WORKGROUP,
      QueryExecutionContext: { Catalog: "AwsDataCatalog", Database: "ad_tracking" },
      ResultConfiguration: { OutputLocation: `s3://${BUCKET}/athena-results/` },
      ResultReuseConfiguration: { ResultReuseByAgeConfiguration: { Enabled: false } },
    });
  });

  it("adds a case-insensitive publication filter whose value is a quoted, lower-cased parameter", async () => {
    const result = await handler(
      { date: "2025-12-10", publicationCode: "ChiReader" },
      lambdaContext(),
    );

    const [input] = startCalls();
    expect(input?.QueryString).toBe(
      SPEC_SQL.replace(
        "AND impressions > 0",
        "AND impressions > 0\n  AND lower(publication_code) = ?",
      ),
    );
    expect(input?.ExecutionParameters).toEqual([
      "DATE '2025-12-10'",
      "DATE '2025-12-10'",
      "'chireader'",
    ]);
    expect(result).toMatchObject({ publicationCode: "chireader" });
  });

  it("never puts a value into the SQL text", async () => {
    await handler({ date: "2025-11-03", days: 2, publicationCode: "wbez" }, lambdaContext());
    const [input] = startCalls();
    expect(input?.QueryString).not.toMatch(/2025-11|wbez/);
  });
});

describe("a started query", () => {
  it("returns the query id, range, dry-run flag and duration", async () => {
    const result = await handler({ date: "2025-12-09", dryRun: true }, lambdaContext());
    const queryExecutionId = queryIdForToken(startCalls()[0]?.ClientRequestToken);

    expect(result).toEqual({
      success: true,
      queryExecutionId,
      dateRange: { start: "2025-12-09", end: "2025-12-09" },
      dryRun: true,
      duration: expect.any(Number),
    });
  });

  it("writes the run manifest runs/<QueryExecutionId>.json that the ingest reads", async () => {
    const context = lambdaContext("req-manifest-0001");
    const result = await handler({ days: 1, publicationCode: "WBEZ", dryRun: true }, context);
    const queryExecutionId = (result as { queryExecutionId: string }).queryExecutionId;

    expect(manifestPuts()).toEqual([
      expect.objectContaining({
        Bucket: BUCKET,
        Key: `runs/${queryExecutionId}.json`,
        ContentType: "application/json",
      }),
    ]);
    expect(manifestAt(objects, queryExecutionId)).toEqual({
      version: 1,
      queryExecutionId,
      request: { days: 1, publicationCode: "WBEZ", dryRun: true },
      dateRange: { start: "2025-12-10", end: "2025-12-10" },
      publicationCode: "wbez",
      dryRun: true,
      attempt: 1,
      trigger: { kind: "manual", id: "req-manifest-0001" },
      startedAt: "2025-12-11T06:00:00.000Z",
    });
  });

  it("records a scheduled run as {} with the schedule's event id as trigger", async () => {
    const result = await handler(
      scheduledEvent("sched-event-1", "2025-12-11T06:00:00Z"),
      lambdaContext(),
    );
    const manifest = manifestAt(objects, (result as { queryExecutionId: string }).queryExecutionId);
    expect(manifest).toMatchObject({
      request: {},
      dryRun: false,
      attempt: 1,
      trigger: { kind: "schedule", id: "sched-event-1" },
    });
  });

  it("logs structured JSON lines, each carrying the query id once it is known", async () => {
    const { result, lines } = await captureLogs(() =>
      handler({ date: "2025-12-10" }, lambdaContext("req-log")),
    );
    const queryExecutionId = (result as { queryExecutionId: string }).queryExecutionId;

    const started = lines.find((line) => line.message === "Query started");
    expect(started).toMatchObject({
      level: "info",
      queryExecutionId,
      requestId: "req-log",
      dateRange: { start: "2025-12-10", end: "2025-12-10" },
      dryRun: false,
    });
    expect(typeof started?.timestamp).toBe("string");
  });

  it("throws (so Lambda retries with the same event) when Athena refuses, and writes no manifest", async () => {
    athena.on(StartQueryExecutionCommand).rejects(new Error("Rate exceeded"));
    await expect(handler({}, lambdaContext())).rejects.toThrow("Rate exceeded");
    expect(manifestPuts()).toHaveLength(0);
  });
});

describe("a run manifest that cannot be written", () => {
  it("stops a dry-run query, whose result would otherwise be ingested for real, and throws", async () => {
    s3.on(PutObjectCommand).rejects(accessDenied());
    await expect(handler({ dryRun: true }, lambdaContext())).rejects.toThrow("Access Denied");
    const queryExecutionId = queryIdForToken(startCalls()[0]?.ClientRequestToken);
    expect(athena).toHaveReceivedCommandWith(StopQueryExecutionCommand, {
      QueryExecutionId: queryExecutionId,
    });
  });

  it("leaves a real query running (its result is ingested as a real run either way) and throws", async () => {
    s3.on(PutObjectCommand).rejects(accessDenied());
    await expect(handler({}, lambdaContext())).rejects.toThrow("Access Denied");
    expect(athena).not.toHaveReceivedCommand(StopQueryExecutionCommand);
  });
});

describe("the ClientRequestToken", () => {
  it("is a 64-character sha256 hex, within Athena's 32-128", async () => {
    await handler({}, lambdaContext());
    expect(startCalls()[0]?.ClientRequestToken).toMatch(/^[0-9a-f]{64}$/);
  });

  it("is the same when the same manual invoke is delivered twice, so one query runs", async () => {
    const first = await handler({ date: "2025-12-08" }, lambdaContext("req-same"));
    const second = await handler({ date: "2025-12-08" }, lambdaContext("req-same"));

    const [a, b] = startCalls();
    expect(a?.ClientRequestToken).toBe(b?.ClientRequestToken);
    expect(second).toMatchObject({
      queryExecutionId: (first as { queryExecutionId: string }).queryExecutionId,
    });
    // The second delivery found the manifest and left it alone.
    expect(manifestPuts()).toHaveLength(1);
  });

  it("is the same when the same scheduled event is delivered twice", async () => {
    const event = scheduledEvent("sched-dup", "2025-12-11T06:00:00Z");
    await handler(event, lambdaContext("req-1"));
    setToday("2025-12-11T06:03:00.000Z");
    await handler(event, lambdaContext("req-2"));

    const [a, b] = startCalls();
    expect(a?.ClientRequestToken).toBe(b?.ClientRequestToken);
  });

  it("differs for a different invoke, a different request, a different trigger kind", async () => {
    await handler({ days: 3 }, lambdaContext("req-a"));
    await handler({ days: 3 }, lambdaContext("req-b"));
    await handler({ days: 4 }, lambdaContext("req-a"));
    await handler({ days: 3, dryRun: true }, lambdaContext("req-a"));
    await handler({ days: 3, publicationCode: "wbez" }, lambdaContext("req-a"));
    await handler(scheduledEvent("req-a", "2025-12-11T06:00:00Z"), lambdaContext("req-a"));

    const tokens = startCalls().map((input) => input.ClientRequestToken);
    expect(new Set(tokens).size).toBe(tokens.length);
  });
});
