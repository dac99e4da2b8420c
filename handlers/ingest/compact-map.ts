import { createHash } from "node:crypto";

/** A 64-bit digest of a string, as two unsigned 32-bit halves (never both 0). */
export function digest64(text: string): [number, number] {
  const bytes = createHash("md5").update(text).digest();
  const high = bytes.readUInt32LE(0);
  const low = bytes.readUInt32LE(4);
  return high === 0 && low === 0 ? [0, 1] : [high, low];
}

/** Values a slot holds besides its key. */
export const VALUE_WIDTH = 4;
/** Unsigned 32-bit words a slot takes: the two key halves and the values. */
export const SLOT_WORDS = 2 + VALUE_WIDTH;
const SLOT = SLOT_WORDS;
const MAX_LOAD = 0.7;

/**
 * An open-addressing hash map from 64-bit digests to four unsigned 32-bit values, in one
 * typed array: 24 bytes a slot, about 34 bytes an entry at its highest load. A dry run
 * keeps one slot per row identity it would write, so a million rows cost tens of MB
 * where a `Map` of strings costs hundreds. Two keys with the same 64-bit digest are one
 * key (at a million keys, a chance of about 3 in 10^8).
 */
export class CompactMap {
  private slots: Uint32Array = new Uint32Array(SLOT * 1024);
  private capacity = 1024;
  size = 0;

  get(key: readonly [number, number]): Uint32Array | undefined {
    const index = this.find(key);
    return index < 0 ? undefined : this.slots.subarray(index + 2, index + SLOT);
  }

  set(key: readonly [number, number], values: readonly number[]): void {
    if ((this.size + 1) / this.capacity > MAX_LOAD) this.grow();
    let index = this.find(key);
    if (index < 0) {
      index = -index - 1;
      this.slots[index] = key[0];
      this.slots[index + 1] = key[1];
      this.size++;
    }
    for (let i = 0; i < VALUE_WIDTH; i++) this.slots[index + 2 + i] = values[i] ?? 0;
  }

  /** The slot index of `key`, or -(free slot index) - 1 where it would go. */
  private find(key: readonly [number, number]): number {
    const mask = this.capacity - 1;
    let slot = (key[1] ^ Math.imul(key[0], 0x9e3779b1)) & mask;
    for (;;) {
      const index = slot * SLOT;
      const high = this.slots[index] as number;
      const low = this.slots[index + 1] as number;
      if (high === 0 && low === 0) return -index - 1;
      if (high === key[0] && low === key[1]) return index;
      slot = (slot + 1) & mask;
    }
  }

  private grow(): void {
    const old = this.slots;
    this.capacity *= 2;
    this.slots = new Uint32Array(SLOT * this.capacity);
    this.size = 0;
    for (let index = 0; index < old.length; index += SLOT) {
      const high = old[index] as number;
      const low = old[index + 1] as number;
      if (high === 0 && low === 0) continue;
      this.set([high, low], Array.from(old.subarray(index + 2, index + SLOT)));
    }
  }

  /** Bytes held (the typed array). */
  get bytes(): number {
    return this.slots.byteLength;
  }

  /** The map's slots and shape, to carry it to another process (`CompactMap.of`). */
  export(): { capacity: number; size: number; slots: Uint32Array } {
    return { capacity: this.capacity, size: this.size, slots: this.slots };
  }

  /** A map from what `export` gave (the slots are taken over, not copied). */
  static of(exported: { capacity: number; size: number; slots: Uint32Array }): CompactMap {
    const { capacity, size, slots } = exported;
    if (
      !Number.isInteger(capacity) ||
      capacity < 1024 ||
      (capacity & (capacity - 1)) !== 0 ||
      slots.length !== SLOT * capacity ||
      !Number.isInteger(size) ||
      size < 0 ||
      size / capacity > MAX_LOAD
    ) {
      throw new Error("not a CompactMap: capacity, size and slots disagree");
    }
    const map = new CompactMap();
    map.capacity = capacity;
    map.size = size;
    map.slots = slots;
    return map;
  }
}
