/**
 * Cold-start facts for both functions: bundled size (esbuild with the CDK stack's
 * settings: ESM, node24, minified, every dependency bundled), zipped size (what Lambda
 * downloads), the largest packages inside, that the start function carries no MongoDB
 * driver and the ingest no Athena client, and the time to import each bundle in a
 * fresh Node process (median of several), which is the module-load part of a cold start.
 *
 *   npx tsx bench/bundle-size.ts [--json] [--runs N]
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { deflateRawSync } from "node:zlib";
import { type BundleResult, bundle, bytesByPackage } from "./lib/bundle";
import { median } from "./lib/ratios";

interface FunctionFacts {
  name: string;
  entry: string;
  bytes: number;
  /** Deflate size of the JavaScript: close to the deployment zip's size for it. */
  deflatedBytes: number;
  topPackages: [string, number][];
  forbidden: { package: string; present: boolean };
  /** Fresh-process import times, wall ms (sensitive to other load on the machine). */
  importMs: number[];
  importMsMedian: number;
  /** CPU ms of the same imports (user + system): steadier under load. */
  importCpuMs: number[];
  importCpuMsMedian: number;
}

/** Both functions' entries, what each must not carry, and what it must (so a check of the first means something). */
export const FUNCTIONS = [
  {
    name: "startQuery",
    entry: "handlers/start-query.ts",
    forbidden: ["mongodb", "bson"],
    required: ["@aws-sdk/client-athena"],
    env: { RESULTS_BUCKET: "bench", ATHENA_WORKGROUP: "bench" },
  },
  {
    name: "ingestResults",
    entry: "handlers/ingest-results.ts",
    forbidden: ["@aws-sdk/client-athena"],
    required: ["mongodb", "csv-parse"],
    env: { MONGODB_URI: "mongodb://127.0.0.1:1", MONGODB_DB_NAME: "bench" },
  },
] as const;

/** Imports the bundle in a fresh node; wall and CPU milliseconds of the import. */
function timeImport(
  bundlePath: string,
  env: Record<string, string>,
): { wall: number; cpu: number } {
  const script = `const c=process.cpuUsage(),t=performance.now();await import(${JSON.stringify(pathToFileURL(bundlePath).href)});const u=process.cpuUsage(c);process.stdout.write(JSON.stringify({wall:performance.now()-t,cpu:(u.user+u.system)/1000}));process.exit(0);`;
  const output = execFileSync(
    process.execPath,
    ["--no-warnings", "--input-type=module", "-e", script],
    {
      encoding: "utf8",
      env: { PATH: process.env.PATH ?? "", AWS_REGION: "us-east-1", ...env },
    },
  );
  return JSON.parse(output) as { wall: number; cpu: number };
}

export async function measureBundles(runs: number): Promise<FunctionFacts[]> {
  const root = fileURLToPath(new URL("..", import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), "tracking-sync-bundles-"));
  try {
    const facts: FunctionFacts[] = [];
    for (const fn of FUNCTIONS) {
      const result: BundleResult = await bundle(join(root, fn.entry), join(dir, `${fn.name}.mjs`));
      const packages = bytesByPackage(result.inputs);
      const present = fn.forbidden.filter((name) => packages.some(([pkg]) => pkg === name));
      const importMs: number[] = [];
      const importCpuMs: number[] = [];
      for (let i = 0; i < runs; i++) {
        const time = timeImport(result.outfile, fn.env);
        importMs.push(time.wall);
        importCpuMs.push(time.cpu);
      }
      facts.push({
        name: fn.name,
        entry: fn.entry,
        bytes: result.bytes,
        deflatedBytes: deflateRawSync(readFileSync(result.outfile)).length,
        topPackages: packages.slice(0, 8),
        forbidden: { package: fn.forbidden.join(", "), present: present.length > 0 },
        importMs,
        importMsMedian: median(importMs),
        importCpuMs,
        importCpuMsMedian: median(importCpuMs),
      });
    }
    return facts;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const kb = (bytes: number) => `${(bytes / 1024).toFixed(0)} KiB`;

if (process.argv[1]?.endsWith("bundle-size.ts")) {
  const { values } = parseArgs({
    options: { json: { type: "boolean", default: false }, runs: { type: "string", default: "7" } },
  });
  const facts = await measureBundles(Number(values.runs));
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({ node: process.version, functions: facts }, null, 2)}\n`,
    );
  } else {
    for (const fact of facts) {
      process.stdout.write(
        `${fact.name} (${fact.entry}): ${kb(fact.bytes)} minified, ${kb(fact.deflatedBytes)} deflated; ` +
          `import ${fact.importMsMedian.toFixed(0)} ms wall / ${fact.importCpuMsMedian.toFixed(0)} ms CPU, ` +
          `median of ${fact.importMs.length} fresh processes ` +
          `(wall ${fact.importMs.map((ms) => ms.toFixed(0)).join(", ")}); ` +
          `${fact.forbidden.package}: ${fact.forbidden.present ? "PRESENT" : "absent"}\n` +
          `  largest: ${fact.topPackages.map(([name, bytes]) => `${name} ${kb(bytes)}`).join(", ")}\n`,
      );
    }
  }
}
