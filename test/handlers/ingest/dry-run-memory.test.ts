import { describe, expect, it } from "vitest";
import { CompactMap, digest64 } from "../../../handlers/ingest/compact-map";
import { encodeDryRunMemory, readDryRunMemory } from "../../../handlers/ingest/dry-run-memory";

async function bytesOf(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** The bytes in chunks of `size` (the last one shorter), as an S3 body arrives. */
async function* chunked(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let offset = 0; offset < bytes.length; offset += size) {
    yield bytes.subarray(offset, offset + size);
  }
}

function mapOf(count: number, salt: string): CompactMap {
  const map = new CompactMap();
  for (let i = 0; i < count; i++) map.set(digest64(`${salt}${i}`), [i, i * 2, 7, 0x80000000 + i]);
  return map;
}

async function encoded(facts: CompactMap, entries: CompactMap): Promise<Buffer> {
  const content = encodeDryRunMemory({ facts, entries });
  const bytes = await bytesOf(content.body);
  expect(bytes.length).toBe(content.size);
  return bytes;
}

describe("a dry run's memory across invocations", () => {
  it.each([
    ["one piece", 1 << 30],
    ["chunks that split the header and the slots", 7],
    ["64 KB chunks", 65_536],
  ])(
    "comes back from its bytes in %s with every key and value, also after the maps grew",
    async (_, chunk) => {
      const facts = mapOf(5_000, "fact-");
      const entries = mapOf(300, "entry-");
      const bytes = await encoded(facts, entries);
      expect(bytes.length).toBe(5 * 4 + facts.bytes + entries.bytes);

      const back = await readDryRunMemory(chunked(bytes, chunk), bytes.length);

      expect(back.facts.size).toBe(5_000);
      expect(back.entries.size).toBe(300);
      for (let i = 0; i < 5_000; i++) {
        expect(Array.from(back.facts.get(digest64(`fact-${i}`)) ?? [])).toEqual([
          i,
          i * 2,
          7,
          0x80000000 + i,
        ]);
      }
      expect(back.facts.get(digest64("fact-5000"))).toBeUndefined();
      expect(Array.from(back.entries.get(digest64("entry-299")) ?? [])).toEqual([
        299, 598, 7, 0x8000012b,
      ]);
      // The restored map goes on growing as the original would.
      back.entries.set(digest64("entry-new"), [1, 2, 3, 4]);
      for (let i = 300; i < 2_000; i++) back.entries.set(digest64(`entry-${i}`), [i, 0, 0, 0]);
      expect(back.entries.size).toBe(2_001);
      expect(Array.from(back.entries.get(digest64("entry-new")) ?? [])).toEqual([1, 2, 3, 4]);
    },
  );

  it("refuses bytes that are not a memory, shorter or longer than handed over, or whose header lies", async () => {
    const bytes = await encoded(mapOf(10, "f"), mapOf(3, "e"));
    const read = (body: Uint8Array, size = body.length) =>
      readDryRunMemory(chunked(body, 100), size);

    await expect(read(Buffer.from("fact,entry\n"))).rejects.toThrow(/not a dry run's memory/);
    await expect(read(bytes.subarray(0, bytes.length - 24), bytes.length)).rejects.toThrow(
      /bytes, \d+ handed over/,
    );
    await expect(read(bytes, bytes.length - 24)).rejects.toThrow(
      /longer than handed over|length does not match/,
    );
    await expect(read(Buffer.concat([bytes, Buffer.alloc(24)]))).rejects.toThrow(
      /length does not match|longer than its header/,
    );
    const otherFormat = Buffer.from(bytes);
    otherFormat.writeUInt32LE(0x12345678, 0);
    await expect(read(otherFormat)).rejects.toThrow(/unknown format/);
    const huge = Buffer.from(bytes);
    huge.writeUInt32LE(2 ** 30, 4); // the facts' capacity
    await expect(read(huge)).rejects.toThrow(/capacity is out of bounds/);
    const overfull = Buffer.from(bytes);
    overfull.writeUInt32LE(1_000_000, 8); // the facts' size, over the map's load limit
    await expect(read(overfull)).rejects.toThrow(/capacity, size and slots disagree/);
  });
});
