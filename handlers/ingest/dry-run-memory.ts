import { Readable } from "node:stream";
import { CompactMap, SLOT_WORDS } from "./compact-map";
import type { ByteContent } from "./ports";

/**
 * What a dry run has simulated, carried from one invocation of a continued file to the
 * next: the facts it would have placed (`DryRunFactLedger`) and the entries it touched
 * (`DryRunEntryWriter`), as their two compact maps. Without it the next invocation would
 * judge a row identity or an entry met again as new (an insert twice, a duplicate row
 * missed). The bytes: a header of five unsigned 32-bit words (format, then each map's
 * capacity and size), then the two maps' slots as they are in memory (24 bytes a slot;
 * about 34 to 69 MB per million identities, as much again per million entries).
 */
export interface DryRunMemory {
  facts: CompactMap;
  entries: CompactMap;
}

const FORMAT = 0x44524d31; // "DRM1"
const HEADER_WORDS = 5;

/** The memory as one object's content, streamed from the maps' own arrays (no copy). */
export function encodeDryRunMemory(memory: DryRunMemory): ByteContent {
  const facts = memory.facts.export();
  const entries = memory.entries.export();
  const header = new Uint32Array([
    FORMAT,
    facts.capacity,
    facts.size,
    entries.capacity,
    entries.size,
  ]);
  const parts = [header, facts.slots, entries.slots].map((words) =>
    Buffer.from(words.buffer, words.byteOffset, words.byteLength),
  );
  return {
    body: Readable.from(parts),
    size: parts.reduce((sum, part) => sum + part.length, 0),
  };
}

/** Slots a handed-over map may have: from CompactMap's first size to 2^26 (1.5 GB). */
const MIN_CAPACITY = 1024;
const MAX_CAPACITY = 2 ** 26;

/**
 * The memory back from `encodeDryRunMemory`'s bytes, streamed into the maps' own arrays
 * (so resuming takes the maps' size once, not twice); throws on anything else. `size`:
 * the byte size the hand-over recorded.
 */
export async function readDryRunMemory(
  body: AsyncIterable<Uint8Array>,
  size: number,
): Promise<DryRunMemory> {
  const header = new Uint32Array(HEADER_WORDS);
  /** The arrays the bytes fill, in order: the header, then (once it is read) the two maps' slots. */
  const targets: Uint32Array[] = [header];
  let stage = 0;
  let target: Uint8Array = new Uint8Array(header.buffer);
  let filled = 0;
  let received = 0;
  for await (const chunk of body) {
    received += chunk.length;
    if (received > size) throw new Error("not a dry run's memory: longer than handed over");
    let offset = 0;
    while (offset < chunk.length) {
      if (stage === targets.length)
        throw new Error("not a dry run's memory: longer than its header says");
      const n = Math.min(chunk.length - offset, target.length - filled);
      target.set(chunk.subarray(offset, offset + n), filled);
      filled += n;
      offset += n;
      if (filled < target.length) continue;
      if (stage === 0) targets.push(...slotsFor(header, size));
      stage++;
      const words = targets[stage];
      if (words) target = new Uint8Array(words.buffer);
      filled = 0;
    }
  }
  if (stage !== 3 || received !== size) {
    throw new Error(`not a dry run's memory: ${received} bytes, ${size} handed over`);
  }
  const [, factsCapacity, factsSize, entriesCapacity, entriesSize] = header;
  return {
    facts: CompactMap.of({
      capacity: factsCapacity as number,
      size: factsSize as number,
      slots: targets[1] as Uint32Array,
    }),
    entries: CompactMap.of({
      capacity: entriesCapacity as number,
      size: entriesSize as number,
      slots: targets[2] as Uint32Array,
    }),
  };
}

/** The two maps' slot arrays the header asks for, once it is checked against `size`. */
function slotsFor(header: Uint32Array, size: number): [Uint32Array, Uint32Array] {
  const [format, factsCapacity, , entriesCapacity] = header as unknown as number[];
  if (format !== FORMAT) throw new Error("not a dry run's memory: unknown format");
  const capacities = [factsCapacity as number, entriesCapacity as number];
  if (capacities.some((capacity) => capacity < MIN_CAPACITY || capacity > MAX_CAPACITY)) {
    throw new Error("not a dry run's memory: a map's capacity is out of bounds");
  }
  const bytes =
    4 *
    (HEADER_WORDS +
      SLOT_WORDS * (capacities[0] as number) +
      SLOT_WORDS * (capacities[1] as number));
  if (bytes !== size)
    throw new Error("not a dry run's memory: its length does not match its header");
  return [
    new Uint32Array(SLOT_WORDS * (capacities[0] as number)),
    new Uint32Array(SLOT_WORDS * (capacities[1] as number)),
  ];
}
