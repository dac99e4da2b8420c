import { GetObjectCommand } from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import type { Watermark } from "../../../handlers/shared/watermark";
import {
  accessDenied,
  athena,
  captureLogs,
  lambdaContext,
  s3,
  scheduledEvent,
  useStartHandler,
} from "./harness";

// Today is the 11th: yesterday the 10th, the day before yesterday the 9th.
const { handler, objects } = useStartHandler();

function watermarkAt(lastCompleteDate: string): void {
  const watermark: Watermark = {
    lastCompleteDate,
    updatedAt: "2025-12-01T06:10:00.000Z",
    queryExecutionId: "00000000-0000-4000-8000-000000000000",
    sourceKey: "athena-results/00000000-0000-4000-8000-000000000000.csv",
  };
  objects.set("state/watermark.json", JSON.stringify(watermark));
}

const nightly = () =>
  handler(scheduledEvent("sched-catch-up", "2025-12-11T06:00:00Z"), lambdaContext());

describe("catch-up from state/watermark.json", () => {
  it("syncs only yesterday when there is no watermark yet", async () => {
    expect(await nightly()).toMatchObject({
      dateRange: { start: "2025-12-10", end: "2025-12-10" },
    });
  });

  it("syncs only yesterday when the watermark is the day before yesterday", async () => {
    watermarkAt("2025-12-09");
    expect(await nightly()).toMatchObject({
      dateRange: { start: "2025-12-10", end: "2025-12-10" },
    });
  });

  it("syncs only yesterday when the watermark is already at or past it", async () => {
    watermarkAt("2025-12-11");
    expect(await nightly()).toMatchObject({
      dateRange: { start: "2025-12-10", end: "2025-12-10" },
    });
  });

  it("starts the day after the watermark when nights were missed", async () => {
    watermarkAt("2025-12-05");
    const { result, lines } = await captureLogs(nightly);
    expect(result).toMatchObject({ dateRange: { start: "2025-12-06", end: "2025-12-10" } });
    expect(lines.find((line) => line.message === "Catching up missed days")).toMatchObject({
      lastCompleteDate: "2025-12-05",
      addedDays: 4,
      capped: false,
    });
  });

  it("caps the catch-up at 31 days and warns that older days need a backfill", async () => {
    watermarkAt("2025-01-01");
    const { result, lines } = await captureLogs(nightly);
    expect(result).toMatchObject({ dateRange: { start: "2025-11-10", end: "2025-12-10" } });
    expect(
      lines.some(
        (line) => line.level === "warn" && String(line.message).includes("manual backfill"),
      ),
    ).toBe(true);
  });

  it("applies to a manual request without a date, and only ever extends it", async () => {
    watermarkAt("2025-12-01");
    expect(await handler({ days: 3 }, lambdaContext("r1"))).toMatchObject({
      dateRange: { start: "2025-12-02", end: "2025-12-10" },
    });
    expect(await handler({ days: 20 }, lambdaContext("r2"))).toMatchObject({
      dateRange: { start: "2025-11-21", end: "2025-12-10" },
    });
  });

  it("does not apply to an explicit date (that means exactly this range)", async () => {
    watermarkAt("2025-11-01");
    expect(await handler({ date: "2025-12-10" }, lambdaContext())).toMatchObject({
      dateRange: { start: "2025-12-10", end: "2025-12-10" },
    });
    expect(s3).not.toHaveReceivedCommandWith(GetObjectCommand, { Key: "state/watermark.json" });
  });

  it("does not apply to a publication-filtered run (the watermark covers all publications)", async () => {
    watermarkAt("2025-11-01");
    expect(await handler({ publicationCode: "wbez" }, lambdaContext())).toMatchObject({
      dateRange: { start: "2025-12-10", end: "2025-12-10" },
    });
  });

  it("runs tonight's range with a warning when the watermark is not valid JSON", async () => {
    objects.set("state/watermark.json", "{not json");
    const { result, lines } = await captureLogs(nightly);
    expect(result).toMatchObject({
      success: true,
      dateRange: { start: "2025-12-10", end: "2025-12-10" },
    });
    expect(
      lines.some(
        (line) =>
          line.level === "warn" && line.message === "Watermark unreadable; no catch-up this run",
      ),
    ).toBe(true);
  });

  it("runs tonight's range with a warning when the watermark has no lastCompleteDate", async () => {
    objects.set("state/watermark.json", JSON.stringify({ updatedAt: "x" }));
    expect(await nightly()).toMatchObject({
      success: true,
      dateRange: { start: "2025-12-10", end: "2025-12-10" },
    });
  });

  it("throws, starting nothing, when the watermark cannot be read (so Lambda retries)", async () => {
    s3.on(GetObjectCommand, { Key: "state/watermark.json" }).rejects(accessDenied());
    await expect(nightly()).rejects.toThrow("Access Denied");
    expect(athena.calls()).toHaveLength(0);
  });
});
