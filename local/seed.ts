import { type DuckDBConnection, dateValue } from "@duckdb/node-api";
import type { Db } from "mongodb";
import { daysBetween } from "../handlers/shared/dates";
import type { DailyAggregateRow, MongoFixtures } from "./sample-data";

export const TRACKING_SCHEMA = "ad_tracking";
export const TRACKING_TABLE = "daily_aggregates";

/**
 * Creates `ad_tracking.daily_aggregates` with the column types of the Glue table
 * and loads `rows` through DuckDB's appender (one bulk load, not one INSERT per row).
 * Replaces the table if it exists, so seeding twice gives the same contents.
 */
export async function seedDuckDb(
  connection: DuckDBConnection,
  rows: readonly DailyAggregateRow[],
): Promise<void> {
  await connection.run(`CREATE SCHEMA IF NOT EXISTS ${TRACKING_SCHEMA}`);
  await connection.run(`
    CREATE OR REPLACE TABLE ${TRACKING_SCHEMA}.${TRACKING_TABLE} (
      report_date          DATE,
      creative_id          VARCHAR,
      publication_code     VARCHAR,
      channel              VARCHAR,
      ad_size              VARCHAR,
      impressions          BIGINT,
      clicks               BIGINT,
      viewable_impressions BIGINT,
      unique_ips           BIGINT
    )`);
  const appender = await connection.createAppender(TRACKING_TABLE, TRACKING_SCHEMA);
  try {
    for (const row of rows) {
      appender.appendDate(dateValue(daysBetween("1970-01-01", row.report_date)));
      appendText(appender, row.creative_id);
      appendText(appender, row.publication_code);
      appendText(appender, row.channel);
      appendText(appender, row.ad_size);
      appendCount(appender, row.impressions);
      appendCount(appender, row.clicks);
      appendCount(appender, row.viewable_impressions);
      appendCount(appender, row.unique_ips);
      appender.endRow();
    }
    appender.flushSync();
  } finally {
    appender.closeSync();
  }
}

type Appender = Awaited<ReturnType<DuckDBConnection["createAppender"]>>;

function appendText(appender: Appender, value: string | null): void {
  if (value === null) appender.appendNull();
  else appender.appendVarchar(value);
}

function appendCount(appender: Appender, value: number | null): void {
  if (value === null) appender.appendNull();
  else appender.appendBigInt(BigInt(value));
}

/**
 * Loads the Hub collections the ingest reads. Each collection is emptied first, so
 * seeding twice gives the same contents; `performance_entries` is left alone.
 */
export async function seedMongo(db: Db, fixtures: MongoFixtures): Promise<void> {
  for (const [name, documents] of Object.entries(fixtures) as [
    keyof MongoFixtures,
    MongoFixtures[keyof MongoFixtures],
  ][]) {
    const collection = db.collection(name);
    await collection.deleteMany({});
    if (documents.length > 0) await collection.insertMany(documents.map((doc) => ({ ...doc })));
  }
}
