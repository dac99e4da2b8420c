import type { Document } from "mongodb";

/**
 * A stored fact as the ledger reads it: a fact holds `stale` only while a move is pending
 * and `replaced` once a value was replaced, so no list is an empty one and no `replaced`
 * is null. (That a first value stores neither is asserted on its own.)
 */
export function asLedgerReadsIt<T extends Document>(fact: T | null): T | null {
  return fact === null ? null : { stale: [], replaced: null, ...fact };
}
