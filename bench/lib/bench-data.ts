import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { ObjectId } from "mongodb";
import { createRandom } from "../../local/random";
import {
  DAILY_AGGREGATE_COLUMNS,
  type InsertionOrderDoc,
  type InventoryItem,
  type MongoFixtures,
  type PublicationDoc,
  SPEC_PUBLICATION_CODES,
  type TrackingScriptDoc,
} from "../../local/sample-data";

// Still exported here so bench code keeps one import for the data and its generator.
export { createRandom };

/**
 * Benchmark data at scale: a fixed "universe" of campaigns, orders, creatives and
 * tracking scripts (decided by the seed alone), and a daily_aggregates CSV of any
 * number of rows over it, written by streaming in Athena's dialect. The universe does
 * not depend on the row count, so a 100,000-row and a 1,000,000-row file resolve
 * against the same lookup data and differ only in how many days they cover.
 *
 * Every combination (creative, publication code, channel, ad size) appears at most
 * once a day, as Athena's GROUP BY output does; each carries the outcome it was built
 * for, so the bench can check the ingest's counts against the design.
 */

export const DEFAULT_SEED = 20_251_122;
export const FIRST_REPORT_DATE = "2025-09-01";
const DAY_MS = 86_400_000;

/** Outcome a row of a combination was built for. */
export type Designed = "synced" | "unknown-publication" | "order-not-found" | "error";

export interface Combination {
  creativeId: string;
  publicationCode: string;
  channel: string;
  adSize: string;
  designed: Designed;
}

/**
 * The order of a day's rows. `query`: as the start function's query returns them
 * (`ORDER BY report_date, publication_code, creative_id`; ties, the channels and ad
 * sizes of one creative, in no particular order). `shuffled`: no order at all, as a
 * hand-made file dropped into `reprocess/` may have it; the ingest's worst case.
 */
export type RowOrder = "query" | "shuffled";
const ROW_ORDERS: readonly RowOrder[] = ["query", "shuffled"];

/** The `--order` flag's value as a RowOrder, or an error naming the choices. */
export function parseRowOrder(text: string): RowOrder {
  const order = ROW_ORDERS.find((name) => name === text);
  if (order === undefined) {
    throw new Error(`--order must be one of ${ROW_ORDERS.join(", ")}, got '${text}'`);
  }
  return order;
}

export interface BenchUniverse {
  fixtures: MongoFixtures;
  /** In the order rows are written each day (see `RowOrder`). */
  combinations: Combination[];
  order: RowOrder;
  campaigns: number;
  creatives: number;
}

export interface UniverseOptions {
  seed?: number;
  campaigns?: number;
  /** Creatives per campaign, on average. */
  creativesPerCampaign?: number;
  /** Default `query`: what Athena writes for the start function's query. */
  order?: RowOrder;
}

const CAMPAIGN_WORDS = [
  "spring",
  "jazz",
  "museum",
  "transit",
  "market",
  "opera",
  "coat-drive",
  "health",
  "library",
  "parks",
  "arts",
  "vote",
];
const UNKNOWN_PUBLICATION_CODES = ["oaklandnews", "garypost", "lakeviewer"];
/** Tracking-script channel → the CSV's channel column and the ad sizes it serves. */
const CREATIVE_KINDS = [
  { scriptChannel: "website_image", channel: "website", sizes: ["300x250", "728x90", "320x50"] },
  { scriptChannel: "website_image", channel: "website", sizes: ["160x600", "300x600"] },
  { scriptChannel: "website_text", channel: "website", sizes: ["native"] },
  { scriptChannel: "newsletter_image", channel: "newsletter", sizes: ["nl600"] },
  { scriptChannel: "newsletter_text", channel: "newsletter", sizes: ["nltext"] },
  { scriptChannel: "streaming", channel: "streaming", sizes: ["preroll15", "preroll30"] },
] as const;

function pick<T>(random: () => number, values: readonly T[]): T {
  return values[Math.floor(random() * values.length)] as T;
}

function objectId(random: () => number): ObjectId {
  let hex = "";
  for (let i = 0; i < 3; i++) {
    hex += Math.floor(random() * 0x1_0000_0000)
      .toString(16)
      .padStart(8, "0");
  }
  return new ObjectId(hex);
}

function shuffle<T>(random: () => number, values: T[]): T[] {
  for (let i = values.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [values[i], values[j]] = [values[j] as T, values[i] as T];
  }
  return values;
}

/**
 * The lookup data and the daily combinations. Defaults: 700 campaigns at 2–6 of the
 * 14 publications, ~9 creatives each (~6,300 creatives), ~27,000 combinations a day.
 */
export function buildUniverse(options: UniverseOptions = {}): BenchUniverse {
  const random = createRandom(options.seed ?? DEFAULT_SEED);
  const campaignCount = options.campaigns ?? 700;
  const perCampaign = options.creativesPerCampaign ?? 9;
  const created = new Date(Date.UTC(2025, 7, 1));
  const publications = Object.entries(SPEC_PUBLICATION_CODES).map(([code, id]) => ({
    code,
    id,
    name: `${code[0]?.toUpperCase()}${code.slice(1)} Media`,
  }));
  const publicationDocs: PublicationDoc[] = publications.map((publication) => ({
    _id: objectId(random),
    publicationId: publication.id,
    basicInfo: {
      publicationName: publication.name,
      websiteUrl: `https://${publication.code}.example`,
    },
  }));
  const orders: InsertionOrderDoc[] = [];
  const scripts: TrackingScriptDoc[] = [];
  const combinations: Combination[] = [];
  let creativeCount = 0;

  for (let c = 0; c < campaignCount; c++) {
    const campaignId = `${pick(random, CAMPAIGN_WORDS)}-${String(c).padStart(4, "0")}`;
    const atPublications = shuffle(random, [...publications]).slice(
      0,
      2 + Math.floor(random() * 5),
    );
    const live = new Map<number, boolean>();
    for (const publication of atPublications) {
      // A few orders are soft-deleted: their creatives' rows find no order.
      const deleted = random() < 0.02;
      live.set(publication.id, !deleted);
      const items: InventoryItem[] = [
        {
          itemPath: `${publication.code}/print/full-page`,
          itemName: "Full page",
          channel: "print",
        },
        {
          itemPath: `${publication.code}/website/display`,
          itemName: "Display",
          channel: "website",
        },
        {
          itemPath: `${publication.code}/newsletter/daily`,
          itemName: "Newsletter",
          channel: "newsletter",
        },
      ];
      orders.push({
        _id: objectId(random),
        campaignId,
        campaignName: `Campaign ${campaignId}`,
        publicationId: publication.id,
        publicationName: publication.name,
        status: "confirmed",
        selectedInventory: {
          publications: [
            {
              publicationId: publication.id,
              publicationName: publication.name,
              inventoryItems: items,
            },
          ],
        },
        createdAt: created,
        ...(deleted ? { deletedAt: created } : {}),
      });
    }
    const creatives = 1 + Math.floor(random() * (2 * perCampaign - 1));
    for (let k = 0; k < creatives; k++) {
      const kind = pick(random, CREATIVE_KINDS);
      const primarySize = pick(random, kind.sizes);
      const prefix = random() < 0.7 ? "cr_" : "creative_";
      const creativeId = `${prefix}${campaignId}_${primarySize}-${k}`;
      creativeCount++;
      // Most creatives have tracking scripts (strategy 1); the rest resolve by the
      // campaign id in their name (strategy 2).
      const scripted = random() < 0.85;
      const sizes = random() < 0.25 && kind.sizes.length > 1 ? kind.sizes : [primarySize];
      const runsAt = shuffle(random, [...atPublications]).slice(
        0,
        1 + Math.floor(random() * atPublications.length),
      );
      for (const publication of runsAt) {
        if (scripted) {
          scripts.push({
            _id: objectId(random),
            creativeId,
            publicationId: publication.id,
            campaignId,
            channel: kind.scriptChannel,
            creative: { name: `${campaignId} ${primarySize} #${k}`, size: primarySize },
            createdAt: created,
          });
        }
        const designed: Designed = live.get(publication.id) ? "synced" : "order-not-found";
        for (const adSize of sizes) {
          combinations.push({
            creativeId,
            publicationCode: publication.code,
            channel: kind.channel,
            adSize,
            designed,
          });
        }
      }
      // Pixels seen on a site the campaign did not buy: no script, no order there.
      if (random() < 0.06) {
        const elsewhere = publications.find((publication) => !live.has(publication.id));
        if (elsewhere) {
          combinations.push({
            creativeId,
            publicationCode: elsewhere.code,
            channel: kind.channel,
            adSize: primarySize,
            designed: "order-not-found",
          });
        }
      }
      // Pixels on partner sites outside the publication map.
      if (random() < 0.04) {
        combinations.push({
          creativeId,
          publicationCode: pick(random, UNKNOWN_PUBLICATION_CODES),
          channel: kind.channel,
          adSize: primarySize,
          designed: "unknown-publication",
        });
      }
    }
  }
  // Shuffled first either way: ties under the query's ORDER BY then fall in no
  // particular order, as Athena leaves them, and the seed's sequence is the same.
  shuffle(random, combinations);
  const order = options.order ?? "query";
  if (order === "query") combinations.sort(byQueryOrder);
  return {
    fixtures: {
      publications: publicationDocs,
      tracking_scripts: scripts,
      publication_insertion_orders: orders,
    },
    combinations,
    order,
    campaigns: campaignCount,
    creatives: creativeCount,
  };
}

/** `publication_code, creative_id` as Athena's ORDER BY compares varchars (these are ASCII). */
function byQueryOrder(a: Combination, b: Combination): number {
  if (a.publicationCode !== b.publicationCode)
    return a.publicationCode < b.publicationCode ? -1 : 1;
  if (a.creativeId !== b.creativeId) return a.creativeId < b.creativeId ? -1 : 1;
  return 0;
}

/** Athena's quoting: every value double-quoted, quotes doubled; NULL is an unquoted empty field. */
export function athenaField(value: string | number | null): string {
  if (value === null) return "";
  const text = String(value);
  return text.includes('"') ? `"${text.replaceAll('"', '""')}"` : `"${text}"`;
}

export function athenaLine(values: readonly (string | number | null)[]): string {
  return `${values.map(athenaField).join(",")}\n`;
}

export const CSV_HEADER = athenaLine(DAILY_AGGREGATE_COLUMNS);

export function reportDateOf(day: number): string {
  return new Date(Date.parse(`${FIRST_REPORT_DATE}T00:00:00Z`) + day * DAY_MS)
    .toISOString()
    .slice(0, 10);
}

/** Share of rows written with a NULL count (a validation error, as Athena writes a NULL). */
const NULL_COUNT_RATE = 0.0005;

export interface RowTally {
  rows: number;
  days: number;
  firstDate: string;
  lastDate: string;
  /** How many rows were built for each outcome. */
  designed: Record<Designed, number>;
}

/**
 * The data lines (no header) of a file of `rows` rows: day after day, every combination
 * once a day in the universe's order, until `rows` are written. Numbers come from the
 * seed and the row number only, so the same arguments give the same bytes.
 */
export function* benchLines(
  universe: BenchUniverse,
  rows: number,
  seed: number = DEFAULT_SEED,
  tally?: RowTally,
): Generator<string> {
  const random = createRandom(seed ^ 0x5eed);
  const combos = universe.combinations;
  if (combos.length === 0) throw new Error("the universe has no combinations");
  let date = reportDateOf(0);
  for (let i = 0; i < rows; i++) {
    const position = i % combos.length;
    if (position === 0) {
      date = reportDateOf(i / combos.length);
      if (tally) {
        tally.days++;
        if (tally.firstDate === "") tally.firstDate = date;
        tally.lastDate = date;
      }
    }
    const combo = combos[position] as Combination;
    const r = random();
    // Skewed impressions (a few big sites and creatives, many small ones), some zero.
    const impressions = r < 0.03 ? 0 : Math.floor(20 + random() ** 3 * 40_000);
    const clicks = Math.floor(impressions * random() * 0.004);
    const viewable = Math.floor(impressions * (0.45 + random() * 0.5));
    const uniqueIps = Math.floor(impressions * (0.3 + random() * 0.6));
    const nullClicks = random() < NULL_COUNT_RATE;
    if (tally) {
      tally.rows++;
      tally.designed[nullClicks ? "error" : combo.designed]++;
    }
    yield athenaLine([
      date,
      combo.creativeId,
      combo.publicationCode,
      combo.channel,
      combo.adSize,
      impressions,
      nullClicks ? null : clicks,
      viewable,
      uniqueIps,
    ]);
  }
}

export function emptyTally(): RowTally {
  return {
    rows: 0,
    days: 0,
    firstDate: "",
    lastDate: "",
    designed: { synced: 0, "unknown-publication": 0, "order-not-found": 0, error: 0 },
  };
}

/**
 * Writes the CSV (header + `rows` rows) to `path` by streaming in ~256 KB chunks with
 * backpressure: memory stays small whatever the row count.
 */
export async function writeBenchCsv(
  path: string,
  universe: BenchUniverse,
  rows: number,
  seed: number = DEFAULT_SEED,
  onProgress?: (rowsWritten: number) => void,
): Promise<RowTally & { bytes: number }> {
  const out = createWriteStream(path);
  const failed = new Promise<never>((_, reject) => out.once("error", reject));
  failed.catch(() => {});
  const tally = emptyTally();
  let bytes = 0;
  let chunk = CSV_HEADER;
  const write = async (text: string) => {
    bytes += Buffer.byteLength(text);
    if (!out.write(text)) await Promise.race([once(out, "drain"), failed]);
  };
  for (const line of benchLines(universe, rows, seed, tally)) {
    chunk += line;
    if (chunk.length >= 256 * 1024) {
      await write(chunk);
      chunk = "";
      onProgress?.(tally.rows);
    }
  }
  if (chunk !== "") await write(chunk);
  out.end();
  await Promise.race([once(out, "finish"), failed]);
  return { ...tally, bytes };
}
