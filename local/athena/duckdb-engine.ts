import type { DuckDBConnection, DuckDBType, DuckDBValue } from "@duckdb/node-api";

/**
 * Makes DuckDB read the Athena (Trino) SQL the project sends: the `ad_tracking` schema
 * exists and the Trino functions the production query uses are macros.
 */

// MySQL-style specifiers (Trino's date_format) → strftime's. (date_parse is left out:
// DuckDB's strptime needs a constant format, which a rewritten one is not.) Order matters:
// %M (month name) is rewritten before %i becomes %M (minutes), and %T/%r expand last.
const FORMAT_REWRITES: readonly [string, string][] = [
  ["%M", "%B"],
  ["%W", "%A"],
  ["%i", "%M"],
  ["%s", "%S"],
  ["%h", "%I"],
  ["%c", "%-m"],
  ["%e", "%-d"],
  ["%k", "%-H"],
  ["%l", "%-I"],
  ["%v", "%V"],
  ["%x", "%G"],
  ["%T", "%H:%M:%S"],
  ["%r", "%I:%M:%S %p"],
];

function translatedFormat(argument: string): string {
  return FORMAT_REWRITES.reduce(
    (expression, [from, to]) => `replace(${expression}, '${from}', '${to}')`,
    argument,
  );
}

export async function installAthenaFunctions(connection: DuckDBConnection): Promise<void> {
  const statements = [
    `CREATE OR REPLACE MACRO main.date_format(value, format) AS strftime(value, ${translatedFormat("format")})`,
    "CREATE OR REPLACE MACRO main.from_iso8601_date(value) AS CAST(value AS DATE)",
    "CREATE OR REPLACE MACRO main.from_iso8601_timestamp(value) AS CAST(value AS TIMESTAMPTZ)",
  ];
  for (const sql of statements) await connection.run(sql);
}

/** Renders a DuckDB value as Athena prints it in a result CSV; null stays null (NULL). */
export function athenaText(value: DuckDBValue, type: DuckDBType): string | null {
  if (value === null) return null;
  const typeName = type.toString();
  if (typeof value === "number" && (typeName === "DOUBLE" || typeName === "FLOAT")) {
    return javaDouble(value);
  }
  if (typeName.startsWith("TIMESTAMP")) return withMilliseconds(String(value));
  return String(value);
}

/** Trino prints doubles like Java's Double.toString: `1.0`, `0.25`, `1.0E-4`, `1.5E7`. */
function javaDouble(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (!Number.isFinite(value)) return value > 0 ? "Infinity" : "-Infinity";
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude < 1e-3 || magnitude >= 1e7)) {
    const [mantissa = "0", exponent = "0"] = value.toExponential().split("e");
    const withFraction = mantissa.includes(".") ? mantissa : `${mantissa}.0`;
    return `${withFraction}E${Number(exponent)}`;
  }
  const text = String(value);
  return text.includes(".") ? text : `${text}.0`;
}

/** Trino's timestamp(3): `2025-12-10 06:00:00.000`. */
function withMilliseconds(text: string): string {
  const match = /^(\d{4,}-\d\d-\d\d \d\d:\d\d:\d\d)(?:\.(\d+))?(.*)$/.exec(text);
  if (!match) return text;
  const [, whole = "", fraction = "", zone = ""] = match;
  return `${whole}.${fraction.padEnd(3, "0").slice(0, 3)}${zone}`;
}

/** Athena (Hive) type names for the result metadata. */
export function athenaTypeName(type: DuckDBType): string {
  const name = type.toString();
  const simple: Record<string, string> = {
    VARCHAR: "varchar",
    BIGINT: "bigint",
    INTEGER: "integer",
    SMALLINT: "smallint",
    TINYINT: "tinyint",
    DOUBLE: "double",
    FLOAT: "float",
    BOOLEAN: "boolean",
    DATE: "date",
    TIMESTAMP: "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamp with time zone",
  };
  return simple[name] ?? name.toLowerCase();
}
