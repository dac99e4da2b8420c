import { Long, ObjectId } from "mongodb";
import { describe, expect, it } from "vitest";
import { encodeKey, formatKeyValue } from "../../local/mongo/values.js";

describe("index key encoding", () => {
  it("keeps values of different BSON types apart", () => {
    const oid = new ObjectId();
    const date = new Date(5);
    const distinct = [
      [5],
      ["5"],
      [date],
      [date.toISOString()],
      [oid],
      [oid.toHexString()],
      [true],
      [null],
      [[5]],
      [{ v: 5 }],
    ].map(encodeKey);

    expect(new Set(distinct).size).toBe(distinct.length);
  });

  it("does not let string contents forge a boundary between compound key parts", () => {
    expect(encodeKey(["a", "b"])).not.toBe(encodeKey(["ab"]));
    expect(encodeKey(["s1:a", "b"])).not.toBe(encodeKey(["s1:as1:b"]));
    expect(encodeKey(["x", ""])).not.toBe(encodeKey(["x"]));
  });

  it("treats numbers of every type, missing and null the way MongoDB's indexes do", () => {
    expect(encodeKey([Long.fromNumber(7)])).toBe(encodeKey([7]));
    expect(encodeKey([-0])).toBe(encodeKey([0]));
    expect(encodeKey([undefined])).toBe(encodeKey([null]));
  });

  it("compares embedded documents with their field order, as MongoDB does", () => {
    expect(encodeKey([{ a: 1, b: 2 }])).not.toBe(encodeKey([{ b: 2, a: 1 }]));
    expect(encodeKey([{ a: 1, b: 2 }])).toBe(encodeKey([{ a: 1, b: 2 }]));
  });
});

describe("duplicate key rendering", () => {
  it("renders key values like MongoDB's E11000 messages", () => {
    const oid = new ObjectId("65a1b2c3d4e5f60718293a4b");

    const rendered = formatKeyValue({
      orderId: oid,
      itemPath: 'a "quoted" path',
      dateStart: new Date(Date.UTC(2025, 11, 10)),
      source: null,
      n: 3,
    });

    expect(rendered).toBe(
      `{ orderId: ObjectId('65a1b2c3d4e5f60718293a4b'), itemPath: "a \\"quoted\\" path", dateStart: new Date(1765324800000), source: null, n: 3 }`,
    );
  });
});
