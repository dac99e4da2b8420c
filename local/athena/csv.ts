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
