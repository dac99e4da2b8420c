import { type BuildOptions, build } from "esbuild";

/**
 * The esbuild settings the CDK stack gives both functions (infra/constructs/
 * tracking-function.ts: NodejsFunction bundling), so sizes and load times measured
 * here are those of what Lambda runs.
 */
export const LAMBDA_BUNDLE_OPTIONS: BuildOptions = {
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node24",
  minify: true,
  sourcemap: true,
  sourcesContent: false,
  external: [],
  mainFields: ["module", "main"],
  // Bundled CommonJS dependencies call require(); give the ES module one.
  banner: {
    js: "import{createRequire as __createRequire}from'node:module';const require=__createRequire(import.meta.url);",
  },
  logLevel: "silent",
};

export interface BundleResult {
  outfile: string;
  /** Bytes of the JavaScript file (the source map is separate). */
  bytes: number;
  /** Bytes contributed by each input path, for "which packages are inside". */
  inputs: Record<string, number>;
}

export async function bundle(
  entry: string,
  outfile: string,
  overrides: BuildOptions = {},
): Promise<BundleResult> {
  const result = await build({
    ...LAMBDA_BUNDLE_OPTIONS,
    ...overrides,
    entryPoints: [entry],
    outfile,
    metafile: true,
  });
  const output = Object.entries(result.metafile.outputs).find(
    ([path]) => path.endsWith(".mjs") || path.endsWith(".js"),
  );
  if (!output) throw new Error(`esbuild produced no JavaScript for ${entry}`);
  const inputs: Record<string, number> = {};
  for (const [path, info] of Object.entries(output[1].inputs)) inputs[path] = info.bytesInOutput;
  return { outfile, bytes: output[1].bytes, inputs };
}

/** Total output bytes per npm package (`node_modules/<scope>/<name>`), largest first. */
export function bytesByPackage(inputs: Record<string, number>): [string, number][] {
  const totals = new Map<string, number>();
  for (const [path, bytes] of Object.entries(inputs)) {
    // The last node_modules segment names the package (nested dependencies included).
    const matches = [...path.matchAll(/node_modules\/((?:@[^/]+\/)?[^/]+)/g)];
    const name = matches.at(-1)?.[1] ?? "(project)";
    totals.set(name, (totals.get(name) ?? 0) + bytes);
  }
  return [...totals.entries()].sort((a, b) => b[1] - a[1]);
}
