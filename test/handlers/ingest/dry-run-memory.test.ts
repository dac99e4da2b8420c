import { describe, expect, it } from "vitest";
import { CompactMap, digest64 } from "../../../handlers/ingest/compact-map";
import { decodeDryRunMemory, encodeDryRunMemory } from "../../../handlers/ingest/dry-run-memory";

async function bytesOf(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function mapOf(count: number, salt: string): CompactMap {
  const map = new CompactMap();
  for (let i = 0; i < count; i++) map.set(digest64(`${salt}${i}`), [i, i * 2, 7, 0x80000000 + i]);
  return map;
}

describe("a dry run's memory across invocations", () => {
  it("comes back from its bytes with every key and value, also after the maps grew", async () => {
    const facts = mapOf(5_000, "fact-");
    const entries = mapOf(300, "entry-");
    const content = encodeDryRunMemory({ facts, entries });

    const bytes = await bytesOf(content.body);
    expect(bytes.length).toBe(content.size);
    expect(content.size).toBe(5 * 4 + facts.bytes + entries.bytes);
    const back = decodeDryRunMemory(bytes);

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
  });

  it("reads bytes that do not start on a 4-byte boundary", async () => {
    const bytes = await bytesOf(
      encodeDryRunMemory({ facts: mapOf(10, "f"), entries: mapOf(3, "e") }).body,
    );
    const shifted = new Uint8Array(bytes.length + 1).subarray(1);
    shifted.set(bytes);

    const back = decodeDryRunMemory(shifted);

    expect(back.facts.size).toBe(10);
    expect(Array.from(back.entries.get(digest64("e2")) ?? [])).toEqual([2, 4, 7, 0x80000002]);
  });

  it("refuses bytes that are not a memory, or whose length does not match its header", async () => {
    const bytes = await bytesOf(
      encodeDryRunMemory({ facts: mapOf(10, "f"), entries: mapOf(3, "e") }).body,
    );

    expect(() => decodeDryRunMemory(Buffer.from("fact,entry\n"))).toThrow(/not a dry run's memory/);
    expect(() => decodeDryRunMemory(bytes.subarray(0, bytes.length - 24))).toThrow(
      /length does not match/,
    );
    const otherFormat = Buffer.from(bytes);
    otherFormat.writeUInt32LE(0x12345678, 0);
    expect(() => decodeDryRunMemory(otherFormat)).toThrow(/unknown format/);
    const overfull = Buffer.from(bytes);
    overfull.writeUInt32LE(1_000_000, 8); // the facts' size, over the map's load limit
    expect(() => decodeDryRunMemory(overfull)).toThrow(/capacity, size and slots disagree/);
  });
});
