/**
 * The baseline the ingest is compared against: the specification's row-by-row loop
 * (spec §9 lookupOrder, §16 handler loop), written faithfully, not fixed. Per row:
 * tracking_scripts findOne, then the order findOne; failing that, the campaign-id
 * regex findOne (unanchored, unescaped, as written); then one `updateOne` upsert per
 * row on the §7 upsert key. Rows come from the bench CSV instead of Athena's
 * GetQueryResults pages (both give strings); the cost measured is the round trips.
 *
 * This is the thing we measure against, not production code.
 */
import { createReadStream } from "node:fs";
import { parse } from "csv-parse";
import { type Db, MongoClient } from "mongodb";
import { BUILT_IN_PUBLICATION_CODES } from "../handlers/ingest/publications";

// The spec's §8 map, the same one the ingest starts from.
const PUBLICATION_CODE_MAP: Readonly<Record<string, number>> = BUILT_IN_PUBLICATION_CODES;

interface AthenaRow {
  report_date: string;
  creative_id: string;
  publication_code: string;
  channel: string;
  ad_size: string;
  impressions: string;
  clicks: string;
  viewable_impressions: string;
  unique_ips: string;
}

interface OrderInfo {
  orderId: string;
  campaignId: string;
  publicationId: number;
  publicationName: string;
  itemPath: string;
  itemName: string;
  channel: string;
}

// biome-ignore lint/suspicious/noExplicitAny: the spec's code is untyped Mongo documents.
type Loose = any;

/** Spec §9, as written. */
async function lookupOrder(
  db: Db,
  creativeId: string,
  publicationCode: string,
): Promise<OrderInfo | null> {
  const publicationId = PUBLICATION_CODE_MAP[publicationCode.toLowerCase()];
  if (!publicationId) return null;

  // Strategy 1: Look up by tracking_scripts collection
  const trackingScript: Loose = await db.collection("tracking_scripts").findOne({
    creativeId: creativeId,
    publicationId: publicationId,
  });

  if (trackingScript) {
    const order: Loose = await db.collection("publication_insertion_orders").findOne({
      campaignId: trackingScript.campaignId,
      publicationId: publicationId,
      deletedAt: { $exists: false },
    });

    if (order) {
      return {
        orderId: order._id.toString(),
        campaignId: order.campaignId,
        publicationId: order.publicationId,
        publicationName: order.publicationName,
        itemPath: `tracking-${trackingScript.channel}`,
        itemName: trackingScript.creative?.name || creativeId,
        channel: normalizeChannel(trackingScript.channel),
      };
    }
  }

  // Strategy 2: Parse campaign ID from creative ID
  const campaignMatch = creativeId.match(/(?:cr_|creative_)?([a-z0-9-]+)_/i);
  if (campaignMatch) {
    const order: Loose = await db.collection("publication_insertion_orders").findOne({
      campaignId: { $regex: campaignMatch[1], $options: "i" },
      publicationId: publicationId,
      deletedAt: { $exists: false },
    });

    if (order) {
      const pub = order.selectedInventory?.publications?.find(
        (p: Loose) => p.publicationId === publicationId,
      );
      const item =
        pub?.inventoryItems?.find((i: Loose) =>
          ["website", "newsletter", "streaming"].includes(i.channel),
        ) || pub?.inventoryItems?.[0];

      return {
        orderId: order._id.toString(),
        campaignId: order.campaignId,
        publicationId: order.publicationId,
        publicationName: order.publicationName,
        itemPath: item?.itemPath || `digital-${creativeId}`,
        itemName: item?.itemName || creativeId,
        channel: item?.channel || "website",
      };
    }
  }

  return null;
}

function normalizeChannel(channel: string): string {
  return (
    channel?.replace("_image", "").replace("_text", "").replace("newsletter_", "newsletter") ||
    "website"
  );
}

/**
 * The spec names upsertPerformanceEntry without its body; this is the §7 document on
 * the §7 upsert key, one updateOne per row.
 */
async function upsertPerformanceEntry(db: Db, order: OrderInfo, row: AthenaRow): Promise<void> {
  const impressions = Number(row.impressions);
  const clicks = Number(row.clicks);
  const viewable = Number(row.viewable_impressions);
  const dateStart = new Date(`${row.report_date}T00:00:00.000Z`);
  const dateEnd = new Date(`${row.report_date}T23:59:59.999Z`);
  const now = new Date();
  await db.collection("performance_entries").updateOne(
    { orderId: order.orderId, itemPath: order.itemPath, dateStart, source: "automated" },
    {
      $set: {
        campaignId: order.campaignId,
        publicationId: order.publicationId,
        publicationName: order.publicationName,
        itemName: order.itemName,
        channel: order.channel,
        dimensions: row.ad_size,
        dateEnd,
        metrics: {
          impressions,
          clicks,
          ctr: impressions > 0 ? (clicks / impressions) * 100 : 0,
          viewability: impressions > 0 ? (viewable / impressions) * 100 : 0,
          reach: Number(row.unique_ips),
        },
        enteredBy: "lambda-tracking-sync",
        enteredAt: now,
        updatedAt: now,
      },
      $setOnInsert: { createdAt: now },
    },
    { upsert: true },
  );
}

export interface BaselineResult {
  rows: number;
  synced: number;
  skipped: number;
  errors: number;
  wallSeconds: number;
  rowsPerSecond: number;
  /** Commands the loop sent (driver command monitoring on this client). */
  commands: number;
}

async function* firstRows(csvPath: string, rows: number): AsyncGenerator<AthenaRow> {
  const parser = createReadStream(csvPath).pipe(parse({ columns: true }));
  let n = 0;
  try {
    for await (const row of parser as AsyncIterable<AthenaRow>) {
      if (n++ >= rows) break;
      yield row;
    }
  } finally {
    parser.destroy();
  }
}

/** Runs the spec's loop over the first `rows` rows of the file. */
export async function runRowByRowBaseline(options: {
  uri: string;
  dbName: string;
  csvPath: string;
  rows: number;
  onProgress?: (done: number) => void;
}): Promise<BaselineResult> {
  const client = new MongoClient(options.uri, { monitorCommands: true });
  let commands = 0;
  client.on("commandStarted", () => {
    commands++;
  });
  await client.connect();
  const db = client.db(options.dbName);
  const stats = { rows: 0, synced: 0, skipped: 0, errors: 0 };
  commands = 0;
  const started = performance.now();
  let sent = 0;
  try {
    for await (const row of firstRows(options.csvPath, options.rows)) {
      stats.rows++;
      try {
        const order = await lookupOrder(db, row.creative_id, row.publication_code);
        if (!order) {
          stats.skipped++;
          continue;
        }
        await upsertPerformanceEntry(db, order, row);
        stats.synced++;
      } catch {
        stats.errors++;
      }
      if (stats.rows % 100 === 0) options.onProgress?.(stats.rows);
    }
    sent = commands;
  } finally {
    await client.close();
  }
  const wallSeconds = (performance.now() - started) / 1000;
  return { ...stats, wallSeconds, rowsPerSecond: stats.rows / wallSeconds, commands: sent };
}
