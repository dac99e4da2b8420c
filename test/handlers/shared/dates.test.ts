import { describe, expect, it } from "vitest";
import {
  addDays,
  daysBetween,
  endOfDay,
  isCalendarDate,
  startOfDay,
} from "../../../handlers/shared/dates";

describe("isCalendarDate", () => {
  it.each(["2025-12-10", "2024-02-29", "2000-02-29"])("accepts the real date %s", (value) => {
    expect(isCalendarDate(value)).toBe(true);
  });

  it.each([
    "2025-02-29",
    "1900-02-29",
    "2025-13-01",
    "2025-04-31",
    "2025-1-01",
    "20251210",
    "",
    "2025-12-10T00:00:00Z",
  ])("rejects %j", (value) => {
    expect(isCalendarDate(value)).toBe(false);
  });
});

describe("day arithmetic", () => {
  it("crosses month and year boundaries in UTC", () => {
    expect(addDays("2025-12-31", 1)).toBe("2026-01-01");
    expect(addDays("2024-03-01", -1)).toBe("2024-02-29");
    expect(daysBetween("2025-12-25", "2026-01-01")).toBe(7);
  });

  it("spans a report day from its first to its last millisecond", () => {
    expect(startOfDay("2025-12-10").toISOString()).toBe("2025-12-10T00:00:00.000Z");
    expect(endOfDay("2025-12-10").toISOString()).toBe("2025-12-10T23:59:59.999Z");
  });
});
