/**
 * Just enough SQL lexing for what Athena does before the engine sees a query: find the
 * positional `?` placeholders (not inside string literals, quoted identifiers or
 * comments) and bind execution parameters to them.
 */

export class ParameterCountError extends Error {
  constructor(
    readonly expected: number,
    readonly found: number,
  ) {
    // Trino's wording, which Athena reports as the failure reason.
    super(`Incorrect number of parameters: expected ${expected} but found ${found}`);
    this.name = "ParameterCountError";
  }
}

export class InvalidParameterError extends Error {
  constructor(
    readonly index: number,
    readonly value: string,
  ) {
    super(`Execution parameter ${index + 1} is not a single SQL expression: ${value}`);
    this.name = "InvalidParameterError";
  }
}

interface Scan {
  /** Offsets of `?` outside literals, identifiers and comments. */
  placeholders: number[];
  /** Offsets of `;` outside literals, identifiers and comments. */
  semicolons: number[];
  /** False when a literal, quoted identifier or block comment never ends. */
  closed: boolean;
  /** Parenthesis depth at the end (0 when balanced). */
  depth: number;
  /** Lowest depth reached: negative when a `)` closes a parenthesis opened outside. */
  minDepth: number;
  /** A `--` or `/*` comment outside literals. */
  hasComment: boolean;
}

function scan(sql: string): Scan {
  const placeholders: number[] = [];
  const semicolons: number[] = [];
  let depth = 0;
  let minDepth = 0;
  let hasComment = false;
  let i = 0;
  while (i < sql.length) {
    const char = sql[i];
    const next = sql[i + 1];
    if (char === "'" || char === '"') {
      // Quotes are escaped by doubling them, in literals and identifiers alike.
      let j = i + 1;
      for (;;) {
        const end = sql.indexOf(char, j);
        if (end < 0)
          return { placeholders, semicolons, closed: false, depth, minDepth, hasComment };
        if (sql[end + 1] === char) {
          j = end + 2;
          continue;
        }
        i = end + 1;
        break;
      }
      continue;
    }
    if (char === "-" && next === "-") {
      hasComment = true;
      const end = sql.indexOf("\n", i);
      i = end < 0 ? sql.length : end + 1;
      continue;
    }
    if (char === "/" && next === "*") {
      hasComment = true;
      const end = sql.indexOf("*/", i + 2);
      if (end < 0) return { placeholders, semicolons, closed: false, depth, minDepth, hasComment };
      i = end + 2;
      continue;
    }
    if (char === "?") placeholders.push(i);
    else if (char === ";") semicolons.push(i);
    else if (char === "(") depth += 1;
    else if (char === ")") {
      depth -= 1;
      minDepth = Math.min(minDepth, depth);
    }
    i += 1;
  }
  return { placeholders, semicolons, closed: true, depth, minDepth, hasComment };
}

export function countPlaceholders(sql: string): number {
  return scan(sql).placeholders.length;
}

/**
 * Binds positional parameters the way Athena does: the n-th `?` takes the n-th value,
 * which is a typed SQL literal or expression (`DATE '2025-12-10'`, `'chireader'`, `42`).
 * Each value is bound as one expression, never spliced as free text: a value that is not
 * a single self-contained expression (unbalanced quotes or parentheses, `;`, comments,
 * its own `?`) is refused, and the value is parenthesised so operators cannot escape it.
 */
export function bindParameters(sql: string, parameters: readonly string[]): string {
  const { placeholders } = scan(sql);
  if (placeholders.length !== parameters.length) {
    throw new ParameterCountError(placeholders.length, parameters.length);
  }
  parameters.forEach((value, index) => {
    const parsed = scan(value);
    if (
      value.trim() === "" ||
      !parsed.closed ||
      parsed.depth !== 0 ||
      parsed.minDepth < 0 ||
      parsed.semicolons.length > 0 ||
      parsed.placeholders.length > 0 ||
      parsed.hasComment
    ) {
      throw new InvalidParameterError(index, value);
    }
  });
  let bound = "";
  let from = 0;
  placeholders.forEach((offset, index) => {
    bound += `${sql.slice(from, offset)}(${parameters[index]})`;
    from = offset + 1;
  });
  return bound + sql.slice(from);
}

/** Athena's StatementType for a query: DDL, DML or UTILITY, from its first keyword. */
export function statementTypeOf(sql: string): "DDL" | "DML" | "UTILITY" {
  const withoutComments = sql.replace(/--[^\n]*\n?/g, " ").replace(/\/\*[\s\S]*?\*\//g, " ");
  const keyword = /^[\s(]*([A-Za-z]+)/.exec(withoutComments)?.[1]?.toUpperCase() ?? "";
  if (["CREATE", "DROP", "ALTER", "MSCK"].includes(keyword)) return "DDL";
  if (["SHOW", "DESCRIBE", "DESC", "EXPLAIN"].includes(keyword)) return "UTILITY";
  return "DML";
}
