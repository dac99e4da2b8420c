import { GetObjectCommand } from "@aws-sdk/client-s3";
import { parseAthenaCsv } from "../csv";
import { ApiError } from "../errors";
import { nextTokenOf, optionalString, pageOffsetOf } from "../input";
import { type AthenaState, type Execution, TERMINAL } from "../state";
import { findExecution } from "./query-executions";

type Row = (string | null)[];

/**
 * Pages through the written CSV (streamed, only the requested page kept), as Athena
 * serves results: the header is the first row of the first page, NULL has no value.
 */
export async function getQueryResults(
  state: AthenaState,
  input: Record<string, unknown>,
): Promise<unknown> {
  const execution = findExecution(state, input);
  if (execution.state !== "SUCCEEDED") {
    throw new ApiError(
      "InvalidRequestException",
      TERMINAL.includes(execution.state)
        ? `Query did not finish successfully. Final query state: ${execution.state}`
        : `Query has not yet finished. Current state: ${execution.state}`,
    );
  }
  const source = execution.reusedFrom ?? execution;
  const maxResults = typeof input.MaxResults === "number" ? input.MaxResults : 1000;
  if (!Number.isInteger(maxResults) || maxResults < 1 || maxResults > 1000) {
    throw new ApiError("InvalidRequestException", "MaxResults must be between 1 and 1000.");
  }
  const offset = pageOffsetOf(optionalString(input, "NextToken"));
  if (!Number.isInteger(offset) || offset < 0) {
    throw new ApiError("InvalidRequestException", "NextToken is not valid.");
  }
  const { rows, more } = await readPage(state, source, offset, maxResults);
  return {
    UpdateCount: 0,
    ResultSet: {
      Rows: rows.map((row) => ({
        Data: row.map((value) => (value === null ? {} : { VarCharValue: value })),
      })),
      ResultSetMetadata: { ColumnInfo: columnInfoOf(source) },
    },
    ...(more ? { NextToken: nextTokenOf(offset + maxResults) } : {}),
  };
}

async function readPage(
  state: AthenaState,
  source: Execution,
  offset: number,
  maxResults: number,
): Promise<{ rows: Row[]; more: boolean }> {
  const object = await state.s3.send(
    new GetObjectCommand({ Bucket: source.bucket, Key: source.key }),
  );
  const body = object.Body as (AsyncIterable<Uint8Array> & { destroy?: () => void }) | undefined;
  const rows: Row[] = [];
  let index = 0;
  let more = false;
  if (body) {
    const decoder = new TextDecoder();
    const text = (async function* () {
      for await (const chunk of body) yield decoder.decode(chunk, { stream: true });
      yield decoder.decode();
    })();
    for await (const row of parseAthenaCsv(text)) {
      if (index >= offset + maxResults) {
        more = true;
        break;
      }
      if (index >= offset) rows.push(row);
      index += 1;
    }
    body.destroy?.();
  }
  return { rows, more };
}

function columnInfoOf(source: Execution) {
  return (source.columns ?? []).map((column) => ({
    CatalogName: "hive",
    SchemaName: "",
    TableName: "",
    Name: column.name,
    Label: column.name,
    Type: column.type,
    Precision: 0,
    Scale: 0,
    Nullable: "UNKNOWN",
    CaseSensitive: column.type === "varchar",
  }));
}
