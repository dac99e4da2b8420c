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
    async writer(dryRun) {
      const entries = (await connection.db()).collection(ENTRIES_COLLECTION);
      return dryRun ? new DryRunEntryWriter(entries) : new MongoEntryWriter(entries);
    },
  };
}
