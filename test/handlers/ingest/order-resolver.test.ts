import { type Db, MongoClient } from "mongodb";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { MongoLookupStore } from "../../../handlers/ingest/mongo";
import {
  campaignIdFromCreativeId,
  normalizeChannel,
  OrderResolver,
  wholeCampaignIdPattern,
} from "../../../handlers/ingest/order-resolver";
import { order, seedLookups, trackingScript } from "../../helpers/ingest-fixtures";
import { startTestMongo, type TestMongo } from "../../helpers/mongo";

describe("campaignIdFromCreativeId", () => {
  it.each([
    ["cr_spring-sale_300x250", "spring-sale"],
    ["creative_ABC123_x", "ABC123"],
    ["abc_x", "abc"],
    ["cr_.*_x", "cr"],
    ["nounderscore", undefined],
  ])("parses %s as %s (the spec's pattern)", (creativeId, campaignId) => {
    expect(campaignIdFromCreativeId(creativeId)).toBe(campaignId);
  });
});

describe("wholeCampaignIdPattern", () => {
  it("matches whole ids only, case-insensitively, with metacharacters literal", () => {
    const pattern = new RegExp(wholeCampaignIdPattern(["abc", "a.b", "x*"]), "i");

    expect(["abc", "ABC", "a.b", "x*"].map((id) => pattern.test(id))).toEqual([
      true,
      true,
      true,
      true,
    ]);
    expect(["xabcx", "abcd", "aXb", "xxx", ""].map((id) => pattern.test(id))).toEqual([
      false,
      false,
      false,
      false,
      false,
    ]);
  });
});

describe("normalizeChannel", () => {
  it.each([
    ["display_image", "display"],
    ["newsletter_text", "newsletter"],
    ["newsletter_image", "newsletter"],
    [undefined, "website"],
    ["", "website"],
  ])("normalizes %s to %s", (raw, normalized) => {
    expect(normalizeChannel(raw)).toBe(normalized);
  });
});

describe("OrderResolver against MongoDB", () => {
  let mongo: TestMongo;
  let client: MongoClient;
  let db: Db;

  beforeAll(async () => {
    mongo = await startTestMongo();
    client = await new MongoClient(mongo.uri).connect();
  });
  afterAll(async () => {
    await client?.close();
    await mongo?.stop();
  });
  beforeEach(() => {
    db = client.db(mongo.freshDbName("resolver"));
  });

  const resolve = async (resolver: OrderResolver, creativeId: string, publicationId = 1035) => {
    await resolver.prepare([creativeId]);
    return resolver.get(creativeId, publicationId);
  };

  it("resolves through tracking_scripts first (strategy 1)", async () => {
    const target = order({ campaignId: "camp-1" });
    await seedLookups(db, {
      orders: [target],
      trackingScripts: [
        trackingScript({
          creativeId: "creative-x",
          campaignId: "camp-1",
          channel: "newsletter_image",
        }),
      ],
    });

    expect(await resolve(new OrderResolver(new MongoLookupStore(db)), "creative-x")).toEqual({
      kind: "resolved",
      target: {
        orderId: target._id.toString(),
        campaignId: "camp-1",
        publicationId: 1035,
        publicationName: "Chicago Reader",
        itemPath: "tracking-newsletter_image",
        itemName: "Spring Sale 300x250",
        channel: "newsletter",
        strategy: 1,
      },
    });
  });

  it("falls back to the campaign id in the creative id and the first digital inventory item (strategy 2)", async () => {
    const target = order({
      campaignId: "Spring-Sale",
      selectedInventory: {
        publications: [
          { publicationId: 1038, inventoryItems: [{ itemPath: "other", channel: "website" }] },
          {
            publicationId: 1035,
            inventoryItems: [
              { itemPath: "print.full", itemName: "Full page", channel: "print" },
              { itemPath: "web.box", itemName: "Web box", channel: "website" },
            ],
          },
        ],
      },
    });
    await seedLookups(db, { orders: [target] });

    expect(
      await resolve(new OrderResolver(new MongoLookupStore(db)), "cr_spring-sale_300x250"),
    ).toEqual({
      kind: "resolved",
      target: expect.objectContaining({
        orderId: target._id.toString(),
        itemPath: "web.box",
        itemName: "Web box",
        channel: "website",
        strategy: 2,
      }),
    });
  });

  it("uses digital-<creative> when the order has no inventory for the publication", async () => {
    await seedLookups(db, { orders: [order({ campaignId: "abc" })] });

    const resolution = await resolve(new OrderResolver(new MongoLookupStore(db)), "cr_abc_1");

    expect(resolution).toMatchObject({
      kind: "resolved",
      target: { itemPath: "digital-cr_abc_1", itemName: "cr_abc_1", channel: "website" },
    });
  });

  it("never matches a campaign id that only contains the parsed one", async () => {
    await seedLookups(db, {
      orders: [order({ campaignId: "xabcx" }), order({ campaignId: "abcd" })],
    });

    expect(await resolve(new OrderResolver(new MongoLookupStore(db)), "cr_abc_1")).toMatchObject({
      kind: "skipped",
      reason: "order-not-found",
    });
  });

  it("skips with ambiguous-order when several orders match, by either strategy", async () => {
    await seedLookups(db, {
      orders: [
        order({ campaignId: "dup" }),
        order({ campaignId: "DUP" }),
        order({ campaignId: "s1-a" }),
        order({ campaignId: "s1-a" }),
      ],
      trackingScripts: [trackingScript({ creativeId: "via-script", campaignId: "s1-a" })],
    });
    const resolver = new OrderResolver(new MongoLookupStore(db));

    expect(await resolve(resolver, "cr_dup_1")).toMatchObject({
      kind: "skipped",
      reason: "ambiguous-order",
    });
    expect(await resolve(resolver, "via-script")).toMatchObject({
      kind: "skipped",
      reason: "ambiguous-order",
    });
  });

  it("ignores soft-deleted orders", async () => {
    const live = order({ campaignId: "camp" });
    await seedLookups(db, { orders: [live, order({ campaignId: "camp", deletedAt: new Date() })] });

    expect(await resolve(new OrderResolver(new MongoLookupStore(db)), "cr_camp_1")).toMatchObject({
      kind: "resolved",
      target: { orderId: live._id.toString() },
    });
  });

  it("looks up a batch with at most three queries and caches results, negative ones included", async () => {
    await seedLookups(db, {
      orders: [order({ campaignId: "c1" }), order({ campaignId: "c2" })],
      trackingScripts: [trackingScript({ creativeId: "s-1", campaignId: "c1" })],
    });
    const resolver = new OrderResolver(new MongoLookupStore(db));
    const pairs = ["s-1", "cr_c2_a", "cr_c2_b", "cr_none_a", "nothing"].map((creativeId) => ({
      creativeId,
      publicationId: 1035,
    }));

    await resolver.prepare(pairs.map((pair) => pair.creativeId));
    await resolver.prepare(pairs.map((pair) => pair.creativeId));

    expect(resolver.queries).toBe(3);
    expect(pairs.map((pair) => resolver.get(pair.creativeId, 1035).kind)).toEqual([
      "resolved",
      "resolved",
      "resolved",
      "skipped",
      "skipped",
    ]);
  });
});
