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
  /** Fresh-process import times, ms. */
  importMs: number[];
  importMsMedian: number;
}

const FUNCTIONS = [
  {
    name: "startQuery",
    entry: "handlers/start-query.ts",
    forbidden: ["mongodb", "bson"],
    env: { RESULTS_BUCKET: "bench", ATHENA_WORKGROUP: "bench" },
  },
  {
    name: "ingestResults",
    entry: "handlers/ingest-results.ts",
    forbidden: ["@aws-sdk/client-athena"],
    env: { MONGODB_URI: "mongodb://127.0.0.1:1", MONGODB_DB_NAME: "bench" },
  },
] as const;

/** Imports the bundle in a fresh node and prints how long the import took. */
function timeImport(bundlePath: string, env: Record<string, string>): number {
  const script = `const t=performance.now();await import(${JSON.stringify(pathToFileURL(bundlePath).href)});process.stdout.write(String(performance.now()-t));process.exit(0);`;
  const output = execFileSync(
    process.execPath,
    ["--no-warnings", "--input-type=module", "-e", script],
    {
      encoding: "utf8",
      env: { PATH: process.env.PATH ?? "", AWS_REGION: "us-east-1", ...env },
    },
  );
  return Number(output);
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
      for (let i = 0; i < runs; i++) importMs.push(timeImport(result.outfile, fn.env));
      facts.push({
        name: fn.name,
        entry: fn.entry,
        bytes: result.bytes,
        deflatedBytes: deflateRawSync(readFileSync(result.outfile)).length,
        topPackages: packages.slice(0, 8),
        forbidden: { package: fn.forbidden.join(", "), present: present.length > 0 },
        importMs,
        importMsMedian: median(importMs),
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
          `import ${fact.importMsMedian.toFixed(0)} ms median of ${fact.importMs.length} fresh processes ` +
          `(${fact.importMs.map((ms) => ms.toFixed(0)).join(", ")}); ` +
          `${fact.forbidden.package}: ${fact.forbidden.present ? "PRESENT" : "absent"}\n` +
          `  largest: ${fact.topPackages.map(([name, bytes]) => `${name} ${kb(bytes)}`).join(", ")}\n`,
      );
    }
  }
}
