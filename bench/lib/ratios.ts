/**
 * The figures one bench run measures, the ratios computed from them, and the
 * targets they are held to. Pure: no I/O, so the arithmetic is unit-tested.
 */

export interface ParseFigures {
  /** Data rows (the header is not counted). */
  rows: number;
  /** Median CPU seconds (user + system) of the passes. */
  cpuSeconds: number;
  /** Median wall seconds of the passes. */
  wallSeconds: number;
  passes: number;
}

export interface IngestFigures {
  rows: number;
  latencyMs: number;
  wallSeconds: number;
  /** CPU seconds of the ingest process during the invocation. */
  cpuSeconds: number;
  maxRssBytes: number;
  /** MongoDB commands the ingest sent, handshake and heartbeats excluded. */
  commands: number;
  commandsByName: Record<string, number>;
  synced: number;
  skipped: number;
  errors: number;
}

export interface BaselineFigures {
  rows: number;
  latencyMs: number;
  wallSeconds: number;
  commands: number;
}

export interface BenchFigures {
  parse: ParseFigures;
  /** The full file at 0 ms latency. */
  ingest: IngestFigures;
  /** The full file at the injected latency. */
  ingestAtLatency: IngestFigures;
  /** The smaller comparison file at 0 ms (for memory flatness). */
  ingestSmall: IngestFigures;
  baseline: BaselineFigures;
}

export interface Ratios {
  parseRowsPerSecond: number;
  parseCpuMicrosPerRow: number;
  ingestRowsPerSecond: number;
  ingestAtLatencyRowsPerSecond: number;
  ingestCpuSecondsPerMillionRows: number;
  ingestAtLatencyCpuSecondsPerMillionRows: number;
  /** Ingest CPU per row ÷ parser CPU per row (0 ms run). */
  cpuVsParser: number;
  /** The same at the injected latency. */
  cpuVsParserAtLatency: number;
  commandsPer10kRows: number;
  commandsPer10kRowsAtLatency: number;
  baselineRowsPerSecond: number;
  /** Ingest rows/s at latency ÷ baseline rows/s at the same latency. */
  speedupVsBaseline: number;
  /**
   * The most the row-by-row loop could do at this latency with a server that costs
   * nothing: 1000 / (latency ms × its commands per row); null at 0 ms. The embedded
   * server's own time per command makes the measured baseline slower than that, so the
   * ratio against this bound is the stricter comparison.
   */
  baselineLatencyBoundRowsPerSecond: number | null;
  speedupVsLatencyBoundBaseline: number | null;
  /** How much slower the latency run is than the 0 ms run (0.1 = 10% slower). */
  latencySlowdown: number;
  /** Largest peak RSS of the two full-file runs, MB. */
  peakRssMb: number;
  peakRssSmallMb: number;
  /** Peak RSS of the full file ÷ that of the smaller file. */
  rssVsSmall: number;
}

const MB = 1024 * 1024;

export function computeRatios(figures: BenchFigures): Ratios {
  const { parse, ingest, ingestAtLatency, ingestSmall, baseline } = figures;
  const parseCpuPerRow = parse.cpuSeconds / parse.rows;
  const cpuPerRow = (run: IngestFigures) => run.cpuSeconds / run.rows;
  const rowsPerSecond = (run: { rows: number; wallSeconds: number }) => run.rows / run.wallSeconds;
  const peakRss = Math.max(ingest.maxRssBytes, ingestAtLatency.maxRssBytes);
  const latencyBound =
    baseline.latencyMs > 0 && baseline.commands > 0
      ? 1000 / (baseline.latencyMs * (baseline.commands / baseline.rows))
      : null;
  return {
    parseRowsPerSecond: rowsPerSecond(parse),
    parseCpuMicrosPerRow: parseCpuPerRow * 1e6,
    ingestRowsPerSecond: rowsPerSecond(ingest),
    ingestAtLatencyRowsPerSecond: rowsPerSecond(ingestAtLatency),
    ingestCpuSecondsPerMillionRows: cpuPerRow(ingest) * 1e6,
    ingestAtLatencyCpuSecondsPerMillionRows: cpuPerRow(ingestAtLatency) * 1e6,
    cpuVsParser: cpuPerRow(ingest) / parseCpuPerRow,
    cpuVsParserAtLatency: cpuPerRow(ingestAtLatency) / parseCpuPerRow,
    commandsPer10kRows: (ingest.commands / ingest.rows) * 10_000,
    commandsPer10kRowsAtLatency: (ingestAtLatency.commands / ingestAtLatency.rows) * 10_000,
    baselineRowsPerSecond: rowsPerSecond(baseline),
    speedupVsBaseline: rowsPerSecond(ingestAtLatency) / rowsPerSecond(baseline),
    baselineLatencyBoundRowsPerSecond: latencyBound,
    speedupVsLatencyBoundBaseline:
      latencyBound === null ? null : rowsPerSecond(ingestAtLatency) / latencyBound,
    latencySlowdown: rowsPerSecond(ingest) / rowsPerSecond(ingestAtLatency) - 1,
    peakRssMb: peakRss / MB,
    peakRssSmallMb: ingestSmall.maxRssBytes / MB,
    rssVsSmall: peakRss / ingestSmall.maxRssBytes,
  };
}

export interface TargetCheck {
  name: string;
  /** Human wording of the target, e.g. "≤ 2.0". */
  target: string;
  value: number;
  met: boolean;
  /** How far past the target a miss is, as a fraction of the target (0 when met). */
  missBy: number;
}

function atMost(name: string, value: number, limit: number, unit = ""): TargetCheck {
  const met = value <= limit;
  return { name, target: `≤ ${limit}${unit}`, value, met, missBy: met ? 0 : value / limit - 1 };
}

function atLeast(name: string, value: number, limit: number, unit = ""): TargetCheck {
  const met = value >= limit;
  return { name, target: `≥ ${limit}${unit}`, value, met, missBy: met ? 0 : 1 - value / limit };
}

/** The targets. The 200 MB bound is stated for 1,000,000 rows. */
export function checkTargets(ratios: Ratios): TargetCheck[] {
  return [
    atMost("ingest CPU/row ÷ parser CPU/row", ratios.cpuVsParser, 2.0),
    atMost("MongoDB commands per 10,000 rows", ratios.commandsPer10kRows, 15),
    atLeast("rows/s at latency ÷ row-by-row baseline", ratios.speedupVsBaseline, 1000),
    atMost("slowdown at latency vs 0 ms", ratios.latencySlowdown, 0.25),
    atMost("peak RSS (MB)", ratios.peakRssMb, 200),
    atMost("peak RSS ÷ smaller run's", ratios.rssVsSmall, 1.2),
  ];
}

/** Median of a non-empty list. */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError("median of no values");
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/** Rows of the smaller run the memory ratio compares against. */
export function comparisonRows(rows: number): number {
  return rows >= 200_000 ? 100_000 : Math.max(1_000, Math.round(rows / 10));
}
