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

/** The memory back from `encodeDryRunMemory`'s bytes; throws on anything else. */
export function decodeDryRunMemory(bytes: Uint8Array): DryRunMemory {
  // Word views need 4-byte alignment: copy only when the bytes are not aligned.
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : Uint8Array.from(bytes);
  if (aligned.byteLength < HEADER_WORDS * 4 || aligned.byteLength % 4 !== 0) {
    throw new Error(`not a dry run's memory: ${aligned.byteLength} bytes`);
  }
  const words = new Uint32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 4);
  const [format, factsCapacity, factsSize, entriesCapacity, entriesSize] = words;
  if (format !== FORMAT) throw new Error("not a dry run's memory: unknown format");
  const factsEnd = HEADER_WORDS + SLOT_WORDS * (factsCapacity as number);
  if (words.length !== factsEnd + SLOT_WORDS * (entriesCapacity as number)) {
    throw new Error("not a dry run's memory: its length does not match its header");
  }
  return {
    facts: CompactMap.of({
      capacity: factsCapacity as number,
      size: factsSize as number,
      slots: words.subarray(HEADER_WORDS, factsEnd),
    }),
    entries: CompactMap.of({
      capacity: entriesCapacity as number,
      size: entriesSize as number,
      slots: words.subarray(factsEnd),
    }),
  };
}
