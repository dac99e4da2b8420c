/** One input row, by column name; `null` is written as NULL (unquoted empty). */
export type CsvRowValues = Record<string, string | number | null>;

export const INGEST_COLUMNS = [
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

/** A valid row with sensible defaults; override what the test is about. */
export function csvRow(overrides: CsvRowValues = {}): CsvRowValues {
  return {
    report_date: "2025-12-10",
    creative_id: "cr_spring-sale_300x250",
    publication_code: "chireader",
    channel: "website",
    ad_size: "300x250",
    impressions: 1000,
    clicks: 10,
    viewable_impressions: 800,
    unique_ips: 700,
    ...overrides,
  };
}

export interface CsvOptions {
  columns?: readonly string[];
  /** Athena quotes every field (default); hand-made files may not. */
  quoteAll?: boolean;
  lineEnding?: "\n" | "\r\n";
  bom?: boolean;
  /** Header names as written (e.g. upper case, padded); defaults to `columns`. */
  headerNames?: readonly string[];
}

/** Builds CSV text in Athena's dialect by default: every field quoted, NULL unquoted empty. */
export function buildCsv(rows: readonly CsvRowValues[], options: CsvOptions = {}): string {
  const columns = options.columns ?? INGEST_COLUMNS;
  const quoteAll = options.quoteAll ?? true;
  const eol = options.lineEnding ?? "\n";
  const cell = (value: string | number | null | undefined) => {
    if (value === null || value === undefined) return "";
    const text = String(value);
    return quoteAll || /[",\r\n]/.test(text) || text === ""
      ? `"${text.replace(/"/g, '""')}"`
      : text;
  };
  const header = (options.headerNames ?? columns).map((name) => cell(name)).join(",");
  const body = rows.map((row) => columns.map((column) => cell(row[column])).join(","));
  return `${options.bom ? "\ufeff" : ""}${[header, ...body].join(eol)}${eol}`;
}
