import { describe, expect, it } from "vitest";
import { athena, lambdaContext, s3, sqs, useStartHandler } from "./harness";

const { handler } = useStartHandler();

const refused: Array<[string, unknown, RegExp]> = [
  ["an unknown field", { date: "2025-12-01", limit: 5 }, /unknown field "limit"/],
  ["several unknown fields", { foo: 1, bar: 2 }, /unknown fields "foo", "bar"/],
  [
    "a date that does not exist",
    { date: "2025-02-30" },
    /date must be a real calendar date.*2025-02-30/,
  ],
  ["month 13", { date: "2025-13-01" }, /real calendar date/],
  ["a date in another format", { date: "12/10/2025" }, /real calendar date/],
  ["a date with a time", { date: "2025-12-10T00:00:00Z" }, /real calendar date/],
  ["a numeric date", { date: 20251210 }, /real calendar date/],
  [
    "a date in the future",
    { date: "2025-12-12" },
    /date 2025-12-12 is in the future \(today is 2025-12-11 UTC\)/,
  ],
  ["a range ending in the future", { date: "2026-01-05", days: 3 }, /is in the future/],
  ["days of 0", { days: 0 }, /days must be a whole number from 1 to 90, got 0/],
  ["days above the cap", { days: 91 }, /from 1 to 90, got 91/],
  ["fractional days", { days: 1.5 }, /whole number/],
  ["days as a string", { days: "7" }, /whole number.*"7"/],
  [
    "a publication code with a space",
    { publicationCode: "chi reader" },
    /publicationCode must be 1-64 letters/,
  ],
  ["a publication code with a quote", { publicationCode: "chi'reader" }, /publicationCode/],
  ["an empty publication code", { publicationCode: "" }, /publicationCode/],
  ["a 65-character publication code", { publicationCode: "a".repeat(65) }, /publicationCode/],
  ["a numeric publication code", { publicationCode: 1035 }, /publicationCode/],
  ["dryRun as a string", { dryRun: "true" }, /dryRun must be true or false/],
  [
    "a range reaching before year 100",
    { date: "0100-01-10", days: 90 },
    /90 days ending 0100-01-10 start before year 100/,
  ],
  ["an array", [{ days: 1 }], /must be a JSON object/],
  ["a string", "2025-12-10", /must be a JSON object/],
];

describe("a manual request that fails validation", () => {
  it.each(refused)("is refused for %s, and nothing is started", async (_name, payload, message) => {
    const result = await handler(payload, lambdaContext());

    expect(result).toMatchObject({
      success: false,
      dryRun: false,
      dateRange: { start: "", end: "" },
    });
    expect((result as { error?: string }).error).toMatch(message);
    expect(result).not.toHaveProperty("queryExecutionId");
    expect(athena.calls()).toHaveLength(0);
    expect(s3.calls()).toHaveLength(0);
    expect(sqs.calls()).toHaveLength(0);
  });

  it("names every problem in one message", async () => {
    const result = await handler(
      { date: "2025-02-30", days: 0, publicationCode: "x y", dryRun: 1, extra: true },
      lambdaContext(),
    );
    const error = (result as { error?: string }).error ?? "";
    for (const field of [
      'unknown field "extra"',
      "date must",
      "days must",
      "publicationCode must",
      "dryRun must",
    ]) {
      expect(error).toContain(field);
    }
  });
});

describe("a manual request at the limits", () => {
  it("accepts days at the cap and a 64-character code of letters, digits, _ and -", async () => {
    const code = `Chi_reader-2${"x".repeat(52)}`;
    const result = await handler(
      { days: 90, publicationCode: code, dryRun: true },
      lambdaContext(),
    );
    expect(result).toMatchObject({
      success: true,
      dateRange: { start: "2025-09-12", end: "2025-12-10" },
      dryRun: true,
      publicationCode: code.toLowerCase(),
    });
  });
});
