import { describe, expect, it } from "vitest";
import {
  type BenchFigures,
  checkTargets,
  comparisonRows,
  computeRatios,
  type IngestFigures,
  median,
} from "../../bench/lib/ratios";

const MB = 1024 * 1024;

function ingestRun(overrides: Partial<IngestFigures> = {}): IngestFigures {
  return {
    rows: 1_000_000,
    latencyMs: 0,
    wallSeconds: 10,
    cpuSeconds: 6,
    maxRssBytes: 150 * MB,
    commands: 1_100,
    commandsByName: { update: 1_000, find: 100 },
    synced: 950_000,
    skipped: 49_000,
    errors: 1_000,
    ...overrides,
  };
}

function figures(overrides: Partial<BenchFigures> = {}): BenchFigures {
  return {
    parse: { rows: 1_000_000, cpuSeconds: 4, wallSeconds: 4, passes: 3 },
    ingest: ingestRun(),
    ingestAtLatency: ingestRun({ latencyMs: 5, wallSeconds: 12, cpuSeconds: 6.5 }),
    ingestSmall: ingestRun({ rows: 100_000, maxRssBytes: 140 * MB }),
    baseline: { rows: 2_000, latencyMs: 5, wallSeconds: 40, commands: 6_000 },
    ...overrides,
  };
}

describe("computeRatios", () => {
  it("divides per-row CPU of the ingest by the parser's", () => {
    const ratios = computeRatios(figures());
    expect(ratios.cpuVsParser).toBeCloseTo(1.5);
    expect(ratios.cpuVsParserAtLatency).toBeCloseTo(1.625);
    expect(ratios.ingestCpuSecondsPerMillionRows).toBeCloseTo(6);
    expect(ratios.parseCpuMicrosPerRow).toBeCloseTo(4);
  });

  it("compares per-row CPU even when the parser read another number of rows", () => {
    const ratios = computeRatios(
      figures({ parse: { rows: 500_000, cpuSeconds: 2, wallSeconds: 2, passes: 3 } }),
    );
    expect(ratios.cpuVsParser).toBeCloseTo(1.5);
  });

  it("counts commands per 10,000 rows", () => {
    expect(computeRatios(figures()).commandsPer10kRows).toBeCloseTo(11);
  });

  it("divides rows/s at latency by the baseline's rows/s", () => {
    const ratios = computeRatios(figures());
    expect(ratios.baselineRowsPerSecond).toBeCloseTo(50);
    expect(ratios.ingestAtLatencyRowsPerSecond).toBeCloseTo(1_000_000 / 12);
    expect(ratios.speedupVsBaseline).toBeCloseTo(1_000_000 / 12 / 50);
  });

  it("bounds the baseline by its round trips alone: 1000 / (latency × commands per row)", () => {
    // 6,000 commands for 2,000 rows at 5 ms: 15 ms a row at best, 66.7 rows/s.
    const ratios = computeRatios(figures());
    expect(ratios.baselineLatencyBoundRowsPerSecond).toBeCloseTo(1000 / 15);
    expect(ratios.speedupVsLatencyBoundBaseline).toBeCloseTo(1_000_000 / 12 / (1000 / 15));
  });

  it("has no latency bound for a baseline at 0 ms", () => {
    const ratios = computeRatios(
      figures({ baseline: { rows: 2_000, latencyMs: 0, wallSeconds: 4, commands: 6_000 } }),
    );
    expect(ratios.baselineLatencyBoundRowsPerSecond).toBeNull();
    expect(ratios.speedupVsLatencyBoundBaseline).toBeNull();
  });

  it("states the latency slowdown as the fraction of 0 ms throughput lost", () => {
    // 10 s at 0 ms, 12 s at latency: the 0 ms run is 1.2 × as fast, i.e. 20% slower at latency.
    expect(computeRatios(figures()).latencySlowdown).toBeCloseTo(0.2);
  });

  it("takes the larger peak RSS of the two full runs against the smaller run", () => {
    const ratios = computeRatios(
      figures({ ingestAtLatency: ingestRun({ latencyMs: 5, maxRssBytes: 168 * MB }) }),
    );
    expect(ratios.peakRssMb).toBeCloseTo(168);
    expect(ratios.rssVsSmall).toBeCloseTo(1.2);
  });
});

describe("checkTargets", () => {
  it("meets every target when the figures are within them", () => {
    const checks = checkTargets(computeRatios(figures()));
    expect(checks.map((check) => check.met)).toEqual([true, true, true, true, true, true]);
  });

  it("says by how much a target is missed", () => {
    const checks = checkTargets(
      computeRatios(figures({ ingest: ingestRun({ cpuSeconds: 10, commands: 3_000 }) })),
    );
    const cpu = checks.find((check) => check.name.startsWith("ingest CPU"));
    const commands = checks.find((check) => check.name.startsWith("MongoDB commands"));
    expect(cpu).toMatchObject({ met: false, target: "≤ 2" });
    expect(cpu?.missBy).toBeCloseTo(0.25);
    expect(commands).toMatchObject({ met: false });
    expect(commands?.missBy).toBeCloseTo(1);
  });

  it("measures a too-slow ingest against the 1000× speedup as a shortfall", () => {
    const checks = checkTargets(
      computeRatios(figures({ ingestAtLatency: ingestRun({ latencyMs: 5, wallSeconds: 100 }) })),
    );
    const speedup = checks.find((check) => check.name.includes("baseline"));
    expect(speedup?.met).toBe(false);
    expect(speedup?.missBy).toBeCloseTo(0.8);
  });
});

describe("median and comparisonRows", () => {
  it("takes the middle value, or the mean of the two middle ones", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(() => median([])).toThrow(RangeError);
  });

  it("compares a 1M-row run with 100,000 rows and small runs with a tenth", () => {
    expect(comparisonRows(1_000_000)).toBe(100_000);
    expect(comparisonRows(200_000)).toBe(100_000);
    expect(comparisonRows(50_000)).toBe(5_000);
    expect(comparisonRows(5_000)).toBe(1_000);
  });
});
