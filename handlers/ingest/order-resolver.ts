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
  /** Tracking scripts with any of the creative ids at any of the publications. */
  findTrackingScripts(
    creativeIds: string[],
    publicationIds: number[],
  ): Promise<TrackingScriptDoc[]>;
  /** Orders not soft-deleted with one of the campaign ids (exact) at one of the publications. */
  findOrdersByCampaignIds(campaignIds: unknown[], publicationIds: number[]): Promise<OrderDoc[]>;
  /**
   * Orders not soft-deleted at one of the publications whose campaignId matches
   * `pattern` (a case-insensitive regex source built by `wholeCampaignIdPattern`).
   */
  findOrdersByCampaignPattern(pattern: string, publicationIds: number[]): Promise<OrderDoc[]>;
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

export interface CreativeAtPublication {
  creativeId: string;
  publicationId: number;
}

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
 * strategies, in batches: `prepare` issues at most three queries for all pairs of a
 * batch not seen before; results, negative ones included, are cached for the
 * invocation, so a creative is looked up once however many rows it has.
 */
export class OrderResolver {
  private readonly cache = new Map<string, Resolution>();
  /** Number of queries issued (for the report and the benchmark). */
  queries = 0;

  constructor(private readonly store: LookupStore) {}

  /** The cached resolution of a pair; `prepare` must have seen it. */
  get(creativeId: string, publicationId: number): Resolution {
    const resolution = this.cache.get(pairKey(creativeId, publicationId));
    if (!resolution) throw new Error(`pair not prepared: ${creativeId} at ${publicationId}`);
    return resolution;
  }

  has(creativeId: string, publicationId: number): boolean {
    return this.cache.has(pairKey(creativeId, publicationId));
  }

  async prepare(pairs: Iterable<CreativeAtPublication>): Promise<void> {
    const pending = new Map<string, CreativeAtPublication>();
    for (const pair of pairs) {
      const key = pairKey(pair.creativeId, pair.publicationId);
      if (!this.cache.has(key)) pending.set(key, pair);
    }
    if (pending.size === 0) return;
    const unresolved = await this.resolveByTrackingScripts(pending);
    await this.resolveByCampaignId(unresolved);
  }

  // Strategy 1: tracking_scripts {creativeId, publicationId} → order {campaignId, publicationId}.
  private async resolveByTrackingScripts(
    pending: Map<string, CreativeAtPublication>,
  ): Promise<Map<string, CreativeAtPublication>> {
    const pairs = [...pending.values()];
    this.queries++;
    const scripts = await this.store.findTrackingScripts(
      unique(pairs.map((pair) => pair.creativeId)),
      unique(pairs.map((pair) => pair.publicationId)),
    );
    const scriptsByPair = new Map<string, TrackingScriptDoc[]>();
    for (const script of scripts) {
      const key = pairKey(script.creativeId, script.publicationId);
      if (!pending.has(key) || script.campaignId === undefined || script.campaignId === null) {
        continue;
      }
      const list = scriptsByPair.get(key);
      if (list) list.push(script);
      else scriptsByPair.set(key, [script]);
    }
    const ordersByCampaign = new Map<string, OrderDoc[]>();
    if (scriptsByPair.size > 0) {
      const campaignIds = uniqueBy([...scriptsByPair.values()].flat().map((s) => s.campaignId));
      const publicationIds = unique(
        [...scriptsByPair.values()].map((s) => s[0]?.publicationId ?? 0),
      );
      this.queries++;
      const orders = await this.store.findOrdersByCampaignIds(campaignIds, publicationIds);
      for (const order of orders) {
        const key = `${String(order.publicationId)}|${String(order.campaignId)}`;
        const list = ordersByCampaign.get(key);
        if (list) list.push(order);
        else ordersByCampaign.set(key, [order]);
      }
    }
    const unresolved = new Map<string, CreativeAtPublication>();
    for (const [key, pair] of pending) {
      const pairScripts = scriptsByPair.get(key) ?? [];
      const candidates = new Map<string, { order: OrderDoc; script: TrackingScriptDoc }>();
      for (const script of pairScripts) {
        const matching = ordersByCampaign.get(`${pair.publicationId}|${String(script.campaignId)}`);
        for (const order of matching ?? []) {
          const id = String(order._id);
          if (!candidates.has(id)) candidates.set(id, { order, script });
        }
      }
      if (candidates.size > 1) {
        this.cache.set(key, {
          kind: "skipped",
          reason: "ambiguous-order",
          detail: `tracking scripts lead to ${candidates.size} orders`,
        });
        continue;
      }
      const only = [...candidates.values()][0];
      if (!only) {
        unresolved.set(key, pair);
        continue;
      }
      const rawChannel = typeof only.script.channel === "string" ? only.script.channel : "";
      const creativeName = only.script.creative?.name;
      this.cache.set(key, {
        kind: "resolved",
        target: {
          ...orderFields(only.order, pair.publicationId),
          // A script without a channel counts as "website", as normalizeChannel does.
          itemPath: `tracking-${rawChannel || "website"}`,
          itemName:
            typeof creativeName === "string" && creativeName !== ""
              ? creativeName
              : pair.creativeId,
          channel: normalizeChannel(rawChannel),
          strategy: 1,
        },
      });
    }
    return unresolved;
  }

  // Strategy 2: the campaign id parsed from the creative id, matched whole and case-insensitively.
  private async resolveByCampaignId(pending: Map<string, CreativeAtPublication>): Promise<void> {
    const wanted = new Map<string, { pair: CreativeAtPublication; campaignId: string }>();
    for (const [key, pair] of pending) {
      const campaignId = campaignIdFromCreativeId(pair.creativeId);
      if (campaignId === undefined) {
        this.cache.set(key, {
          kind: "skipped",
          reason: "order-not-found",
          detail: "no tracking script and no campaign id in the creative id",
        });
      } else {
        wanted.set(key, { pair, campaignId: campaignId.toLowerCase() });
      }
    }
    if (wanted.size === 0) return;
    const entries = [...wanted.values()];
    this.queries++;
    const orders = await this.store.findOrdersByCampaignPattern(
      wholeCampaignIdPattern(unique(entries.map((entry) => entry.campaignId))),
      unique(entries.map((entry) => entry.pair.publicationId)),
    );
    const byCampaign = new Map<string, Map<string, OrderDoc>>();
    for (const order of orders) {
      if (typeof order.campaignId !== "string") continue;
      const key = `${String(order.publicationId)}|${order.campaignId.toLowerCase()}`;
      const byId = byCampaign.get(key) ?? new Map<string, OrderDoc>();
      byId.set(String(order._id), order);
      byCampaign.set(key, byId);
    }
    for (const [key, { pair, campaignId }] of wanted) {
      const candidates = [
        ...(byCampaign.get(`${pair.publicationId}|${campaignId}`)?.values() ?? []),
      ];
      const order = candidates[0];
      if (candidates.length > 1) {
        this.cache.set(key, {
          kind: "skipped",
          reason: "ambiguous-order",
          detail: `campaign "${campaignId}" matches ${candidates.length} orders`,
        });
      } else if (!order) {
        this.cache.set(key, {
          kind: "skipped",
          reason: "order-not-found",
          detail: `no order for campaign "${campaignId}"`,
        });
      } else {
        this.cache.set(key, { kind: "resolved", target: strategyTwoTarget(order, pair) });
      }
    }
  }
}

function strategyTwoTarget(order: OrderDoc, pair: CreativeAtPublication): EntryTarget {
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

function unique<T>(values: T[]): T[] {
  return [...new Set(values)];
}

function uniqueBy(values: unknown[]): unknown[] {
  const seen = new Map<string, unknown>();
  for (const value of values) {
    const key = `${typeof value}:${String(value)}`;
    if (!seen.has(key)) seen.set(key, value);
  }
  return [...seen.values()];
}
