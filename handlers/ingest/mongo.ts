import { type Collection, type Db, type Document, MongoClient, MongoServerError } from "mongodb";
import { redactSecrets } from "../shared/redact";
import { DuplicateEntriesError, MongoUnavailableError } from "./errors";
import type { LookupStore, OrderDoc, TrackingScriptDoc } from "./order-resolver";
import type { PublicationCodeDocument } from "./publications";

export const ENTRIES_COLLECTION = "performance_entries";
export const ORDERS_COLLECTION = "publication_insertion_orders";
export const TRACKING_SCRIPTS_COLLECTION = "tracking_scripts";
export const PUBLICATIONS_COLLECTION = "publications";
export const UPSERT_KEY_INDEX = "tracking_sync_upsert_key";

/**
 * Client options: an outage must fail the object within seconds (the driver waits
 * 30 s for a server by default), so Lambda's retries take over instead of a timeout.
 */
export const MONGO_CLIENT_OPTIONS = {
  serverSelectionTimeoutMS: 5_000,
  connectTimeoutMS: 5_000,
  socketTimeoutMS: 60_000,
  maxPoolSize: 10,
  appName: "tracking-sync-ingest",
} as const;

/**
 * One MongoClient per container, connected on first use and reused across invocations.
 * The unique index on the upsert key is ensured once per cold start. A failed connect
 * is forgotten so the next invocation tries again.
 */
export class MongoConnection {
  private client: Promise<MongoClient> | undefined;
  private indexEnsured: Promise<void> | undefined;

  constructor(
    private readonly resolveUri: () => Promise<string>,
    private readonly dbName: string,
    private readonly options: Record<string, unknown> = {},
  ) {}

  async db(): Promise<Db> {
    this.client ??= this.connect();
    try {
      return (await this.client).db(this.dbName);
    } catch (error) {
      this.client = undefined;
      throw error;
    }
  }

  /** Ensures `{orderId, itemPath, dateStart, source}` is unique (once per cold start). */
  async ensureUpsertKeyIndex(): Promise<void> {
    this.indexEnsured ??= (async () => {
      const db = await this.db();
      try {
        await db
          .collection(ENTRIES_COLLECTION)
          .createIndex(
            { orderId: 1, itemPath: 1, dateStart: 1, source: 1 },
            { unique: true, name: UPSERT_KEY_INDEX },
          );
      } catch (error) {
        if (error instanceof MongoServerError && error.code === 11000) {
          throw new DuplicateEntriesError(
            `${ENTRIES_COLLECTION} holds duplicate entries for the upsert key {orderId, itemPath, dateStart, source}; ` +
              "remove the duplicates so the unique index can be built, then re-drop the file",
            { collection: ENTRIES_COLLECTION, index: UPSERT_KEY_INDEX },
          );
        }
        throw asMongoUnavailable(error, "ensuring the upsert-key index");
      }
    })();
    try {
      await this.indexEnsured;
    } catch (error) {
      this.indexEnsured = undefined;
      throw error;
    }
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.indexEnsured = undefined;
    if (client) await (await client.catch(() => undefined))?.close();
  }

  private async connect(): Promise<MongoClient> {
    let uri: string;
    try {
      uri = await this.resolveUri();
    } catch (error) {
      throw new MongoUnavailableError(
        `Could not read the MongoDB connection string: ${redactSecrets((error as Error).message)}`,
      );
    }
    const client = new MongoClient(uri, { ...MONGO_CLIENT_OPTIONS, ...this.options });
    try {
      await client.connect();
      return client;
    } catch (error) {
      await client.close().catch(() => {});
      throw asMongoUnavailable(error, "connecting");
    }
  }
}

/** Wraps any driver failure as MongoUnavailableError, with the connection string redacted. */
export function asMongoUnavailable(error: unknown, doing: string): Error {
  if (error instanceof MongoUnavailableError || error instanceof DuplicateEntriesError)
    return error;
  const name = (error as Error)?.name ?? "Error";
  const message = redactSecrets((error as Error)?.message ?? String(error));
  const code = (error as { code?: unknown })?.code;
  return new MongoUnavailableError(`MongoDB failed while ${doing}: ${name}: ${message}`, {
    ...(code !== undefined ? { code } : {}),
  });
}

/** The three lookup reads of the order resolver, each one query. */
export class MongoLookupStore implements LookupStore {
  constructor(private readonly db: Db) {}

  async findTrackingScripts(creativeIds: string[]) {
    return this.read("reading tracking_scripts", () =>
      this.db
        .collection<TrackingScriptDoc>(TRACKING_SCRIPTS_COLLECTION)
        .find(
          { creativeId: { $in: creativeIds } },
          {
            projection: {
              creativeId: 1,
              publicationId: 1,
              campaignId: 1,
              channel: 1,
              "creative.name": 1,
            },
            sort: { _id: 1 },
            batchSize: 10_000,
          },
        )
        .toArray(),
    );
  }

  async findOrdersByCampaignIds(campaignIds: unknown[]) {
    return this.read("reading orders", () =>
      this.orders()
        .find(
          { campaignId: { $in: campaignIds }, deletedAt: { $exists: false } },
          {
            projection: { campaignId: 1, publicationId: 1, publicationName: 1 },
            batchSize: 10_000,
          },
        )
        .toArray(),
    );
  }

  async findOrdersByCampaignPattern(pattern: string) {
    return this.read("reading orders", () =>
      this.orders()
        .find(
          { campaignId: { $regex: pattern, $options: "i" }, deletedAt: { $exists: false } },
          {
            projection: {
              campaignId: 1,
              publicationId: 1,
              publicationName: 1,
              "selectedInventory.publications": 1,
            },
            batchSize: 10_000,
          },
        )
        .toArray(),
    );
  }

  /** `publications` documents that carry a publicationCode (read once per invocation). */
  async findPublicationCodes(): Promise<PublicationCodeDocument[]> {
    return this.read("reading publications", () =>
      this.db
        .collection<PublicationCodeDocument>(PUBLICATIONS_COLLECTION)
        .find(
          { publicationCode: { $exists: true } },
          { projection: { _id: 0, publicationCode: 1, publicationId: 1 } },
        )
        .toArray(),
    );
  }

  private orders(): Collection<OrderDoc> {
    return this.db.collection<OrderDoc>(ORDERS_COLLECTION);
  }

  private async read<T>(doing: string, query: () => Promise<T>): Promise<T> {
    try {
      return await query();
    } catch (error) {
      throw asMongoUnavailable(error, doing);
    }
  }
}

export type { Document };
