/**
 * Athena's result CSV dialect: a header row, every field double-quoted with embedded
 * quotes doubled, NULL as an unquoted empty field (so NULL and "" stay apart), `\n`
 * line ends, fields may contain line breaks.
 */

export function athenaCsvField(value: string | null): string {
  return value === null ? "" : `"${value.replaceAll('"', '""')}"`;
}

export function athenaCsvLine(values: readonly (string | null)[]): string {
  return `${values.map(athenaCsvField).join(",")}\n`;
}

/**
 * Reads Athena's dialect back, row by row, from text chunks (a streamed object body):
 * a quoted field is a string (possibly empty or spanning lines), an unquoted empty
 * field is NULL. Used to answer GetQueryResults from the written result.
 */
export async function* parseAthenaCsv(
  chunks: AsyncIterable<string>,
): AsyncGenerator<(string | null)[]> {
  let row: (string | null)[] = [];
  let field = "";
  let quoted = false;
  let inQuotes = false;
  let pendingQuote = false;
  let fieldStarted = false;
  const endField = () => {
    row.push(quoted ? field : field === "" ? null : field);
    field = "";
    quoted = false;
    fieldStarted = false;
  };
  for await (const chunk of chunks) {
    for (const char of chunk) {
      if (inQuotes) {
        if (pendingQuote) {
          pendingQuote = false;
          if (char === '"') {
            field += '"';
            continue;
          }
          inQuotes = false;
        } else if (char === '"') {
          pendingQuote = true;
          continue;
        } else {
          field += char;
          continue;
        }
      }
      if (char === '"' && !fieldStarted) {
        quoted = true;
        inQuotes = true;
        fieldStarted = true;
      } else if (char === ",") {
        endField();
      } else if (char === "\n") {
        endField();
        yield row;
        row = [];
      } else if (char !== "\r") {
        field += char;
        fieldStarted = true;
      }
    }
  }
  if (pendingQuote) inQuotes = false;
  if (fieldStarted || row.length > 0) {
    endField();
    yield row;
  }
}
