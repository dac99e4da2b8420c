import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { FUNCTIONS } from "../../bench/bundle-size";
import { bundle, bytesByPackage } from "../../bench/lib/bundle";

const root = fileURLToPath(new URL("../..", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "tracking-sync-bundle-contents-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Cold start: the start function must not load the MongoDB driver, nor the ingest the
// Athena client. Bundled with the stack's esbuild settings, as Lambda gets them.
describe("Lambda bundles", () => {
  it.each(FUNCTIONS)(
    "$name carries none of $forbidden",
    async (fn) => {
      const result = await bundle(join(root, fn.entry), join(dir, `${fn.name}.mjs`), {
        minify: false,
        sourcemap: false,
      });
      const packages = bytesByPackage(result.inputs).map(([name]) => name);

      expect(packages).toEqual(expect.arrayContaining([...fn.required]));
      for (const name of fn.forbidden) expect(packages).not.toContain(name);
    },
    60_000,
  );
});
