import type { Document } from "mongodb";

export const SOURCE = "automated";
export const ENTERED_BY = "lambda-tracking-sync";

/**
 * One creative's numbers inside an entry (DESIGN.md change 1). Stored as array element
 * values keyed by `key`, never as field names, so ids like `$x` or `a.b` stay data.
 */
export interface Contribution {
  /** JSON of [creative_id, publication_code (lower case), channel, ad_size]: the row's identity. */
  key: string;
  creativeId: string;
  publicationCode: string;
  channel: string | null;
  adSize: string | null;
  itemName: string;
  impressions: number;
  clicks: number;
  viewableImpressions: number;
  uniqueIps: number;
  /**
   * The ledger revision of the row identity's fact that wrote these numbers (ledger.ts).
   * An update replaces a stored contribution only with one of the same or a higher
   * revision, so a slow writer can never put back numbers a newer run moved or replaced.
   */
  rev: number;
  /** Provenance: the run (`tracking_sync_runs._id`) and the line of the file that wrote these numbers. */
  run: string;
  line: number;
}

/** The upsert key, exactly: the unique index covers these four fields. */
export interface EntryKey {
  orderId: string;
  itemPath: string;
  dateStart: Date;
  source: typeof SOURCE;
}

/** The values one update writes besides the contributions (all from the resolved order). */
export interface EntryFields {
  dateEnd: Date;
  campaignId: unknown;
  publicationId: number;
  publicationName: string;
  channel: string;
}

export interface EntryUpdate {
  key: EntryKey;
  fields: EntryFields;
  /** The file's contributions to this entry, sorted by key, one per key. */
  contributions: Contribution[];
  /**
   * Dry runs: the keys whose contribution is exactly what this run already placed in
   * this entry earlier in the file (so, once that entry is no longer simulated in
   * memory, the update is still judged as a real run would judge it).
   */
  sameAsThisRun?: ReadonlySet<string>;
}

export interface EntryMetrics {
  impressions: number;
  clicks: number;
  ctr: number;
  viewability: number;
  reach: number;
}

export function contributionKey(
  creativeId: string,
  publicationCode: string,
  channel: string | null,
  adSize: string | null,
): string {
  return JSON.stringify([creativeId, publicationCode.toLowerCase(), channel, adSize]);
}

/** Orders strings as MongoDB's simple collation does: by UTF-8 bytes. */
export function compareUtf8(a: string, b: string): number {
  if (a === b) return 0;
  // Below U+D800, UTF-16 code-unit order equals UTF-8 byte order (the common, cheap case).
  if (!HIGH_CODE_UNIT.test(a) && !HIGH_CODE_UNIT.test(b)) return a < b ? -1 : 1;
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

const HIGH_CODE_UNIT = /[\uD800-\uFFFF]/;

/** ctr/viewability as the spec computes them, 0 when there are no impressions. */
export function percentOf(part: number, whole: number): number {
  return whole > 0 ? (part / whole) * 100 : 0;
}

/**
 * The metrics of an entry, derived from all its contributions. `reach` is the sum of
 * the contributions' unique IPs: daily aggregates cannot be de-duplicated across
 * creatives, so it is an upper bound of the entry's true reach.
 */
export function metricsOf(contributions: readonly Contribution[]): EntryMetrics {
  let impressions = 0;
  let clicks = 0;
  let viewable = 0;
  let reach = 0;
  for (const contribution of contributions) {
    impressions += contribution.impressions;
    clicks += contribution.clicks;
    viewable += contribution.viewableImpressions;
    reach += contribution.uniqueIps;
  }
  return {
    impressions,
    clicks,
    ctr: percentOf(clicks, impressions),
    viewability: percentOf(viewable, impressions),
    reach,
  };
}

// Temporary fields used inside the pipeline, removed by its last stage. Names are short
// on purpose: the pipeline is serialized once per entry per batch, so its size is CPU.
const NEXT = "_tsc";
const CHANGED = "_tsu";
const NEXT_PATH = `$${NEXT}`;

/** The order's fields an update sets, in the order they are compared and written. */
const ORDER_FIELDS = [
  "dateEnd",
  "campaignId",
  "publicationId",
  "publicationName",
  "channel",
  "enteredBy",
] as const;

/** Distinct non-empty strings of an array expression, sorted by bytes, joined with ", "; null if none. */
function joinDistinct(arrayExpression: string): Document {
  return {
    $reduce: {
      input: {
        $sortArray: { input: { $setDifference: [arrayExpression, [null, ""]] }, sortBy: 1 },
      },
      initialValue: null,
      in: { $cond: ["$$value", { $concat: ["$$value", ", ", "$$this"] }, "$$this"] },
    },
  };
}

const percent = (part: string) => ({
  $cond: ["$$i", { $multiply: [{ $divide: [part, "$$i"] }, 100] }, 0],
});

// Everything below is the same for every entry: built once, only serialized per entry.
const METRICS = {
  $let: {
    vars: {
      i: { $sum: `${NEXT_PATH}.impressions` },
      c: { $sum: `${NEXT_PATH}.clicks` },
      v: { $sum: `${NEXT_PATH}.viewableImpressions` },
    },
    in: {
      impressions: "$$i",
      clicks: "$$c",
      ctr: percent("$$c"),
      viewability: percent("$$v"),
      reach: { $sum: `${NEXT_PATH}.uniqueIps` },
    },
  },
};
const ITEM_NAME = { $ifNull: [joinDistinct(`${NEXT_PATH}.itemName`), ""] };
const DIMENSIONS = { $ifNull: [joinDistinct(`${NEXT_PATH}.adSize`), "$$REMOVE"] };
const STORED_VALUES = ["$contributions", ...ORDER_FIELDS.map((name) => `$${name}`)];
const STORED_CONTRIBUTIONS = { $ifNull: ["$contributions", []] };
const CREATED_AT = { $ifNull: ["$createdAt", "$$NOW"] };
const CLOCK = { $cond: [`$${CHANGED}`, "$$NOW", "$enteredAt"] };
const UPDATED_CLOCK = { $cond: [`$${CHANGED}`, "$$NOW", "$updatedAt"] };
const CLEANUP_STAGE = { $unset: [NEXT, CHANGED] };

/** A value as an expression constant: only `$`-strings, objects and arrays need `$literal`. */
function literal(value: unknown): unknown {
  if (typeof value === "string") return value.startsWith("$") ? { $literal: value } : value;
  if (value === null || typeof value !== "object" || value instanceof Date) return value;
  return { $literal: value };
}

/**
 * The update pipeline of one entry, for an upsert filtered on exactly its key. In one
 * atomic document update it removes this file's contribution keys from the stored array,
 * adds the new contributions (sorted by key, so the array is the same whatever order
 * files and batches arrive in), derives metrics/itemName/dimensions from ALL
 * contributions, and moves `updatedAt` and `enteredAt` only when the contributions or the
 * order's fields change (`createdAt` only on insert). The file's values enter only inside
 * `$literal` (the contributions, whose keys the filter reads from that same literal), and
 * the order's values through `literal`, so `$x` or `a.b` is never read as an operator or
 * a field path. On insert the fields land in the order `applyEntryUpdate` gives them.
 */
export function buildUpdatePipeline(update: EntryUpdate): Document[] {
  const f = update.fields;
  const dateEnd = f.dateEnd;
  const campaignId = literal(f.campaignId);
  const publicationId = f.publicationId;
  const publicationName = literal(f.publicationName);
  const channel = literal(f.channel);
  return [
    {
      $set: { [NEXT]: mergedContributions(update.contributions) },
    },
    {
      // The stored values are still untouched here: compare them with the new ones.
      $set: {
        [CHANGED]: {
          $ne: [
            [NEXT_PATH, dateEnd, campaignId, publicationId, publicationName, channel, ENTERED_BY],
            STORED_VALUES,
          ],
        },
      },
    },
    {
      // One stage, fields in lexicographic order: a new entry gets the same field order
      // as an insert by `$setOnInsert` (update operators apply fields in that order).
      $set: {
        campaignId,
        channel,
        contributions: NEXT_PATH,
        createdAt: CREATED_AT,
        dateEnd,
        dimensions: DIMENSIONS,
        enteredAt: CLOCK,
        enteredBy: ENTERED_BY,
        itemName: ITEM_NAME,
        metrics: METRICS,
        publicationId,
        publicationName,
        updatedAt: UPDATED_CLOCK,
      },
    },
    CLEANUP_STAGE,
  ];
}

/**
 * The stored contributions with `incoming` merged in, sorted by key: a stored contribution
 * stays when no incoming one has its key, or when its revision is higher than the
 * incoming one's (a newer run already wrote it), or when both are of one run and
 * revision and the stored one is of a later line (a later row of the same file landed
 * first: batches' writes overlap); an incoming one is added unless such a stored one
 * stays. A contribution written before the ledger has no `rev` (0).
 */
function mergedContributions(incoming: readonly Contribution[]): Document {
  return {
    $let: {
      vars: { n: { $literal: incoming } },
      in: {
        $let: {
          vars: {
            kept: {
              $filter: {
                input: STORED_CONTRIBUTIONS,
                cond: {
                  $let: {
                    vars: { i: { $indexOfArray: ["$$n.key", "$$this.key"] } },
                    in: {
                      $or: [
                        { $lt: ["$$i", 0] },
                        { $gt: [STORED_REV, { $arrayElemAt: ["$$n.rev", "$$i"] }] },
                        {
                          $and: [
                            { $eq: [STORED_REV, { $arrayElemAt: ["$$n.rev", "$$i"] }] },
                            { $eq: ["$$this.run", { $arrayElemAt: ["$$n.run", "$$i"] }] },
                            { $gt: ["$$this.line", { $arrayElemAt: ["$$n.line", "$$i"] }] },
                          ],
                        },
                      ],
                    },
                  },
                },
              },
            },
          },
          in: {
            $sortArray: {
              input: {
                $concatArrays: [
                  "$$kept",
                  {
                    $filter: {
                      input: "$$n",
                      cond: { $not: [{ $in: ["$$this.key", "$$kept.key"] }] },
                    },
                  },
                ],
              },
              sortBy: { key: 1 },
            },
          },
        },
      },
    },
  };
}

const STORED_REV = { $ifNull: ["$$this.rev", 0] };

/** One row identity leaving an entry: its key, and the ledger revision that moved it away. */
export interface Removal {
  key: string;
  rev: number;
}

/**
 * The update pipeline that takes contributions out of an entry they moved away from (no
 * upsert: an entry that is gone stays gone). A stored contribution goes when a removal
 * names its key with a higher revision than its own, so a contribution a newer run put
 * back stays. Metrics, itemName and dimensions are derived again from what is left; the
 * clocks move only when something left. An entry left with no contribution is deleted by
 * the `deleteOne` the writer sends right after (`EMPTY_ENTRY`).
 */
export function buildRemovalPipeline(removals: readonly Removal[]): Document[] {
  return [
    {
      $set: {
        [NEXT]: {
          $let: {
            vars: { r: { $literal: removals } },
            in: {
              $filter: {
                input: STORED_CONTRIBUTIONS,
                cond: {
                  $let: {
                    vars: { i: { $indexOfArray: ["$$r.key", "$$this.key"] } },
                    in: {
                      $or: [
                        { $lt: ["$$i", 0] },
                        { $gte: [STORED_REV, { $arrayElemAt: ["$$r.rev", "$$i"] }] },
                      ],
                    },
                  },
                },
              },
            },
          },
        },
      },
    },
    { $set: { [CHANGED]: { $ne: [NEXT_PATH, "$contributions"] } } },
    {
      $set: {
        contributions: NEXT_PATH,
        dimensions: DIMENSIONS,
        enteredAt: CLOCK,
        itemName: ITEM_NAME,
        metrics: METRICS,
        updatedAt: UPDATED_CLOCK,
      },
    },
    CLEANUP_STAGE,
  ];
}

/** The filter that deletes an automated entry its last contribution left. */
export const EMPTY_ENTRY = { contributions: { $size: 0 } } as const;

/** The pure twin of `buildRemovalPipeline`: the contributions that stay. */
export function remainingContributions(
  stored: readonly Contribution[],
  removals: readonly Removal[],
): Contribution[] {
  const revs = new Map(removals.map((removal) => [removal.key, removal.rev]));
  return stored.filter((contribution) => {
    const rev = revs.get(contribution.key);
    return rev === undefined || (contribution.rev ?? 0) >= rev;
  });
}

/** What taking contributions out of an entry did (or, in a dry run, would do). */
export interface AppliedRemoval {
  kind: "update" | "unchanged" | "delete";
  /** The entry as left (null when deleted). */
  document: Document | null;
}

/** The pure twin of `buildRemovalPipeline` and the `deleteOne` after it, for dry runs. */
export function applyRemoval(
  existing: Document,
  removals: readonly Removal[],
  now: Date,
): AppliedRemoval {
  const stored: Contribution[] = Array.isArray(existing.contributions)
    ? existing.contributions
    : [];
  const remaining = remainingContributions(stored, removals);
  if (remaining.length === stored.length) return { kind: "unchanged", document: existing };
  if (remaining.length === 0) return { kind: "delete", document: null };
  const derived = entryFields(remaining, existing as unknown as EntryFields, null);
  const document: Document = { ...existing, contributions: remaining };
  if (derived.dimensions === undefined) delete document.dimensions;
  else document.dimensions = derived.dimensions;
  document.enteredAt = now;
  document.itemName = derived.itemName;
  document.metrics = derived.metrics;
  document.updatedAt = now;
  return { kind: "update", document };
}

/** What applying an update did (or, in a dry run, would do) to one entry. */
export interface AppliedUpdate {
  kind: "insert" | "update" | "unchanged";
  document: Document;
  /** Top-level fields (and `metrics.*`) whose value changed; empty for `unchanged`. */
  changedFields: string[];
}

const COMPARED_FIELDS = [
  "contributions",
  "metrics",
  "itemName",
  "dimensions",
  "dateEnd",
  "campaignId",
  "publicationId",
  "publicationName",
  "channel",
  "enteredBy",
] as const;

/**
 * The pure JavaScript twin of `buildUpdatePipeline`, for dry runs: the document the
 * pipeline would leave, given the stored one (or null) and the server's `$$NOW`, field
 * order included. A test runs both against the same inputs and compares the documents.
 */
export function applyEntryUpdate(
  existing: Document | null,
  update: EntryUpdate,
  now: Date,
): AppliedUpdate {
  const stored: Contribution[] = Array.isArray(existing?.contributions)
    ? existing.contributions
    : [];
  let contributions = update.contributions;
  if (stored.length > 0) {
    const incoming = new Map(
      update.contributions.map((contribution) => [contribution.key, contribution]),
    );
    const kept = stored.filter((contribution) => {
      const other = incoming.get(contribution.key);
      if (other === undefined) return true;
      const rev = contribution.rev ?? 0;
      return (
        rev > other.rev ||
        (rev === other.rev &&
          contribution.run !== undefined &&
          contribution.run === other.run &&
          contribution.line !== undefined &&
          other.line !== undefined &&
          contribution.line > other.line)
      );
    });
    const keptKeys = new Set(kept.map((contribution) => contribution.key));
    contributions = [
      ...kept,
      ...update.contributions.filter((contribution) => !keptKeys.has(contribution.key)),
    ].sort((a, b) => compareUtf8(a.key, b.key));
  }
  if (existing === null) {
    // A new entry: nothing to compare.
    return {
      kind: "insert",
      document: Object.assign(
        {
          orderId: update.key.orderId,
          itemPath: update.key.itemPath,
          dateStart: update.key.dateStart,
          source: update.key.source,
        },
        insertedFields(update, now),
      ),
      changedFields: [],
    };
  }
  const next = entryFields(contributions, update.fields, null);
  const changedFields: string[] = [];
  for (const field of COMPARED_FIELDS) {
    if (field === "metrics") {
      for (const [name, value] of Object.entries(next.metrics as EntryMetrics)) {
        if (!bsonEqual(value, existing.metrics?.[name])) changedFields.push(`metrics.${name}`);
      }
      if (changedFields.some((name) => name.startsWith("metrics."))) continue;
      if (!bsonEqual(next.metrics, existing.metrics)) changedFields.push("metrics");
    } else if (!bsonEqual(next[field], existing[field])) {
      changedFields.push(field);
    }
  }
  // As the pipeline decides: only the contributions and the order's fields move the clock.
  const changed =
    !bsonEqual(contributions, existing.contributions) ||
    ORDER_FIELDS.some((field) => !bsonEqual(next[field], existing[field]));
  next.createdAt = existing.createdAt ?? now;
  next.enteredAt = changed ? now : existing.enteredAt;
  next.updatedAt = changed ? now : existing.updatedAt;
  // `$set` keeps a stored field where it is and appends a new one in the stage's order.
  const document: Document = { ...existing };
  for (const [field, value] of Object.entries(next)) {
    if (value === undefined) delete document[field];
    else document[field] = value;
  }
  return {
    // Counted like MongoDB's modifiedCount: any stored difference is an update.
    kind: changed || changedFields.length > 0 ? "update" : "unchanged",
    document,
    changedFields,
  };
}

/**
 * Every field of a new entry except its key, as the pipeline's insert leaves them: what
 * an upsert filtered on the key must add when no entry exists yet. The writer sends it as
 * `$setOnInsert`, so a new entry costs plain values on the wire instead of the whole
 * pipeline. `update.contributions` must be sorted by key (as batches build them).
 */
export function insertedFields(update: EntryUpdate, now: Date): Document {
  const fields = entryFields(update.contributions, update.fields, now);
  // The driver would store undefined as null; a missing dimension is no field at all.
  if (fields.dimensions === undefined) delete fields.dimensions;
  return fields;
}

/**
 * The fields the pipeline sets, in its (lexicographic) order: derived from the
 * contributions (sorted by key) and the order. `dimensions` is undefined when no
 * contribution has an ad size; the clocks are `now` for an insert, else left to the caller.
 */
function entryFields(
  contributions: Contribution[],
  fields: EntryFields,
  now: Date | null,
): Document {
  const itemNames: string[] = [];
  const adSizes: (string | null)[] = [];
  for (const contribution of contributions) {
    itemNames.push(contribution.itemName);
    adSizes.push(contribution.adSize);
  }
  const dimensions = joinDistinctValues(adSizes);
  const entry: Document = {
    campaignId: fields.campaignId,
    channel: fields.channel,
    contributions,
    createdAt: now ?? undefined,
    dateEnd: fields.dateEnd,
    dimensions: dimensions === "" ? undefined : dimensions,
    enteredAt: now ?? undefined,
    enteredBy: ENTERED_BY,
    itemName: joinDistinctValues(itemNames),
    metrics: metricsOf(contributions),
    publicationId: fields.publicationId,
    publicationName: fields.publicationName,
    updatedAt: now ?? undefined,
  };
  return entry;
}

function joinDistinctValues(values: readonly (string | null)[]): string {
  // Entries hold a handful of contributions: a linear scan beats a Set here.
  const distinct: string[] = [];
  for (const value of values) {
    if (typeof value === "string" && value !== "" && !distinct.includes(value))
      distinct.push(value);
  }
  if (distinct.length < 2) return distinct[0] ?? "";
  return distinct.sort(compareUtf8).join(", ");
}

/** Equality as MongoDB's `$eq` sees stored values: numbers by value, documents in field order. */
export function bsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined || a === null || b === null) {
    return (a ?? null) === (b ?? null) && (a === undefined) === (b === undefined);
  }
  if (typeof a === "number" || typeof b === "number") return Number(a) === Number(b);
  if (a instanceof Date || b instanceof Date) {
    return a instanceof Date && b instanceof Date && a.getTime() === b.getTime();
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((value, index) => bsonEqual(value, b[index]));
  }
  if (typeof a === "object" && typeof b === "object") {
    if ("_bsontype" in a || "_bsontype" in b) return String(a) === String(b);
    const aKeys = Object.keys(a).filter((k) => (a as Document)[k] !== undefined);
    const bKeys = Object.keys(b).filter((k) => (b as Document)[k] !== undefined);
    if (aKeys.length !== bKeys.length) return false;
    return aKeys.every(
      (key, index) => key === bKeys[index] && bsonEqual((a as Document)[key], (b as Document)[key]),
    );
  }
  return false;
}
