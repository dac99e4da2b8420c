import { type Db, ObjectId } from "mongodb";

export interface OrderFixture {
  _id?: ObjectId;
  campaignId: string;
  publicationId: number;
  publicationName?: string;
  deletedAt?: Date;
  selectedInventory?: {
    publications: {
      publicationId: number;
      inventoryItems: { itemPath?: string; itemName?: string; channel?: string }[];
    }[];
  };
}

export function order(overrides: Partial<OrderFixture> = {}): OrderFixture & { _id: ObjectId } {
  return {
    _id: new ObjectId(),
    campaignId: "spring-sale",
    publicationId: 1035,
    publicationName: "Chicago Reader",
    ...overrides,
  };
}

export interface TrackingScriptFixture {
  creativeId: string;
  publicationId: number;
  campaignId: string;
  channel?: string;
  creative?: { name?: string };
}

export function trackingScript(
  overrides: Partial<TrackingScriptFixture> = {},
): TrackingScriptFixture {
  return {
    creativeId: "cr_spring-sale_300x250",
    publicationId: 1035,
    campaignId: "spring-sale",
    channel: "display",
    creative: { name: "Spring Sale 300x250" },
    ...overrides,
  };
}

/** Inserts lookup data into the collections the ingest reads. */
export async function seedLookups(
  db: Db,
  data: {
    orders?: OrderFixture[];
    trackingScripts?: TrackingScriptFixture[];
    publications?: { publicationId: number; publicationCode?: string; name?: string }[];
  },
): Promise<void> {
  if (data.orders?.length) {
    await db
      .collection("publication_insertion_orders")
      .insertMany(data.orders.map((o) => ({ ...o })));
  }
  if (data.trackingScripts?.length) {
    await db.collection("tracking_scripts").insertMany(data.trackingScripts.map((s) => ({ ...s })));
  }
  if (data.publications?.length) {
    await db.collection("publications").insertMany(data.publications.map((p) => ({ ...p })));
  }
}
