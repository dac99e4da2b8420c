/**
 * The nine columns of a sync result, in the start query's SELECT order: the contract
 * between the query the start function sends Athena and the header the ingest checks.
 * The ingest matches them by name (trimmed, any case, any order), so a hand-made file
 * may order them differently or add others.
 */
export const RESULT_COLUMNS = [
  "report_date",
  "creative_id",
  "publication_code",
  "channel",
  "ad_size",
  "impressions",
  "clicks",
  "viewable_impressions",
  "unique_ips",
] as const;

export type ResultColumn = (typeof RESULT_COLUMNS)[number];
