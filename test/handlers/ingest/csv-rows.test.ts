import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import {
  type CsvRecord,
  quotedFieldFlags,
  readCsvRecords,
} from "../../../handlers/ingest/csv-rows";

async function readAll(text: string | Buffer, chunkSize = 7): Promise<CsvRecord[]> {
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text, "utf8");
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunkSize) chunks.push(bytes.subarray(i, i + chunkSize));
  const records: CsvRecord[] = [];
  for await (const record of readCsvRecords(Readable.from(chunks))) records.push(record);
  return records;
}

describe("readCsvRecords", () => {
  it("keeps NULL (unquoted empty) apart from the empty string (quoted empty)", async () => {
    const records = await readAll('a,b,c\n"x","",\n,"y",""\n');

    expect(records.map((record) => record.fields)).toEqual([
      ["a", "b", "c"],
      ["x", "", null],
      [null, "y", ""],
    ]);
  });

  it("strips a BOM, accepts CRLF and gives each record its starting line", async () => {
    const records = await readAll('\ufeff"a","b"\r\n"1","2"\r\n"multi\r\nline","3"\r\n"4","5"\r\n');

    expect(records.map((record) => [record.line, record.fields])).toEqual([
      [1, ["a", "b"]],
      [2, ["1", "2"]],
      [3, ["multi\r\nline", "3"]],
      [5, ["4", "5"]],
    ]);
  });

  it.each([
    ["LF", 'a,b\n1,2\n"x\ny",é\n', 1],
    ["CRLF", 'a,b\r\n1,2\r\n"x\r\ny",é\r\n', 3],
    ["BOM + CRLF", '\ufeffa,b\r\n1,2\r\n"x",""\r\n', 1],
    ["no final newline", "a,b\n1,2\n3,4", 2],
  ])("tracks the byte offset after each record exactly (%s)", async (_name, text, chunkSize) => {
    const bytes = Buffer.from(text, "utf8");
    const records = await readAll(bytes, chunkSize);

    // Resuming at any record's end offset re-reads exactly the records after it.
    for (const [index, record] of records.entries()) {
      const rest = await readAll(bytes.subarray(record.endByte));
      expect(rest.map((r) => r.fields)).toEqual(records.slice(index + 1).map((r) => r.fields));
    }
    expect(records.at(-1)?.endByte).toBe(bytes.length);
  });

  it("yields rows with the wrong field count as they are (validation rejects them)", async () => {
    const records = await readAll("a,b,c\n1,2\n1,2,3,4\n5,6,7\n");

    expect(records.map((record) => record.fields.length)).toEqual([3, 2, 4, 3]);
  });

  it("keeps going after a stray quote and reports a quote that never closes at its start line", async () => {
    const records = await readAll('a,b\n"q"w,2\nab"c,3\n8,9\n"open,1\n10,11\n');

    expect(records.map((record) => [record.line, record.fields, record.malformed])).toEqual([
      [1, ["a", "b"], undefined],
      [2, ['"q"w', "2"], undefined],
      [3, ['ab"c', "3"], undefined],
      [4, ["8", "9"], undefined],
      [5, [], "unclosed-quote"],
    ]);
  });

  it("skips blank lines but counts them", async () => {
    const records = await readAll("a,b\n\n1,2\n");

    expect(records.map((record) => [record.line, record.fields])).toEqual([
      [1, ["a", "b"]],
      [3, ["1", "2"]],
    ]);
  });
});

describe("quotedFieldFlags", () => {
  it("tells which fields of a raw record were quoted", () => {
    expect(quotedFieldFlags('"a",,"",b,"c""d"\n')).toEqual([true, false, true, false, true]);
  });
});
