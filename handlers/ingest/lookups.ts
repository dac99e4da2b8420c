import type { Logger } from "../shared/logger";
import { OrderResolver } from "./order-resolver";
import type { EntryStore } from "./ports";
import { PublicationDirectory } from "./publications";

export interface Lookups {
  directory: PublicationDirectory;
  resolver: OrderResolver;
}

/**
 * The lookups one handler invocation shares across its files: the publication directory
 * (read once) and the order resolver's cache, so a creative is looked up once. A failed
 * read is forgotten, so the next file (or invocation) tries again.
 */
export class InvocationLookups {
  private prepared: Promise<Lookups> | undefined;

  constructor(
    private readonly entries: EntryStore,
    private readonly publicationCodeOverrides: Record<string, number>,
    private readonly logger: Logger,
  ) {}

  get(): Promise<Lookups> {
    this.prepared ??= this.read();
    this.prepared.catch(() => {
      this.prepared = undefined;
    });
    return this.prepared;
  }

  private async read(): Promise<Lookups> {
    const store = await this.entries.lookups();
    const directory = new PublicationDirectory(
      await store.findPublicationCodes(),
      this.publicationCodeOverrides,
    );
    if (directory.conflicts.length > 0) {
      this.logger.warn("Publication codes claimed by several publications are ignored", {
        codes: directory.conflicts,
      });
    }
    return { directory, resolver: new OrderResolver(store) };
  }
}
