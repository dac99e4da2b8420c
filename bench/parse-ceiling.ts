/**
 * The parse ceiling: csv-parse alone over the bench file in its fastest configuration
 * (records as arrays, no casting, no column mapping, no raw text), streaming from the
 * file. Nothing is done with a record but counting it, so this is the least CPU any
 * ingest of these bytes can spend. Run in its own process (a child of the bench) so
 * process.cpuUsage() sees only this.
 *
 *   tsx bench/parse-ceiling.ts <file.csv> [repeats]
 */
import { createReadStream, realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parse } from "csv-parse";

export interface ParsePass {
  /** Records including the header. */
  records: number;
  cpuSeconds: number;
  wallSeconds: number;
}

/** One pass over the file; CPU is user + system of this process during the pass. */
export async function parseOnce(path: string): Promise<ParsePass> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  let records = 0;
  await new Promise<void>((resolve, reject) => {
    const source = createReadStream(path, { highWaterMark: 256 * 1024 });
    const parser = parse();
    source.on("error", reject);
    parser.on("error", reject);
    parser.on("readable", () => {
      while (parser.read() !== null) records++;
    });
    parser.on("end", resolve);
    source.pipe(parser);
  });
  const used = process.cpuUsage(cpu);
  return {
    records,
    cpuSeconds: (used.user + used.system) / 1e6,
    wallSeconds: (performance.now() - started) / 1000,
  };
}

function isEntryModule(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryModule()) {
  const [path, repeatsText] = process.argv.slice(2);
  if (!path) {
    process.stderr.write("usage: tsx bench/parse-ceiling.ts <file.csv> [repeats]\n");
    process.exit(2);
  }
  const passes: ParsePass[] = [];
  for (let i = 0; i < Number(repeatsText ?? 1); i++) passes.push(await parseOnce(path));
  if (process.send) process.send({ type: "result", passes });
  else process.stdout.write(`${JSON.stringify(passes)}\n`);
  process.disconnect?.();
}
