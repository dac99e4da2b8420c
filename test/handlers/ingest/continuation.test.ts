import { describe, expect, it } from "vitest";
import {
  type ContinuationState,
  isContinuationEvent,
  parseContinuation,
} from "../../../handlers/ingest/continuation";

const CHAIN = "0b6f1a2c-3d4e-4f50-8a6b-7c8d9e0f1a2b";

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
    chain: CHAIN,
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
    [
      "a rejects part without a name",
      { rejects: { rows: 2, parts: [80, 40], names: [`${CHAIN}-1-0a`] } },
    ],
    [
      "a rejects part name that is no hand-over's",
      { rejects: { rows: 1, parts: [80], names: ["../x"] } },
    ],
    ["a rejects part size that is no count", { rejects: { rows: 1, parts: [-1] } }],
    [
      "a rejects part of another chain",
      { rejects: { rows: 1, parts: [80], names: ["1b6f1a2c-3d4e-4f50-8a6b-7c8d9e0f1a2b-1-0a"] } },
    ],
    [
      "one rejects part named twice",
      { rejects: { rows: 2, parts: [80, 80], names: [`${CHAIN}-1-0a`, `${CHAIN}-1-0a`] } },
    ],
  ])("refuses %s", (_, overrides) => {
    expect(() => parseContinuation({ trackingSyncContinuation: state(overrides) })).toThrow(
      /Invalid continuation event/,
    );
  });

  it("accepts rejects parts named per hand-over, and an earlier version's numbered parts", () => {
    const named = state({
      rejects: { rows: 3, parts: [80, 40], names: [`${CHAIN}-1-0a`, `${CHAIN}-2-0b`] },
    });
    const numbered = state({ rejects: { rows: 3, parts: [80, 40] } });

    expect(parseContinuation({ trackingSyncContinuation: named }).rejects).toEqual(named.rejects);
    expect(parseContinuation({ trackingSyncContinuation: numbered }).rejects).toEqual(
      numbered.rejects,
    );
  });

  it("tells S3 events apart from continuation events", () => {
    expect(isContinuationEvent({ Records: [] })).toBe(false);
    expect(isContinuationEvent(null)).toBe(false);
  });
});
