import { endOfDay, startOfDay } from "../shared/dates";
import {
  type Contribution,
  compareUtf8,
  contributionKey,
  type EntryUpdate,
  SOURCE,
} from "./entry-update";
import type { EntryTarget } from "./order-resolver";
import type { ValidRow } from "./validate-row";

export interface ResolvedRow {
  row: ValidRow;
  target: EntryTarget;
}

/** A row as the facts ledger placed it (ledger.ts): the provenance its contribution carries. */
export interface PlacedRow extends ResolvedRow {
  provenance: { rev: number; run: string; line: number };
  /** The row's contribution key, when the ledger has computed it already. */
  key?: string;
  /** Dry runs: the contribution is exactly what this run already placed (EntryUpdate.sameAsThisRun). */
  sameAsThisRun?: boolean;
}

/** A row's provenance until the ledger places it: such a row is never written. */
export const UNPLACED: PlacedRow["provenance"] = Object.freeze({ rev: 0, run: "", line: 0 });

/** `R`: the caller's rows, handed back as given (with what it keeps for a failed write). */
export interface GroupedUpdates<R extends PlacedRow = PlacedRow> {
  updates: EntryUpdate[];
  /** For each update, how many rows it carries (their contributions, superseded ones included). */
  rowCounts: number[];
  /** For each update, the rows it carries (for write failures). */
  rowsOf: R[][];
  /** Rows whose contribution a later row of the same batch replaced (same creative, code, channel, size and day). */
  superseded: number;
}

/**
 * Groups a batch's resolved rows by upsert key into ONE update per entry (one upsert of
 * the batch's bulk write). Within an entry, a row with the same contribution key as an
 * earlier one replaces it, as a row-by-row upsert would (Athena's grouped output never
 * repeats one).
 */
export function groupIntoUpdates<R extends PlacedRow>(rows: readonly R[]): GroupedUpdates<R> {
  const groups = new Map<string, Group<R>>();
  let superseded = 0;
  for (const resolved of rows) {
    const { row, target } = resolved;
    if (resolved.provenance === UNPLACED) {
      throw new Error(
        `Row on line ${row.line} reached the entry writes without the ledger placing it`,
      );
    }
    const groupKey = `${target.orderId}\u0000${target.itemPath}\u0000${row.reportDate}`;
    let group = groups.get(groupKey);
    if (!group) {
      group = { first: resolved, contributions: [], rows: [] };
      groups.set(groupKey, group);
    }
    group.rows.push(resolved);
    const key =
      resolved.key ?? contributionKey(row.creativeId, row.publicationCode, row.channel, row.adSize);
    const contribution: Contribution = {
      key,
      creativeId: row.creativeId,
      publicationCode: row.publicationCode.toLowerCase(),
      channel: row.channel,
      adSize: row.adSize,
      itemName: target.itemName,
      impressions: row.impressions,
      clicks: row.clicks,
      viewableImpressions: row.viewableImpressions,
      uniqueIps: row.uniqueIps,
      rev: resolved.provenance.rev,
      run: resolved.provenance.run,
      line: resolved.provenance.line,
    };
    if (setContribution(group, contribution)) {
      superseded++;
      group.same?.delete(key);
    }
    if (resolved.sameAsThisRun) {
      group.same ??= new Set();
      group.same.add(key);
    }
  }
  const updates: EntryUpdate[] = [];
  const rowCounts: number[] = [];
  const rowsOf: R[][] = [];
  // A batch spans a few days: parse each day's bounds once (the Dates are never mutated).
  const days = new Map<string, [Date, Date]>();
  for (const group of groups.values()) {
    const { row, target } = group.first;
    let day = days.get(row.reportDate);
    if (!day) {
      day = [startOfDay(row.reportDate), endOfDay(row.reportDate)];
      days.set(row.reportDate, day);
    }
    updates.push({
      key: {
        orderId: target.orderId,
        itemPath: target.itemPath,
        dateStart: day[0],
        source: SOURCE,
      },
      fields: {
        dateEnd: day[1],
        campaignId: target.campaignId,
        publicationId: target.publicationId,
        publicationName: target.publicationName,
        channel: target.channel,
      },
      contributions: sortedByKey(group.contributions),
      ...(group.same ? { sameAsThisRun: group.same } : {}),
    });
    rowCounts.push(group.rows.length);
    rowsOf.push(group.rows);
  }
  return { updates, rowCounts, rowsOf, superseded };
}

/** One entry's rows of a batch and their contributions, one per contribution key. */
interface Group<R> {
  first: R;
  contributions: Contribution[];
  /** Where each key is in `contributions`, once the entry has more than a few. */
  index?: Map<string, number>;
  rows: R[];
  same?: Set<string>;
}

/** An entry has a handful of contributions: a scan finds a key faster than a Map per entry. */
const SCAN_UP_TO = 8;

/** Adds the contribution, or replaces the one with its key (true then). */
function setContribution(group: Group<unknown>, contribution: Contribution): boolean {
  const { contributions } = group;
  let at = -1;
  if (group.index) {
    at = group.index.get(contribution.key) ?? -1;
  } else {
    for (let i = 0; i < contributions.length; i++) {
      if ((contributions[i] as Contribution).key === contribution.key) {
        at = i;
        break;
      }
    }
  }
  // The order within the entry does not matter: the contributions are sorted by key.
  if (at >= 0) {
    contributions[at] = contribution;
    return true;
  }
  contributions.push(contribution);
  if (group.index) {
    group.index.set(contribution.key, contributions.length - 1);
  } else if (contributions.length > SCAN_UP_TO) {
    group.index = new Map(contributions.map((c, i) => [c.key, i]));
  }
  return false;
}

function sortedByKey(contributions: Contribution[]): Contribution[] {
  return contributions.length < 2
    ? contributions
    : contributions.sort((a, b) => compareUtf8(a.key, b.key));
}
