/**
 * Summarizes a V8 .cpuprofile of the bundled ingest worker: self time (idle excluded)
 * by function, by source module and by package. The bundle is not minified, and esbuild marks where each module
 * starts with a `// path` comment, so bundle line numbers map back to source files.
 *
 *   tsx bench/profile-summary.ts <profile.cpuprofile> <ingest-worker.mjs> [top]
 */
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  name: string;
  ms: number;
  share: number;
}

/** Start line (0-based) → module path, from esbuild's `// path` markers. */
export function moduleMarkers(bundleText: string): { line: number; path: string }[] {
  const markers: { line: number; path: string }[] = [];
  const lines = bundleText.split("\n");
  lines.forEach((text, line) => {
    // esbuild writes paths relative to the working directory; a bench snapshot adds
    // `.bench/snapshot-<commit>-<pid>/` in front of the project's own files.
    const match = /^\/\/ (\S+\.(?:[cm]?[jt]s|json))$/.exec(text);
    if (match?.[1]) {
      markers.push({ line, path: match[1].replace(/^\.bench\/snapshot-[^/]+\//, "") });
    }
  });
  return markers;
}

function moduleAt(markers: { line: number; path: string }[], line: number): string {
  let low = 0;
  let high = markers.length - 1;
  let found = "(bundle prologue)";
  while (low <= high) {
    const middle = (low + high) >> 1;
    const marker = markers[middle] as { line: number; path: string };
    if (marker.line <= line) {
      found = marker.path;
      low = middle + 1;
    } else high = middle - 1;
  }
  return found;
}

/** Self time per key; the key function decides the grouping (function or module). */
export function selfTimes(profile: CpuProfile, keyOf: (node: ProfileNode) => string): SelfTime[] {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const totals = new Map<string, number>();
  let all = 0;
  profile.samples.forEach((id, index) => {
    const micros = profile.timeDeltas[index] ?? 0;
    const node = byId.get(id);
    // Waiting (for MongoDB, for S3 bytes) is not CPU: shares are of busy time only.
    if (!node || node.callFrame.functionName === "(idle)") return;
    const key = keyOf(node);
    totals.set(key, (totals.get(key) ?? 0) + micros);
    all += micros;
  });
  return [...totals.entries()]
    .map(([name, micros]) => ({ name, ms: micros / 1000, share: micros / all }))
    .sort((a, b) => b.ms - a.ms);
}

function packageOf(path: string): string {
  const matches = [...path.matchAll(/node_modules\/((?:@[^/]+\/)?[^/]+)/g)];
  return matches.at(-1)?.[1] ?? path;
}

if (process.argv[1]?.endsWith("profile-summary.ts")) {
  const [profilePath, bundlePath, topText] = process.argv.slice(2);
  if (!profilePath || !bundlePath) {
    process.stderr.write("usage: tsx bench/profile-summary.ts <profile> <bundle.mjs> [top]\n");
    process.exit(2);
  }
  const top = Number(topText ?? 25);
  const profile = JSON.parse(readFileSync(profilePath, "utf8")) as CpuProfile;
  const markers = moduleMarkers(readFileSync(bundlePath, "utf8"));
  const where = (node: ProfileNode) => {
    const { url, lineNumber } = node.callFrame;
    if (url.endsWith(".mjs") && url.includes("ingest-worker")) return moduleAt(markers, lineNumber);
    return url === "" ? "(native/V8)" : url.replace(/^node:/, "node:");
  };
  const print = (title: string, rows: SelfTime[]) => {
    process.stdout.write(`\n${title}\n`);
    for (const row of rows.slice(0, top)) {
      process.stdout.write(
        `${row.ms.toFixed(0).padStart(8)} ms ${(row.share * 100).toFixed(1).padStart(5)}%  ${row.name}\n`,
      );
    }
  };
  print(
    "self time by function",
    selfTimes(profile, (node) => {
      const name = node.callFrame.functionName || "(anonymous)";
      return `${name}  [${where(node)}:${node.callFrame.lineNumber + 1}]`;
    }),
  );
  print("self time by module", selfTimes(profile, where));
  print(
    "self time by package",
    selfTimes(profile, (node) => packageOf(where(node))),
  );
}
