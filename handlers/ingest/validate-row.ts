import { isCalendarDate } from "../shared/dates";
import { RESULT_COLUMNS, type ResultColumn } from "../shared/result-columns";

/** Every result column is required, matched by name (trimmed, any case, any order). */
export const REQUIRED_COLUMNS = RESULT_COLUMNS;

export type ColumnName = ResultColumn;

/** Position of each required column in the file's records. */
export type ColumnIndex = Readonly<Record<ColumnName, number>>;

export type HeaderResult =
  | { ok: true; index: ColumnIndex; width: number }
  | { ok: false; missing: ColumnName[] };

/** Maps the header to column positions; extra columns are ignored, the first of duplicates wins. */
export function indexHeader(header: readonly (string | null)[]): HeaderResult {
  const positions = new Map<string, number>();
  header.forEach((name, position) => {
    const normalized = (name ?? "").trim().toLowerCase();
    if (!positions.has(normalized)) positions.set(normalized, position);
  });
  const missing = REQUIRED_COLUMNS.filter((column) => !positions.has(column));
  if (missing.length > 0) return { ok: false, missing };
  const index = Object.fromEntries(
    REQUIRED_COLUMNS.map((column) => [column, positions.get(column) as number]),
  ) as Record<ColumnName, number>;
  return { ok: true, index, width: header.length };
}

export type ErrorReason =
  | "wrong-field-count"
  | "unclosed-quote"
  | "record-too-large"
  | "malformed-quoting"
  | "invalid-report-date"
  | "missing-creative-id"
  | "missing-publication-code"
  | "invalid-impressions"
  | "invalid-clicks"
  | "invalid-viewable-impressions"
  | "invalid-unique-ips"
  | "write-failed";

/** Counted in the report, never a reason to drop a row: the numbers are kept as measured. */
export type RowWarning =
  | "clicks-exceed-impressions"
  | "viewable-exceed-impressions"
  | "unique-ips-exceed-impressions";

/** A row whose values passed validation. Text values are trimmed; NULL text is `null`. */
export interface ValidRow {
  line: number;
  reportDate: string;
  creativeId: string;
  publicationCode: string;
  channel: string | null;
  adSize: string | null;
  impressions: number;
  clicks: number;
  viewableImpressions: number;
  uniqueIps: number;
}

export type RowValidation =
  | { ok: true; row: ValidRow; warnings: RowWarning[] | undefined }
  | { ok: false; reason: ErrorReason; detail: string };

// Non-negative integers only, at most 15 digits so every value is exact as a double.
const NON_NEGATIVE_INTEGER = /^\d{1,15}$/;

/**
 * Validates one record against the header's column positions. The first failing check
 * gives the row's reason. Clicks, viewable impressions or unique IPs above impressions
 * are accepted as measured (never clamped) and reported as warnings.
 */
export function validateRecord(
  fields: readonly (string | null)[],
  line: number,
  columns: ColumnIndex,
  width: number,
  knownDates: Set<string>,
): RowValidation {
  if (fields.length !== width) {
    return {
      ok: false,
      reason: "wrong-field-count",
      detail: `expected ${width} fields, got ${fields.length}`,
    };
  }
  const reportDate = (fields[columns.report_date] ?? "").trim();
  if (!knownDates.has(reportDate)) {
    if (!isCalendarDate(reportDate)) {
      return { ok: false, reason: "invalid-report-date", detail: describe(reportDate) };
    }
    // Dates repeat on every row: remember the valid ones (a handful per file).
    if (knownDates.size < 10_000) knownDates.add(reportDate);
  }
  const creativeId = (fields[columns.creative_id] ?? "").trim();
  if (creativeId === "") return { ok: false, reason: "missing-creative-id", detail: "empty" };
  const publicationCode = (fields[columns.publication_code] ?? "").trim();
  if (publicationCode === "") {
    return { ok: false, reason: "missing-publication-code", detail: "empty" };
  }
  // A `"` left in an identifier means the row's quoting was broken (quotes are relaxed).
  if (creativeId.includes('"') || publicationCode.includes('"')) {
    return { ok: false, reason: "malformed-quoting", detail: "stray quote in an identifier" };
  }
  const impressions = parseCount(fields[columns.impressions]);
  if (impressions < 0) {
    return {
      ok: false,
      reason: "invalid-impressions",
      detail: describe(fields[columns.impressions]),
    };
  }
  const clicks = parseCount(fields[columns.clicks]);
  if (clicks < 0)
    return { ok: false, reason: "invalid-clicks", detail: describe(fields[columns.clicks]) };
  const viewableImpressions = parseCount(fields[columns.viewable_impressions]);
  if (viewableImpressions < 0) {
    return {
      ok: false,
      reason: "invalid-viewable-impressions",
      detail: describe(fields[columns.viewable_impressions]),
    };
  }
  const uniqueIps = parseCount(fields[columns.unique_ips]);
  if (uniqueIps < 0) {
    return {
      ok: false,
      reason: "invalid-unique-ips",
      detail: describe(fields[columns.unique_ips]),
    };
  }
  // Most rows carry no warning: allocate the list only when one applies.
  let warnings: RowWarning[] | undefined;
  if (clicks > impressions) warnings = ["clicks-exceed-impressions"];
  if (viewableImpressions > impressions) {
    warnings = [...(warnings ?? []), "viewable-exceed-impressions"];
  }
  if (uniqueIps > impressions) warnings = [...(warnings ?? []), "unique-ips-exceed-impressions"];
  return {
    ok: true,
    row: {
      line,
      reportDate,
      creativeId,
      publicationCode,
      channel: trimOrNull(fields[columns.channel]),
      adSize: trimOrNull(fields[columns.ad_size]),
      impressions,
      clicks,
      viewableImpressions,
      uniqueIps,
    },
    warnings,
  };
}

/** A non-negative integer count, or -1 when the value is not one ("", NULL, "1.5", "1e3", "-1"). */
export function parseCount(value: string | null | undefined): number {
  if (value === null || value === undefined) return -1;
  const trimmed = value.trim();
  return NON_NEGATIVE_INTEGER.test(trimmed) ? Number(trimmed) : -1;
}

function trimOrNull(value: string | null | undefined): string | null {
  return value === null || value === undefined ? null : value.trim();
}

function describe(value: string | null | undefined): string {
  if (value === null || value === undefined) return "NULL";
  return value === "" ? "empty" : `"${value.length > 40 ? `${value.slice(0, 40)}…` : value}"`;
}
