import { describe, expect, it } from "vitest";
import { getQueryResults } from "../../../local/athena/operations/get-query-results";
import { startQueryExecution } from "../../../local/athena/operations/start-query-execution";
import { findOperation, OPERATIONS } from "../../../local/athena/routes";

describe("the Athena operation table", () => {
  it("serves the operations the start Lambda and the AWS CLI use", () => {
    expect(Object.keys(OPERATIONS).sort()).toEqual([
      "BatchGetQueryExecution",
      "GetQueryExecution",
      "GetQueryResults",
      "GetQueryRuntimeStatistics",
      "GetWorkGroup",
      "ListQueryExecutions",
      "StartQueryExecution",
      "StopQueryExecution",
    ]);
  });

  it("finds an operation by its X-Amz-Target", () => {
    expect(findOperation("AmazonAthena.StartQueryExecution")).toBe(startQueryExecution);
    expect(findOperation("AmazonAthena.GetQueryResults")).toBe(getQueryResults);
  });

  it.each([
    "AmazonAthena.CreateWorkGroup",
    "AmazonAthena.toString",
    "AmazonAthena.",
    "GraniteServiceVersion20100801.PutMetricData",
    "StartQueryExecution",
    "",
  ])("finds nothing for %j", (target) => {
    expect(findOperation(target)).toBeUndefined();
  });
});
