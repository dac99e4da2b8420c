import {
  DryRunFactLedger,
  FACTS_COLLECTION,
  type FactDocument,
  MongoFactLedger,
  RUNS_COLLECTION,
  type RunDocument,
  recordRun,
} from "./ledger";
import { ENTRIES_COLLECTION, type MongoConnection, MongoLookupStore } from "./mongo";
import type { EntryStore } from "./ports";
import { DryRunEntryWriter, MongoEntryWriter } from "./writer";

/** The MongoDB adapter of the entry store: one connection per container, reused. */
export function createMongoEntryStore(connection: MongoConnection): EntryStore {
  return {
    ensureUpsertKeyIndex: () => connection.ensureUpsertKeyIndex(),
    async lookups() {
      return new MongoLookupStore(await connection.db());
    },
    async writer(dryRun, memory) {
      const entries = (await connection.db()).collection(ENTRIES_COLLECTION);
      return dryRun
        ? new DryRunEntryWriter(entries, undefined, undefined, memory)
        : new MongoEntryWriter(entries);
    },
    async ledger(dryRun, run, memory) {
      const facts = (await connection.db()).collection<FactDocument>(FACTS_COLLECTION);
      return dryRun ? new DryRunFactLedger(facts, run, memory) : new MongoFactLedger(facts, run);
    },
    async recordRun(record) {
      await recordRun((await connection.db()).collection<RunDocument>(RUNS_COLLECTION), record);
    },
  };
}
