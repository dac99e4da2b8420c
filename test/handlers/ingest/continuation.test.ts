import { describe, expect, it } from "vitest";
import {
  type ContinuationState,
  deadlinePassed,
  isContinuationEvent,
  loadContinuationConfig,
  parseContinuation,
  rejectsPartKey,
} from "../../../handlers/ingest/continuation";
import { ConfigurationError } from "../../../handlers/shared/errors";

function state(overrides: Partial<ContinuationState> = {}): ContinuationState {
  return {
    version: 1,
    object: {
      bucket: "results",
      key: "reprocess/big.csv",
      size: 1000,
      eTag: "abc",
      versionId: undefined,
      sequencer: undefined,
      eventName: "ObjectCreated:Put",
    },
    source: { eTag: '"abc"', size: 1000 },
    startedAt: "2025-12-11T06:00:00.000Z",
    chain: "0b6f1a2c-3d4e-4f50-8a6b-7c8d9e0f1a2b",
    continuation: 1,
    checkpoint: { rows: 10, byteOffset: 400, line: 12 },
    header: ["report_date", "creative_id"],
    run: {
      dryRun: false,
      dryRunSource: undefined,
      queryExecutionId: undefined,
      manifest: undefined,
    },
    tally: {
      synced: 10,
      skipped: 0,
      errors: 0,
      inserted: 10,
      updated: 0,
      unchanged: 0,
      skippedByReason: {},
      errorsByReason: {},
      warnings: {},
      fieldChanges: {},
    },
    rejects: { rows: 0, parts: [] },
    lookupQueries: 1,
    writeBatches: 2,
    ...overrides,
  };
}

describe("parseContinuation", () => {
  it("accepts the state a hand-over sends, after a JSON round trip", () => {
    const sent = { trackingSyncContinuation: state() };

    const received = JSON.parse(JSON.stringify(sent));

    expect(isContinuationEvent(received)).toBe(true);
    expect(parseContinuation(received)).toEqual(JSON.parse(JSON.stringify(state())));
  });

  it.each([
    ["another version", { version: 2 as 1 }],
    ["a checkpoint at the start of the file", { checkpoint: { rows: 0, byteOffset: 0, line: 1 } }],
    ["a checkpoint past the end", { checkpoint: { rows: 10, byteOffset: 1000, line: 12 } }],
    ["no header", { header: [] }],
    ["a chain id that is not a UUID", { chain: "../../x" }],
    ["no continuation count", { continuation: 0 }],
  ])("refuses %s", (_, overrides) => {
    expect(() => parseContinuation({ trackingSyncContinuation: state(overrides) })).toThrow(
      /Invalid continuation event/,
    );
  });

  it("tells S3 events apart from continuation events", () => {
    expect(isContinuationEvent({ Records: [] })).toBe(false);
    expect(isContinuationEvent(null)).toBe(false);
  });
});

describe("continuation configuration and deadline", () => {
  it("keeps 75 s back by default and continues only inside Lambda", () => {
    expect(loadContinuationConfig({})).toEqual({ marginMs: 75_000, functionName: undefined });
    expect(
      loadContinuationConfig({ CONTINUATION_MARGIN_MS: "5000", AWS_LAMBDA_FUNCTION_NAME: "f" }),
    ).toEqual({ marginMs: 5_000, functionName: "f" });
    expect(() => loadContinuationConfig({ CONTINUATION_MARGIN_MS: "soon" })).toThrow(
      ConfigurationError,
    );
  });

  it("passes the deadline once the time left is below the margin, never without a context", () => {
    let left = 61_000;
    const passed = deadlinePassed({ getRemainingTimeInMillis: () => left }, 60_000);

    expect(passed()).toBe(false);
    left = 59_999;
    expect(passed()).toBe(true);
    expect(deadlinePassed(undefined, 60_000)()).toBe(false);
  });

  it("names rejects parts beside the rejects object, never under an ingest prefix", () => {
    expect(rejectsPartKey("reprocess/big.csv", "c", 2)).toBe("rejects/reprocess/big.csv.part-c-2");
  });
});
