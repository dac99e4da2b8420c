import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

// The README's commands, run as a newcomer runs them, on files small enough for CI. They
// check that the measurements run and report what they measured; no figure is asserted
// against a speed (those live in BENCHMARKS.md, measured at full size).
const repo = fileURLToPath(new URL("../..", import.meta.url));
const run = promisify(execFile);

async function npmRun(script: string, args: string[]) {
  return run("npm", ["run", "-s", script, "--", ...args], {
    cwd: repo,
    env: { ...process.env, CI: "true" },
    maxBuffer: 16 * 1024 * 1024,
  });
}

/** The first JSON document of a command's stdout (bench:continuation prints a summary line after it). */
function firstJson(stdout: string): Record<string, unknown> {
  const end = stdout.indexOf("\n}\n");
  return JSON.parse(end >= 0 ? stdout.slice(0, end + 2) : stdout);
}

describe("npm run bench", () => {
  it("runs every phase on a small file and reports the issue's six ratios against their targets", async () => {
    const { stdout } = await npmRun("bench", [
      "--rows",
      "1000",
      "--baseline-rows",
      "10",
      "--latency-ms",
      "2",
      "--order",
      "shuffled",
      "--json",
      "--working-tree",
    ]);
    const report = JSON.parse(stdout);

    expect(report.file).toMatchObject({ order: "shuffled", rows: 1000 });
    const { ingest, ingestAtLatency, baseline } = report.figures;
    for (const figures of [ingest, ingestAtLatency]) {
      // The bench itself fails a run whose counts differ from the designed outcomes.
      expect(figures.synced + figures.skipped + figures.errors).toBe(1000);
      expect(figures.commandsByName.update).toBeGreaterThan(0);
    }
    expect(ingestAtLatency.latencyMs).toBe(2);
    expect(baseline).toMatchObject({ rows: 10, latencyMs: 2 });
    expect(report.extra.requestBytesPerRow).toBeGreaterThan(0);
    expect(report.targets.map((check: { name: string }) => check.name)).toEqual([
      "ingest CPU/row ÷ parser CPU/row",
      "MongoDB commands per 10,000 rows",
      "rows/s at latency ÷ row-by-row baseline",
      "slowdown at latency vs 0 ms",
      "peak RSS (MB)",
      "peak RSS ÷ smaller run's",
    ]);
  }, 180_000);

  it("refuses an unknown row order before doing anything", async () => {
    const failed = npmRun("bench", ["--order", "sorted", "--working-tree"]);
    await expect(failed).rejects.toMatchObject({
      stderr: expect.stringContaining("--order must be one of query, shuffled, got 'sorted'"),
    });
  }, 60_000);
});

describe("npm run bench:continuation", () => {
  it("carries a file across several invocations and counts every row once", async () => {
    const { stdout } = await npmRun("bench:continuation", [
      "--rows",
      "5000",
      "--budget-s",
      "0.1",
      "--margin-s",
      "0.1",
    ]);
    const figures = firstJson(stdout) as {
      invocations: number;
      report: { success: boolean; invocations: number; stats: { rowsFromAthena: number } };
      checks: Record<string, boolean>;
    };

    // Every invocation commits at least one 1,000-row batch, and 0.1 s leaves room for
    // little more: a 5,000-row file needs several.
    expect(figures.invocations).toBeGreaterThan(1);
    expect(figures.report).toMatchObject({
      success: true,
      invocations: figures.invocations,
      stats: { rowsFromAthena: 5000 },
    });
    expect(Object.values(figures.checks)).not.toContain(false);
  }, 180_000);
});
