import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import {
  type CsvRecord,
  MAX_RECORD_BYTES,
  quotedFieldFlags,
  type ReadCsvOptions,
  readCsvChunks,
  readCsvRecords,
} from "../../../handlers/ingest/csv-rows";

async function readAll(
  text: string | Buffer,
  chunkSize = 7,
  options: ReadCsvOptions = {},
): Promise<CsvRecord[]> {
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text, "utf8");
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunkSize) chunks.push(bytes.subarray(i, i + chunkSize));
  const records: CsvRecord[] = [];
  for await (const record of readCsvRecords(Readable.from(chunks), options)) records.push(record);
  return records;
}

/** Reads `bytes` from `record`'s end on, as a continuation's ranged GET does. */
function resumeAfter(bytes: Buffer, record: CsvRecord, chunkSize = 7): Promise<CsvRecord[]> {
  return readAll(bytes.subarray(record.endByte), chunkSize, {
    startByte: record.endByte,
    startLine: record.nextLine,
  });
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

  it("reads a NULL or an empty string in the last field of a file without a final newline", async () => {
    const nullLast = Buffer.from('"a","b"\n"x",', "utf8");
    const emptyLast = Buffer.from('"a","b"\n"x",""', "utf8");

    const [nullRecords, emptyRecords] = [await readAll(nullLast), await readAll(emptyLast)];

    expect(nullRecords.at(-1)).toEqual({ line: 2, fields: ["x", null], endByte: 12, nextLine: 3 });
    expect(emptyRecords.at(-1)).toEqual({ line: 2, fields: ["x", ""], endByte: 14, nextLine: 3 });
  });

  it("keeps lines, offsets and NULLs of a CRLF file with a quoted field spanning lines", async () => {
    const bytes = Buffer.from('"a","b","c"\r\n"multi\r\nline",,""\r\n"4","5",\r\n', "utf8");

    const records = await readAll(bytes, 3);

    expect(records).toEqual([
      { line: 1, fields: ["a", "b", "c"], endByte: 13, nextLine: 2 },
      {
        line: 2,
        fields: ["multi\r\nline", null, ""],
        endByte: 32,
        nextLine: 4,
        raw: '"multi\r\nline",,""',
      },
      { line: 4, fields: ["4", "5", null], endByte: 42, nextLine: 5 },
    ]);
  });

  it("counts a CR inside a field of a LF file as data, not as a line", async () => {
    const records = await readAll('a,b\n"x\ry",1\n1\r2,3\n4,5\n', 2);

    expect(records.map((record) => [record.line, record.nextLine])).toEqual([
      [1, 2],
      [2, 3],
      [3, 4],
      [4, 5],
    ]);
  });

  it.each([1, 2, 3, 4])("strips a BOM that arrives in chunks of %i byte(s)", async (chunkSize) => {
    const bytes = Buffer.from('\ufeff"a","b"\n"1","2"\n', "utf8");
    const records = await readAll(bytes, chunkSize);

    expect(records.map((record) => [record.fields, record.endByte])).toEqual([
      [["a", "b"], 11],
      [["1", "2"], 19],
    ]);
  });

  it.each([
    ["empty", ""],
    ["one byte", "a"],
    ["two bytes", "a\n"],
  ])("reads a file shorter than a BOM (%s)", async (_name, text) => {
    const records = await readAll(Buffer.from(text, "utf8"), 1);

    expect(records.map((record) => record.fields)).toEqual(text.trim() === "" ? [] : [["a"]]);
  });

  it("counts a stripped BOM in the offsets, and resuming at them reads the same records", async () => {
    const bytes = Buffer.from('\ufeff"a","b"\r\n"é",\r\n"multi\nline",""\r\n"4","5"', "utf8");
    const records = await readAll(bytes, 4);

    expect(records.map((record) => [record.line, record.endByte, record.nextLine])).toEqual([
      [1, 12, 2],
      [2, 19, 3],
      [3, 36, 5],
      [5, 43, 6],
    ]);
    for (const [index, record] of records.entries()) {
      expect(await resumeAfter(bytes, record)).toEqual(records.slice(index + 1));
    }
  });

  it.each([1, 2, 3, 5, 64])(
    "reads the same records whatever the chunk size (%i bytes)",
    async (size) => {
      const text =
        '"h1","h2","h3"\n"é","",\n,,\n\n"a ""q"" b","x\r\ny",\n"ü€😀",,"z"\n\n"1","2","3"\n,"",';

      const records = await readAll(text, size);

      expect(records).toEqual(await readAll(text, text.length));
      expect(records.map((record) => [record.line, record.fields])).toEqual([
        [1, ["h1", "h2", "h3"]],
        [2, ["é", "", null]],
        [3, [null, null, null]],
        [5, ['a "q" b', "x\r\ny", null]],
        [7, ["ü€😀", null, "z"]],
        [9, ["1", "2", "3"]],
        [10, [null, "", null]],
      ]);
      expect(records.at(-1)?.endByte).toBe(Buffer.byteLength(text));
    },
  );

  it("keeps a line holding only a quoted empty string, which is not blank", async () => {
    const records = await readAll('a\n""\n\n"x"\n');

    expect(records.map((record) => [record.line, record.fields])).toEqual([
      [1, ["a"]],
      [2, [""]],
      [4, ["x"]],
    ]);
  });

  it("skips blank CRLF lines and resumes after them at the right line", async () => {
    const bytes = Buffer.from("a,b\r\n\r\n\r\n1,2\r\n", "utf8");
    const records = await readAll(bytes, 1);

    expect(records).toEqual([
      { line: 1, fields: ["a", "b"], endByte: 5, nextLine: 2 },
      { line: 4, fields: ["1", "2"], endByte: 14, nextLine: 5 },
    ]);
  });

  it("gives the unclosed-quote record the rest of the file, also on resume", async () => {
    const bytes = Buffer.from('a,b\n8,9\n"open,1\n10,é\n', "utf8");
    const records = await readAll(bytes, 3);

    expect(records.at(-1)).toEqual({
      line: 3,
      fields: [],
      endByte: bytes.length,
      nextLine: 5,
      malformed: "unclosed-quote",
      raw: '"open,1\n10,é',
    });
    expect(await resumeAfter(bytes, records[1] as CsvRecord)).toEqual(records.slice(2));
  });

  it("stops holding a record that grows past MAX_RECORD_BYTES and gives it the rest of the file", async () => {
    // Unquoted, so no quote in them can close the open one.
    const line = "cr_1,chireader,2025-09-01,10,1\n";
    const lines = Math.ceil((MAX_RECORD_BYTES * 3) / line.length);
    const head = 'a,b,c,d,e\n"x","y","z","1","2"\n"open,1\n';
    const bytes = Buffer.from(head + line.repeat(lines) + "tail", "utf8");
    const openAt = head.indexOf('"open');
    const chunks: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += 65_536) chunks.push(bytes.subarray(i, i + 65_536));

    const batches: CsvRecord[][] = [];
    for await (const batch of readCsvChunks(Readable.from(chunks))) batches.push(batch);
    const records = batches.flat();

    expect(records.map((record) => [record.line, record.fields.length])).toEqual([
      [1, 5],
      [2, 5],
      [3, 0],
    ]);
    expect(records[2]).toEqual({
      line: 3,
      fields: [],
      endByte: bytes.length,
      // The open line, every full line after it, and the last line without a newline.
      nextLine: 3 + 1 + lines + 1,
      malformed: "record-too-large",
      // Its first MAX_RECORD_BYTES only: the reader holds no more.
      raw: bytes.subarray(openAt, openAt + MAX_RECORD_BYTES).toString("utf8"),
    });
    // Reported only at the end of the input, after every chunk was read.
    expect(batches.at(-1)).toEqual([records[2]]);
  });

  it("reads a quoted field just under MAX_RECORD_BYTES as data", async () => {
    const big = "x\n".repeat(Math.floor((MAX_RECORD_BYTES - 100) / 2));
    const bytes = Buffer.from(`a,b\n"${big}",1\n2,3\n`, "utf8");

    const records = await readAll(bytes, 65_536);

    expect(records.map((record) => [record.line, record.fields[1], record.malformed])).toEqual([
      [1, "b", undefined],
      [2, "1", undefined],
      [2 + big.length / 2 + 1, "3", undefined],
    ]);
    expect(records[1]?.fields[0]).toBe(big);
  });
});

describe("readCsvRecords keeps the text of a record whose fields may not be the file's", () => {
  it("keeps the whole text of a record whose closing quote is missing, the line it swallowed too", async () => {
    const bytes = Buffer.from('"a","b","c"\n"1","2","3\n"4","5","6"\n"7","8","9"\n', "utf8");

    const records = await readAll(bytes, 5);

    expect(records.map(({ line, nextLine, raw }) => ({ line, nextLine, raw }))).toEqual([
      { line: 1, nextLine: 2, raw: undefined },
      { line: 2, nextLine: 4, raw: '"1","2","3\n"4","5","6"' },
      { line: 4, nextLine: 5, raw: undefined },
    ]);
    expect(records[1]?.fields).toHaveLength(5);
  });

  it("keeps the text of a record of another width than the header's, also on resume", async () => {
    const bytes = Buffer.from("a,b,c\r\n1,2\r\n3,4,5\r\n6,7,8,9\r\n", "utf8");

    const records = await readAll(bytes, 4);
    // Resumed at the short record: only the header's width, passed in, tells it is short.
    const resumed = await readAll(bytes.subarray(7), 4, {
      startByte: 7,
      startLine: 2,
      headerWidth: 3,
    });

    expect(records.map((record) => record.raw)).toEqual([undefined, "1,2", undefined, "6,7,8,9"]);
    expect(resumed).toEqual(records.slice(1));
  });

  it("cuts a record-too-large's text at MAX_RECORD_BYTES, leaving out a character cut in two", async () => {
    // After the opening quote, 2-byte characters: the record's byte MAX_RECORD_BYTES - 1
    // is the first half of one.
    const open = `"${"é".repeat(MAX_RECORD_BYTES)}`;
    const bytes = Buffer.from(`a,b\n${open}\n`, "utf8");

    const records = await readAll(bytes, 65_536);

    expect(records[1]?.malformed).toBe("record-too-large");
    expect(records[1]?.raw).toBe(`"${"é".repeat((MAX_RECORD_BYTES - 2) / 2)}`);
  });
});

describe("readCsvChunks' end of input", () => {
  /** The records, and what the generator returns once the input ends. */
  async function readToEnd(text: string) {
    const chunks = readCsvChunks(Readable.from([Buffer.from(text, "utf8")]));
    const records: CsvRecord[] = [];
    for (;;) {
      const next = await chunks.next();
      if (next.done) return { records, end: next.value };
      records.push(...next.value);
    }
  }

  it.each([
    ["a final newline", "a,b\n1,2\n", 3],
    ["no final newline", "a,b\n1,2", 3],
    ["trailing blank lines", "a,b\n1,2\n\n\n", 5],
    ["trailing blank CRLF lines", "a,b\r\n1,2\r\n\r\n", 4],
    ["a quote that never closes", 'a,b\n"1,2\n3,4\n', 4],
    ["a header only", "a,b\n\n", 3],
  ])("returns the end of the input past its last line (%s)", async (_name, text, nextLine) => {
    const { records, end } = await readToEnd(text);

    expect(end).toEqual({ endByte: Buffer.byteLength(text), nextLine });
    expect(records.at(-1)?.nextLine).toBeLessThanOrEqual(nextLine);
  });
});

describe("readCsvRecords' offsets are the input's bytes", () => {
  it("ends a CRLF file's last record at the end of the file when it ends in a bare CR", async () => {
    const bytes = Buffer.from("a,b\r\n1,2\r", "utf8");

    const records = await readAll(bytes, 3);

    expect(records.at(-1)).toEqual({ line: 2, fields: ["1", "2\r"], endByte: 9, nextLine: 3 });
  });

  it("counts an invalid UTF-8 byte as the one byte it is", async () => {
    const bytes = Buffer.concat([
      Buffer.from("a,b\n", "utf8"),
      Buffer.from([0xff]),
      Buffer.from(",2\n3,4\n"),
    ]);
    const records = await readAll(bytes, 2);

    expect(records.map((record) => record.endByte)).toEqual([4, 8, 12]);
    expect(await resumeAfter(bytes, records[1] as CsvRecord)).toEqual(records.slice(2));
  });
});

describe("readCsvRecords and its source", () => {
  it("closes the source when the consumer stops early", async () => {
    const source = Readable.from(
      ["a,b\n", "1,2\n", "3,4\n", "5,6\n"].map((text) => Buffer.from(text)),
    );

    for await (const record of readCsvRecords(source)) {
      if (record.line === 2) break;
    }

    expect(source.destroyed).toBe(true);
  });

  it("fails with the source's error", async () => {
    const source = new Readable({ read() {} });
    source.push(Buffer.from("a,b\n1,2\n"));
    setImmediate(() => source.destroy(new Error("connection reset")));

    const reading = (async () => {
      for await (const _record of readCsvRecords(source));
    })();

    await expect(reading).rejects.toThrow("connection reset");
  });
});

describe("readCsvChunks", () => {
  it("yields the records of readCsvRecords, in order, in non-empty arrays", async () => {
    const text = 'a,b\n1,\n"x\ny",""\n\n"open';
    const bytes = Buffer.from(text, "utf8");
    const chunks = [bytes.subarray(0, 5), bytes.subarray(5, 6), bytes.subarray(6)];

    const batches: CsvRecord[][] = [];
    for await (const batch of readCsvChunks(Readable.from(chunks))) batches.push(batch);

    expect(batches.every((batch) => batch.length > 0)).toBe(true);
    expect(batches.flat()).toEqual(await readAll(text));
  });
});

describe("quotedFieldFlags", () => {
  it("tells which fields of a raw record were quoted", () => {
    expect(quotedFieldFlags('"a",,"",b,"c""d"\n')).toEqual([true, false, true, false, true]);
  });
});
