import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type ContinuationState, parseContinuation } from "../../../handlers/ingest/continuation";
import { FileRun } from "../../../handlers/ingest/file-run";
import type { RunOptions } from "../../../handlers/ingest/run-options";
import { objectRef } from "./fakes";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const realRun: RunOptions = {
  dryRun: false,
  dryRunSource: undefined,
  queryExecutionId: undefined,
  manifest: undefined,
};

/** A fresh run that has read its header and options and committed one batch of 3 rows. */
function runAfterOneBatch(object = objectRef("reprocess/big.csv")): FileRun {
  const run = FileRun.start(object);
  run.options = realRun;
  run.header = ["report_date", "creative_id", "impressions"];
  run.source = { eTag: '"v1"', size: 1000 };
  run.tally.synced = 2;
  run.tally.inserted = 2;
  run.tally.skip("order-not-found");
  run.tally.seeDate("2025-12-09");
  run.tally.seeDate("2025-12-10");
  run.checkpoint = { rows: 3, byteOffset: 300, line: 5 };
  run.countLookupQueries(2);
  run.countWriteBatch();
  return run;
}

/** The state as the next invocation receives it: through JSON and the parser. */
function handedOver(state: ContinuationState): ContinuationState {
  return parseContinuation(JSON.parse(JSON.stringify({ trackingSyncContinuation: state })));
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(new Date("2025-12-11T06:00:00.000Z"));
});
afterEach(() => {
  vi.useRealTimers();
});

describe("a fresh FileRun", () => {
  it("starts at the top of the file, in the first invocation, with no chain", () => {
    const run = FileRun.start(objectRef("reprocess/a.csv"));

    expect(run.resumed).toBe(false);
    expect(run.invocation).toBe(1);
    expect(run.chain).toBeUndefined();
    expect(run.readFrom).toBeUndefined();
    expect(run.checkpoint).toEqual({ rows: 0, byteOffset: 0, line: 1 });
    expect(run.earlierRejects).toEqual({ rows: 0, parts: [] });
  });

  it("reports one invocation, its own counters and the time it started", () => {
    const run = runAfterOneBatch();
    run.countWriteBatch();
    vi.setSystemTime(new Date("2025-12-11T06:00:05.000Z"));

    const report = run.report({ outcome: "synced" });

    expect(report).toMatchObject({
      success: true,
      outcome: "synced",
      invocations: 1,
      dryRun: false,
      progress: { rows: 3, byteOffset: 300, line: 5 },
      lookupQueries: 2,
      writeBatches: 2,
      stats: { rowsFromAthena: 3, synced: 2, skipped: 1, errors: 0 },
      dateRange: { start: "2025-12-09", end: "2025-12-10" },
      startedAt: "2025-12-11T06:00:00.000Z",
      finishedAt: "2025-12-11T06:00:05.000Z",
      duration: 5000,
    });
    expect(report).not.toHaveProperty("fieldChanges");
  });

  it("reports a dry run, and why, from its run options", () => {
    const run = FileRun.start(objectRef("reprocess/a.csv"));
    run.options = { ...realRun, dryRun: true, dryRunSource: "tag" };

    const report = run.report({ outcome: "synced" });

    expect(report.dryRun).toBe(true);
    expect(report.dryRunSource).toBe("tag");
    expect(report.fieldChanges).toEqual({});
  });

  it("reports a real run while its options are still unknown", () => {
    const run = FileRun.start(objectRef("reprocess/a.csv"));

    const report = run.report({ outcome: "failed", error: "tags unreadable" });

    expect(report).toMatchObject({ success: false, dryRun: false, error: "tags unreadable" });
    expect(report).not.toHaveProperty("dryRunSource");
  });

  it("knows it has more to read while the checkpoint is short of the object's end", () => {
    const run = runAfterOneBatch();

    const before = run.hasMore;
    run.checkpoint = { rows: 9, byteOffset: 1000, line: 11 };

    expect(before).toBe(true);
    expect(run.hasMore).toBe(false);
  });

  it("refuses a continuation state before its header and options are read", () => {
    const run = FileRun.start(objectRef("reprocess/a.csv"));
    const withOptionsOnly = FileRun.start(objectRef("reprocess/a.csv"));
    withOptionsOnly.options = realRun;

    expect(() => run.continuationState({ rows: 0, parts: [] })).toThrow(
      /only once its header and options are read/,
    );
    expect(() => withOptionsOnly.continuationState({ rows: 0, parts: [] })).toThrow(
      /only once its header and options are read/,
    );
  });
});

describe("the chain of a FileRun", () => {
  it("is named once, at the first hand-over, and stays the same within the run", () => {
    const run = runAfterOneBatch();

    const first = run.chainForHandOver();
    const second = run.chainForHandOver();
    const state = run.continuationState({ rows: 0, parts: [] });

    expect(first).toMatch(UUID);
    expect(second).toBe(first);
    expect(state.chain).toBe(first);
  });

  it("differs between two runs of the same object", () => {
    const one = runAfterOneBatch();
    const other = runAfterOneBatch();

    expect(one.chainForHandOver()).not.toBe(other.chainForHandOver());
  });

  it("is reused by the run resumed from its state", () => {
    const first = runAfterOneBatch();
    const state = handedOver(first.continuationState({ rows: 0, parts: [] }));

    const resumed = FileRun.resume(state);

    expect(resumed.chain).toBe(state.chain);
    expect(resumed.chainForHandOver()).toBe(state.chain);
    expect(resumed.continuationState({ rows: 0, parts: [] }).chain).toBe(state.chain);
  });
});

describe("a resumed FileRun", () => {
  it("round-trips its continuation state through parseContinuation", () => {
    const run = runAfterOneBatch();
    const rejects = { rows: 4, parts: [120] };

    const state = run.continuationState(rejects);

    expect(handedOver(state)).toEqual(JSON.parse(JSON.stringify(state)));
    expect(state).toMatchObject({
      version: 1,
      source: { eTag: '"v1"', size: 1000 },
      startedAt: "2025-12-11T06:00:00.000Z",
      continuation: 1,
      checkpoint: { rows: 3, byteOffset: 300, line: 5 },
      header: ["report_date", "creative_id", "impressions"],
      run: { dryRun: false },
      tally: { synced: 2, skipped: 1, inserted: 2, skippedByReason: { "order-not-found": 1 } },
      rejects,
      lookupQueries: 2,
      writeBatches: 1,
    });
  });

  it("takes its position, header, options, source and rejects from the state", () => {
    const state = handedOver(runAfterOneBatch().continuationState({ rows: 4, parts: [120] }));

    const resumed = FileRun.resume(state);

    expect(resumed.resumed).toBe(true);
    expect(resumed.invocation).toBe(2);
    expect(resumed.checkpoint).toEqual({ rows: 3, byteOffset: 300, line: 5 });
    expect(resumed.header).toEqual(["report_date", "creative_id", "impressions"]);
    expect(resumed.options).toEqual(state.run);
    expect(resumed.source).toEqual({ eTag: '"v1"', size: 1000 });
    expect(resumed.readFrom).toEqual({ byteOffset: 300, eTag: '"v1"' });
    expect(resumed.earlierRejects).toEqual({ rows: 4, parts: [120] });
  });

  it("keeps counting from the earlier invocations: tally, lookups and batches summed", () => {
    const state = handedOver(runAfterOneBatch().continuationState({ rows: 0, parts: [] }));
    const resumed = FileRun.resume(state);

    resumed.tally.synced += 5;
    resumed.tally.inserted += 5;
    resumed.countLookupQueries(1);
    resumed.countWriteBatch();
    resumed.countWriteBatch();
    const report = resumed.report({ outcome: "synced" });

    expect(report).toMatchObject({
      invocations: 2,
      stats: { rowsFromAthena: 8, synced: 7, skipped: 1, errors: 0 },
      inserted: 7,
      skippedByReason: { "order-not-found": 1 },
      dateRange: { start: "2025-12-09", end: "2025-12-10" },
      lookupQueries: 3,
      writeBatches: 3,
    });
  });

  it("keeps the first invocation's start, so the duration covers the whole file", () => {
    const state = handedOver(runAfterOneBatch().continuationState({ rows: 0, parts: [] }));
    vi.setSystemTime(new Date("2025-12-11T06:04:00.000Z"));

    const report = FileRun.resume(state).report({ outcome: "synced" });

    expect(report.startedAt).toBe("2025-12-11T06:00:00.000Z");
    expect(report.finishedAt).toBe("2025-12-11T06:04:00.000Z");
    expect(report.duration).toBe(240_000);
  });

  it("hands over again as the next invocation of the chain, with the totals so far", () => {
    const state = handedOver(runAfterOneBatch().continuationState({ rows: 0, parts: [] }));
    const resumed = FileRun.resume(state);
    resumed.countLookupQueries(1);
    resumed.countWriteBatch();
    resumed.checkpoint = { rows: 6, byteOffset: 600, line: 8 };

    const next = resumed.continuationState({ rows: 1, parts: [50] });

    expect(next).toMatchObject({
      chain: state.chain,
      continuation: 2,
      startedAt: state.startedAt,
      checkpoint: { rows: 6, byteOffset: 600, line: 8 },
      lookupQueries: 3,
      writeBatches: 2,
    });
    expect(FileRun.resume(handedOver(next)).invocation).toBe(3);
  });
});
