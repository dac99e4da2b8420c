import {
  type AthenaClient,
  GetQueryExecutionCommand,
  GetQueryRuntimeStatisticsCommand,
  StartQueryExecutionCommand,
  StopQueryExecutionCommand,
} from "@aws-sdk/client-athena";
import { isCalendarDate } from "../shared/dates";
import { TrackingSyncError } from "../shared/errors";
import { RESULT_COLUMNS, type ResultColumn } from "../shared/result-columns";
import type { DateRange } from "../shared/sync-request";

export interface SyncQuery {
  queryString: string;
  /** Positional values for the `?` placeholders, as Athena typed literals. */
  executionParameters: string[];
}

/**
 * The spec's query (section 6) with every value as an execution parameter.
 * Publication codes compare case-insensitively (DESIGN.md), hence `lower()` and a
 * lower-cased value. Database and table are identifiers from configuration,
 * checked at cold start: identifiers cannot be parameters.
 */
export function buildSyncQuery(input: {
  database: string;
  table: string;
  dateRange: DateRange;
  publicationCode?: string | undefined;
}): SyncQuery {
  const filters = ["report_date >= ?", "report_date <= ?", "impressions > 0"];
  const executionParameters = [
    dateLiteral(input.dateRange.start),
    dateLiteral(input.dateRange.end),
  ];
  if (input.publicationCode !== undefined) {
    filters.push("lower(publication_code) = ?");
    executionParameters.push(stringLiteral(input.publicationCode.toLowerCase()));
  }
  const queryString = [
    "SELECT",
    RESULT_COLUMNS.map((column) => `  ${selectExpression(column)}`).join(",\n"),
    `FROM ${input.database}.${input.table}`,
    `WHERE ${filters.join("\n  AND ")}`,
    "ORDER BY report_date, publication_code, creative_id",
  ].join("\n");
  return { queryString, executionParameters };
}

/** The ingest reads `report_date` as `YYYY-MM-DD` text; every other column as Athena returns it. */
function selectExpression(column: ResultColumn): string {
  return column === "report_date" ? "DATE_FORMAT(report_date, '%Y-%m-%d') AS report_date" : column;
}

/** `DATE '2025-12-10'`: Athena wants typed literals as parameter values. */
export function dateLiteral(isoDate: string): string {
  if (!isCalendarDate(isoDate)) throw new Error(`not a calendar date: ${isoDate}`);
  return `DATE '${isoDate}'`;
}

/** `'chireader'`, quotes doubled (validated codes have none; this keeps it true for any input). */
export function stringLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

export interface StartQueryInput {
  query: SyncQuery;
  clientRequestToken: string;
}

/** What the core needs from Athena to start a query (and take it back). */
export interface QueryStarter {
  start(input: StartQueryInput): Promise<string>;
  stop(queryExecutionId: string): Promise<void>;
}

export interface QueryFailure {
  reason?: string;
  errorType?: number;
  retryable?: boolean;
}

export interface QueryStatus {
  /** QUEUED, RUNNING, SUCCEEDED, FAILED or CANCELLED. */
  state: string | undefined;
  completedAt: Date | undefined;
}

export interface QueryInspector {
  describeFailure(queryExecutionId: string): Promise<QueryFailure>;
  /** Where the query stands now (`GetQueryExecution`). */
  status(queryExecutionId: string): Promise<QueryStatus>;
  /** Rows a SUCCEEDED query returned (`GetQueryRuntimeStatistics` → `Rows.OutputRows`). */
  outputRows(queryExecutionId: string): Promise<number | undefined>;
}

export class QueryStartError extends TrackingSyncError {}

export function createAthenaQueryStarter(
  athena: AthenaClient,
  settings: { workgroup: string; database: string; outputLocation: string },
): QueryStarter & QueryInspector {
  return {
    async start({ query, clientRequestToken }) {
      const response = await athena.send(
        new StartQueryExecutionCommand({
          QueryString: query.queryString,
          ExecutionParameters: query.executionParameters,
          WorkGroup: settings.workgroup,
          QueryExecutionContext: { Catalog: "AwsDataCatalog", Database: settings.database },
          // Ignored when the workgroup enforces its own (it does in the stack); local stand-ins use it.
          ResultConfiguration: { OutputLocation: settings.outputLocation },
          // A reused result writes no new CSV, so nothing would be ingested.
          ResultReuseConfiguration: { ResultReuseByAgeConfiguration: { Enabled: false } },
          ClientRequestToken: clientRequestToken,
        }),
      );
      if (!response.QueryExecutionId) {
        throw new QueryStartError("Athena returned no QueryExecutionId", {
          workgroup: settings.workgroup,
        });
      }
      return response.QueryExecutionId;
    },

    async stop(queryExecutionId) {
      await athena.send(new StopQueryExecutionCommand({ QueryExecutionId: queryExecutionId }));
    },

    async outputRows(queryExecutionId) {
      const response = await athena.send(
        new GetQueryRuntimeStatisticsCommand({ QueryExecutionId: queryExecutionId }),
      );
      const rows = response.QueryRuntimeStatistics?.Rows?.OutputRows;
      return rows === undefined ? undefined : Number(rows);
    },
    async status(queryExecutionId) {
      const response = await athena.send(
        new GetQueryExecutionCommand({ QueryExecutionId: queryExecutionId }),
      );
      const status = response.QueryExecution?.Status;
      return { state: status?.State, completedAt: status?.CompletionDateTime };
    },
    async describeFailure(queryExecutionId) {
      const response = await athena.send(
        new GetQueryExecutionCommand({ QueryExecutionId: queryExecutionId }),
      );
      const status = response.QueryExecution?.Status;
      return {
        ...(status?.StateChangeReason ? { reason: status.StateChangeReason } : {}),
        ...(status?.AthenaError?.ErrorType !== undefined
          ? { errorType: status.AthenaError.ErrorType }
          : {}),
        ...(status?.AthenaError?.Retryable !== undefined
          ? { retryable: status.AthenaError.Retryable }
          : {}),
      };
    },
  };
}
