/** A `tracking_scripts` document, as far as the lookup needs it. */
export interface TrackingScriptDoc {
  creativeId: string;
  publicationId: number;
  campaignId?: unknown;
  channel?: unknown;
  creative?: { name?: unknown } | null;
}

export interface InventoryItemDoc {
  itemPath?: unknown;
  itemName?: unknown;
  channel?: unknown;
}

/** A `publication_insertion_orders` document, as far as the lookup needs it. */
export interface OrderDoc {
  _id: unknown;
  campaignId?: unknown;
  publicationId?: unknown;
  publicationName?: unknown;
  selectedInventory?: {
    publications?: { publicationId?: unknown; inventoryItems?: InventoryItemDoc[] }[];
  } | null;
}

/** The reads the resolver needs; the MongoDB adapter implements them (one query each). */
export interface LookupStore {
  /** Tracking scripts of any of the creative ids, at every publication. */
  findTrackingScripts(creativeIds: string[]): Promise<TrackingScriptDoc[]>;
  /** Orders not soft-deleted with one of the campaign ids (exact), at every publication. */
  findOrdersByCampaignIds(campaignIds: unknown[]): Promise<OrderDoc[]>;
  /**
   * Orders not soft-deleted whose campaignId matches `pattern` (a case-insensitive
   * regex source built by `wholeCampaignIdPattern`), at every publication.
   */
  findOrdersByCampaignPattern(pattern: string): Promise<OrderDoc[]>;
}

/** Where a resolved row's numbers go: the entry's identity and descriptive fields. */
export interface EntryTarget {
  orderId: string;
  campaignId: unknown;
  publicationId: number;
  publicationName: string;
  itemPath: string;
  itemName: string;
  channel: string;
  strategy: 1 | 2;
}

export type SkipReason = "unknown-publication" | "order-not-found" | "ambiguous-order";

export type Resolution =
  | { kind: "resolved"; target: EntryTarget }
  | { kind: "skipped"; reason: SkipReason; detail: string };

const DIGITAL_CHANNELS = ["website", "newsletter", "streaming"];
// The spec's creative-id format: cr_{campaignId}_{suffix} or creative_{campaignId}_{suffix}.
const CAMPAIGN_IN_CREATIVE = /(?:cr_|creative_)?([a-z0-9-]+)_/i;

/** The campaign id the spec parses out of a creative id, or undefined. */
export function campaignIdFromCreativeId(creativeId: string): string | undefined {
  return CAMPAIGN_IN_CREATIVE.exec(creativeId)?.[1];
}

/** Escapes every regex metacharacter so the input matches only itself. */
export function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
}

/**
 * One anchored regex source matching any of the campaign ids as a WHOLE string (use
 * with the `i` option): campaign `abc` must not match `xabcx`, and `.` or `*` in an
 * id are literal (DESIGN.md change 2).
 */
export function wholeCampaignIdPattern(campaignIds: readonly string[]): string {
  return `^(?:${campaignIds.map(escapeRegex).join("|")})$`;
}

/** The spec's normalizeChannel (first occurrence of each, as written there). */
export function normalizeChannel(channel: string | undefined): string {
  if (!channel) return "website";
  return (
    channel.replace("_image", "").replace("_text", "").replace("newsletter_", "newsletter") ||
    "website"
  );
}

const pairKey = (creativeId: string, publicationId: number) => `${publicationId}|${creativeId}`;

/**
 * Resolves (creative id, publicationId) pairs to entry targets with the spec's two
 * strategies. Lookups are fetched per CREATIVE, for all publications at once, and
 * cached for the invocation with negative results: `prepare` issues at most three
 * queries for all creatives of a batch not seen before, and none once every creative
 * has been seen, however many publications and rows it has.
 */
export class OrderResolver {
  private readonly resolutions = new Map<string, Resolution>();
  private readonly scriptsByCreative = new Map<string, TrackingScriptDoc[]>();
  /** Orders by exact campaign id (strategy 1), all publications. */
  private readonly ordersByCampaign = new Map<string, OrderDoc[]>();
  /** Orders by lower-cased campaign id (strategy 2), all publications. */
  private readonly ordersByCampaignLower = new Map<string, OrderDoc[]>();
  /** Number of queries issued (for the report and the benchmark). */
  queries = 0;

  constructor(private readonly store: LookupStore) {}

  /** The resolution of a pair; `prepare` must have seen its creative. */
  get(creativeId: string, publicationId: number): Resolution {
    const key = pairKey(creativeId, publicationId);
    let resolution = this.resolutions.get(key);
    if (!resolution) {
      if (!this.scriptsByCreative.has(creativeId)) {
        throw new Error(`creative not prepared: ${creativeId}`);
      }
      resolution = this.resolve(creativeId, publicationId);
      this.resolutions.set(key, resolution);
    }
    return resolution;
  }

  /** Whether the creative's lookups are cached (then `get` needs no query). */
  knows(creativeId: string): boolean {
    return this.scriptsByCreative.has(creativeId);
  }

  /** Fetches the lookups of the creatives not seen before: at most three queries. */
  async prepare(creativeIds: Iterable<string>): Promise<void> {
    const creatives = new Set<string>();
    for (const creativeId of creativeIds) {
      if (!this.scriptsByCreative.has(creativeId)) creatives.add(creativeId);
    }
    if (creatives.size === 0) return;
    const newCreatives = [...creatives];

    // Strategy 1's data: the creatives' tracking scripts and their campaigns' orders.
    this.queries++;
    const scripts = await this.store.findTrackingScripts(newCreatives);
    for (const creativeId of newCreatives) this.scriptsByCreative.set(creativeId, []);
    const campaignIds = new Map<string, unknown>();
    for (const script of scripts) {
      if (script.campaignId === undefined || script.campaignId === null) continue;
      this.scriptsByCreative.get(script.creativeId)?.push(script);
      const campaignKey = String(script.campaignId);
      if (!this.ordersByCampaign.has(campaignKey)) campaignIds.set(campaignKey, script.campaignId);
    }
    if (campaignIds.size > 0) {
      this.queries++;
      const orders = await this.store.findOrdersByCampaignIds([...campaignIds.values()]);
      for (const campaignKey of campaignIds.keys()) this.ordersByCampaign.set(campaignKey, []);
      for (const order of orders) this.ordersByCampaign.get(String(order.campaignId))?.push(order);
    }

    // Strategy 2's data: orders whose campaign id is the one parsed from a creative id.
    const parsed = new Set<string>();
    for (const creativeId of newCreatives) {
      const campaignId = campaignIdFromCreativeId(creativeId)?.toLowerCase();
      if (campaignId !== undefined && !this.ordersByCampaignLower.has(campaignId))
        parsed.add(campaignId);
    }
    if (parsed.size > 0) {
      this.queries++;
      const orders = await this.store.findOrdersByCampaignPattern(
        wholeCampaignIdPattern([...parsed]),
      );
      for (const campaignId of parsed) this.ordersByCampaignLower.set(campaignId, []);
      for (const order of orders) {
        if (typeof order.campaignId !== "string") continue;
        this.ordersByCampaignLower.get(order.campaignId.toLowerCase())?.push(order);
      }
    }
  }

  private resolve(creativeId: string, publicationId: number): Resolution {
    // Strategy 1: tracking_scripts {creativeId, publicationId} → order {campaignId, publicationId}.
    const candidates = new Map<string, { order: OrderDoc; script: TrackingScriptDoc }>();
    for (const script of this.scriptsByCreative.get(creativeId) ?? []) {
      if (script.publicationId !== publicationId) continue;
      for (const order of this.ordersByCampaign.get(String(script.campaignId)) ?? []) {
        if (order.publicationId !== publicationId) continue;
        const id = String(order._id);
        if (!candidates.has(id)) candidates.set(id, { order, script });
      }
    }
    if (candidates.size > 1) {
      return {
        kind: "skipped",
        reason: "ambiguous-order",
        detail: `tracking scripts lead to ${candidates.size} orders`,
      };
    }
    const only = [...candidates.values()][0];
    if (only) {
      const rawChannel = typeof only.script.channel === "string" ? only.script.channel : "";
      const creativeName = only.script.creative?.name;
      return {
        kind: "resolved",
        target: {
          ...orderFields(only.order, publicationId),
          // A script without a channel counts as "website", as normalizeChannel does.
          itemPath: `tracking-${rawChannel || "website"}`,
          itemName:
            typeof creativeName === "string" && creativeName !== "" ? creativeName : creativeId,
          channel: normalizeChannel(rawChannel),
          strategy: 1,
        },
      };
    }

    // Strategy 2: the campaign id parsed from the creative id, matched whole and case-insensitively.
    const campaignId = campaignIdFromCreativeId(creativeId)?.toLowerCase();
    if (campaignId === undefined) {
      return {
        kind: "skipped",
        reason: "order-not-found",
        detail: "no tracking script and no campaign id in the creative id",
      };
    }
    const orders = new Map<string, OrderDoc>();
    for (const order of this.ordersByCampaignLower.get(campaignId) ?? []) {
      if (order.publicationId === publicationId) orders.set(String(order._id), order);
    }
    const matches = [...orders.values()];
    const order = matches[0];
    if (matches.length > 1) {
      return {
        kind: "skipped",
        reason: "ambiguous-order",
        detail: `campaign "${campaignId}" matches ${matches.length} orders`,
      };
    }
    if (!order) {
      return {
        kind: "skipped",
        reason: "order-not-found",
        detail: `no order for campaign "${campaignId}"`,
      };
    }
    return { kind: "resolved", target: strategyTwoTarget(order, creativeId, publicationId) };
  }
}

function strategyTwoTarget(
  order: OrderDoc,
  creativeId: string,
  publicationId: number,
): EntryTarget {
  const pair = { creativeId, publicationId };
  const publication = order.selectedInventory?.publications?.find(
    (candidate) => candidate.publicationId === pair.publicationId,
  );
  const items = publication?.inventoryItems ?? [];
  const item =
    items.find((candidate) => DIGITAL_CHANNELS.includes(String(candidate.channel))) ?? items[0];
  return {
    ...orderFields(order, pair.publicationId),
    itemPath: nonEmptyString(item?.itemPath) ?? `digital-${pair.creativeId}`,
    itemName: nonEmptyString(item?.itemName) ?? pair.creativeId,
    channel: nonEmptyString(item?.channel) ?? "website",
    strategy: 2,
  };
}

function orderFields(order: OrderDoc, publicationId: number) {
  return {
    orderId: String(order._id),
    campaignId: order.campaignId,
    publicationId: typeof order.publicationId === "number" ? order.publicationId : publicationId,
    publicationName: typeof order.publicationName === "string" ? order.publicationName : "",
  };
}

function nonEmptyString(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}
