import { describe, expect, it } from "vitest";
import { lambdaContext, scheduledEvent, setToday, startCalls, useStartHandler } from "./harness";

const { handler } = useStartHandler();

async function rangeFor(payload: unknown) {
  const result = await handler(payload, lambdaContext());
  const params = startCalls().at(-1)?.ExecutionParameters;
  return { result, params };
}

describe("the start Lambda's date range (UTC)", () => {
  it("syncs yesterday when the request is empty", async () => {
    const { result, params } = await rangeFor({});
    expect(result).toMatchObject({
      success: true,
      dateRange: { start: "2025-12-10", end: "2025-12-10" },
    });
    expect(params).toEqual(["DATE '2025-12-10'", "DATE '2025-12-10'"]);
  });

  it("treats an invoke without a payload (null) as the empty request", async () => {
    const { result } = await rangeFor(null);
    expect(result).toMatchObject({
      success: true,
      dateRange: { start: "2025-12-10", end: "2025-12-10" },
    });
  });

  it("syncs the N days ending yesterday for {days: N}, one query per day", async () => {
    const { result } = await rangeFor({ days: 7 });
    expect(result).toMatchObject({ dateRange: { start: "2025-12-04", end: "2025-12-10" } });
    const days = (result as { plan: { days: { date: string }[] } }).plan.days;
    expect(days.map((day) => day.date)).toEqual([
      "2025-12-04",
      "2025-12-05",
      "2025-12-06",
      "2025-12-07",
      "2025-12-08",
      "2025-12-09",
      "2025-12-10",
    ]);
    expect(startCalls()[0]?.ExecutionParameters).toEqual([
      "DATE '2025-12-04'",
      "DATE '2025-12-04'",
    ]);
  });

  it("syncs exactly that day for {date}", async () => {
    const { result, params } = await rangeFor({ date: "2025-12-01" });
    expect(result).toMatchObject({ dateRange: { start: "2025-12-01", end: "2025-12-01" } });
    expect(params).toEqual(["DATE '2025-12-01'", "DATE '2025-12-01'"]);
  });

  it("anchors {date, days} at its end: the N days ending on date", async () => {
    const { result } = await rangeFor({ date: "2025-12-01", days: 3 });
    expect(result).toMatchObject({ dateRange: { start: "2025-11-29", end: "2025-12-01" } });
  });

  it("crosses month ends, year ends and leap days correctly", async () => {
    expect((await rangeFor({ date: "2024-03-01", days: 2 })).result).toMatchObject({
      dateRange: { start: "2024-02-29", end: "2024-03-01" },
    });
    expect((await rangeFor({ date: "2025-03-01", days: 2 })).result).toMatchObject({
      dateRange: { start: "2025-02-28", end: "2025-03-01" },
    });
    expect((await rangeFor({ date: "2025-01-02", days: 3 })).result).toMatchObject({
      dateRange: { start: "2024-12-31", end: "2025-01-02" },
    });
  });

  it("accepts today (a partial day) but nothing later", async () => {
    const { result } = await rangeFor({ date: "2025-12-11" });
    expect(result).toMatchObject({
      success: true,
      dateRange: { start: "2025-12-11", end: "2025-12-11" },
    });
  });

  it("counts days in UTC, whatever the local evening looks like", async () => {
    // 23:30 in Chicago on the 11th is already the 12th in UTC, so yesterday is the 11th.
    setToday("2025-12-12T05:30:00.000Z");
    const { result } = await rangeFor({});
    expect(result).toMatchObject({ dateRange: { start: "2025-12-11", end: "2025-12-11" } });
  });

  it("takes a scheduled run's 'yesterday' from the event time, so a late retry asks for the same day", async () => {
    setToday("2025-12-13T02:00:00.000Z");
    const result = await handler(
      scheduledEvent("5f1a6c7e-0000-4000-8000-000000000001", "2025-12-11T06:00:00Z"),
      lambdaContext(),
    );
    expect(result).toMatchObject({
      success: true,
      dateRange: { start: "2025-12-10", end: "2025-12-10" },
    });
  });
});
