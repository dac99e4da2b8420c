import { describe, expect, it } from "vitest";
import { athenaCsvLine, parseAthenaCsv } from "../../local/athena/csv";
import {
  bindParameters,
  countPlaceholders,
  InvalidParameterError,
  ParameterCountError,
  statementTypeOf,
} from "../../local/athena/sql-text";

describe("countPlaceholders", () => {
  it("ignores ? in string literals, quoted identifiers and comments", () => {
    const sql = `SELECT '?', 'it''s ?', "col?" FROM t -- ?\nWHERE a = ? /* ? */ AND b = ?`;
    expect(countPlaceholders(sql)).toBe(2);
  });
});

describe("bindParameters", () => {
  it("binds values in order, each as one parenthesised expression", () => {
    expect(
      bindParameters("SELECT 1 WHERE d >= ? AND c = ?", ["DATE '2025-12-10'", "'chireader'"]),
    ).toBe("SELECT 1 WHERE d >= (DATE '2025-12-10') AND c = ('chireader')");
  });

  it("reports the expected and found counts like Trino", () => {
    expect(() => bindParameters("SELECT ?, ?", ["1"])).toThrow(
      new ParameterCountError(2, 1).message,
    );
    expect(() => bindParameters("SELECT 1", ["1"])).toThrow(ParameterCountError);
  });

  it.each([
    ["'x'; DROP TABLE t"],
    ["'unterminated"],
    ["1) OR (1=1"],
    ["1 -- comment"],
    ["?"],
    [" "],
  ])("refuses %j as a parameter value", (value) => {
    expect(() => bindParameters("SELECT ?", [value])).toThrow(InvalidParameterError);
  });

  it("accepts quotes and semicolons inside a literal value", () => {
    expect(bindParameters("SELECT ?", ["'a;b''c'"])).toBe("SELECT ('a;b''c')");
  });
});

describe("statementTypeOf", () => {
  it("classifies by the first keyword after comments", () => {
    expect(statementTypeOf("-- x\nSELECT 1")).toBe("DML");
    expect(statementTypeOf("CREATE TABLE t (a int)")).toBe("DDL");
    expect(statementTypeOf("SHOW TABLES")).toBe("UTILITY");
  });
});

describe("athenaCsvLine", () => {
  it("quotes every field, doubles quotes and leaves NULL unquoted", () => {
    expect(athenaCsvLine(["a", null, "", 'b"c', "d\ne"])).toBe('"a",,"","b""c","d\ne"\n');
  });
});

describe("parseAthenaCsv", () => {
  async function* chunked(text: string, size: number) {
    for (let i = 0; i < text.length; i += size) yield text.slice(i, i + size);
  }

  it("reads back what athenaCsvLine writes, whatever the chunk boundaries", async () => {
    const rows = [
      ["h1", "h2", "h3"],
      ["a", null, ""],
      ['say "hi"', "line 1\nline 2", "x,y"],
    ];
    const text = rows.map(athenaCsvLine).join("");

    for (const size of [1, 2, 5, text.length]) {
      const parsed = [];
      for await (const row of parseAthenaCsv(chunked(text, size))) parsed.push(row);
      expect(parsed).toEqual(rows);
    }
  });
});
