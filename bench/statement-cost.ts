/**
 * What one write statement costs the ingest before it reaches the network: building the
 * update (`insertedFields` for the insert-first `$setOnInsert`, `buildUpdatePipeline` for
 * the merge) and BSON-serializing the statement `{q, u, upsert}` as the driver does for
 * each entry of an `update` command's document sequence. CPU time per statement (median of
 * the passes) and bytes per statement; printed, never asserted.
 *
 *   npx tsx bench/statement-cost.ts [--entries 100000] [--passes 5]
 *
 * Compare with the parse ceiling per row (`npm run bench`): on the generated file the
 * ingest sends about 0.9 statements per row, mostly with one contribution.
 */
import { parseArgs } from "node:util";
import { BSON, type Document, ObjectId } from "mongodb";
import {
  buildUpdatePipeline,
  type EntryUpdate,
  insertedFields,
} from "../handlers/ingest/entry-update";
import { entryFor, ordersFor } from "./lib/entry-shapes";

const { values } = parseArgs({
  options: {
    entries: { type: "string", default: "100000" },
    passes: { type: "string", default: "5" },
  },
});
const count = Number(values.entries);
const passes = Number(values.passes);
if (!Number.isInteger(count) || count < 1 || !Number.isInteger(passes) || passes < 1) {
  throw new Error("--entries and --passes must be positive integers");
}

const orderIds = Array.from({ length: ordersFor(count) }, () => new ObjectId());
const entries: EntryUpdate[] = Array.from({ length: count }, (_, i) => entryFor(i, orderIds, 0));

type Build = (entry: EntryUpdate, now: Date) => Document;
const shapes: [string, Build][] = [
  ["$setOnInsert (new entry)", (entry, now) => ({ $setOnInsert: insertedFields(entry, now) })],
  ["pipeline (merge)", (entry) => buildUpdatePipeline(entry)],
];

function cpuMicros(run: () => void): number {
  const before = process.cpuUsage();
  run();
  const used = process.cpuUsage(before);
  return used.user + used.system;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
};

const rows: string[][] = [];
for (const [label, build] of shapes) {
  for (const contributions of [1, 2, 3]) {
    const subset = entries.filter((entry) => entry.contributions.length === contributions);
    let bytes = 0;
    const buildOnly: number[] = [];
    const buildAndSerialize: number[] = [];
    // One pass first, unmeasured, so every measured pass runs optimized code.
    for (let pass = 0; pass <= passes; pass++) {
      const now = new Date();
      const built = cpuMicros(() => {
        for (const entry of subset) build(entry, now);
      });
      let passBytes = 0;
      const serialized = cpuMicros(() => {
        for (const entry of subset) {
          const statement = { q: entry.key, u: build(entry, now), upsert: true };
          passBytes += BSON.serialize(statement).byteLength;
        }
      });
      if (pass === 0) continue;
      buildOnly.push(built / subset.length);
      buildAndSerialize.push(serialized / subset.length);
      bytes = passBytes / subset.length;
    }
    rows.push([
      label,
      String(contributions),
      median(buildOnly).toFixed(2),
      median(buildAndSerialize).toFixed(2),
      bytes.toFixed(0),
    ]);
  }
}

const header = ["statement", "contributions", "build µs", "build + BSON µs", "bytes"];
const widths = header.map((title, column) =>
  Math.max(title.length, ...rows.map((row) => (row[column] as string).length)),
);
const line = (cells: string[]) =>
  cells.map((cell, column) => cell.padStart(widths[column] as number)).join("  ");
process.stdout.write(
  `${count.toLocaleString("en-US")} entries, a third each with 1, 2 and 3 contributions; CPU per statement, median of ${passes} passes\n`,
);
process.stdout.write(`${line(header)}\n`);
for (const row of rows) process.stdout.write(`${line(row)}\n`);
