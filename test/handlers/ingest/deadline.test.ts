import { describe, expect, it } from "vitest";
import { deadlinePassed } from "../../../handlers/ingest/ingest-event";

describe("deadlinePassed", () => {
  it("passes the deadline once the time left is below the margin, never without a context", () => {
    let left = 61_000;
    const passed = deadlinePassed({ getRemainingTimeInMillis: () => left }, 60_000);

    expect(passed()).toBe(false);
    left = 59_999;
    expect(passed()).toBe(true);
    expect(deadlinePassed(undefined, 60_000)()).toBe(false);
  });
});
