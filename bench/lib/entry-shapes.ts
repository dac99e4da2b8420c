import type { Document, ObjectId } from "mongodb";
import {
  type Contribution,
  compareUtf8,
  contributionKey,
  type EntryUpdate,
  SOURCE,
} from "../../handlers/ingest/entry-update";

/**
 * Synthetic performance entries of the ingest's shape, for the measurements that need
 * entries without a CSV (bench/mongo-upserts.ts, bench/statement-cost.ts).
 */

const ITEM_PATHS = 50;
const DAYS = 20;
const FIRST_DAY = Date.UTC(2025, 0, 1);
const DAY_MS = 86_400_000;

/** The i-th distinct key: orders x item paths x days covers every i up to the maximum. */
export function keyFor(i: number, orderIds: readonly ObjectId[]): Document {
  const day = i % DAYS;
  const item = Math.floor(i / DAYS) % ITEM_PATHS;
  const order = Math.floor(i / (DAYS * ITEM_PATHS));
  return {
    orderId: orderIds[order],
    itemPath: `pub-${item}/ad-slot`,
    dateStart: new Date(FIRST_DAY + day * DAY_MS),
    source: "automated",
  };
}

/** How many orders `keyFor` needs for `count` distinct keys. */
export function ordersFor(count: number): number {
  return Math.ceil(count / (DAYS * ITEM_PATHS));
}

/**
 * The i-th entry as the ingest would write it: 1–3 contributions (sorted by key) whose
 * numbers move with `round`, and the order's fields.
 */
export function entryFor(i: number, orderIds: readonly ObjectId[], round: number): EntryUpdate {
  const key = keyFor(i, orderIds);
  const sizes = ["300x250", "728x90", "320x50"];
  const contributions: Contribution[] = [];
  for (let c = 0; c <= i % 3; c++) {
    const creativeId = `cr_campaign-${i % 101}_${sizes[c]}`;
    const impressions = 1000 + round + ((i + c) % 97);
    contributions.push({
      key: contributionKey(creativeId, "chireader", "website", sizes[c] as string),
      creativeId,
      publicationCode: "chireader",
      channel: "website",
      adSize: sizes[c] as string,
      itemName: `Campaign ${i % 101} ${sizes[c]}`,
      impressions,
      clicks: (i + c) % 13,
      viewableImpressions: Math.floor(impressions * 0.7),
      uniqueIps: Math.floor(impressions * 0.6),
      rev: 1 + round,
      run: "bench-run",
      line: 2 + i,
    });
  }
  contributions.sort((a, b) => compareUtf8(a.key, b.key));
  return {
    key: {
      orderId: (key.orderId as ObjectId).toHexString(),
      itemPath: key.itemPath as string,
      dateStart: key.dateStart as Date,
      source: SOURCE,
    },
    fields: {
      dateEnd: key.dateStart as Date,
      campaignId: `campaign-${i % 101}`,
      publicationId: 1000 + (i % 50),
      publicationName: `Publication ${i % 50}`,
      channel: "website",
    },
    contributions,
  };
}
