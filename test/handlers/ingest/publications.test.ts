import { describe, expect, it } from "vitest";
import {
  BUILT_IN_PUBLICATION_CODES,
  PublicationDirectory,
  parsePublicationCodeMap,
} from "../../../handlers/ingest/publications";

describe("PublicationDirectory", () => {
  it("knows the spec's fourteen codes, case-insensitively", () => {
    const directory = new PublicationDirectory([], {});

    expect(Object.keys(BUILT_IN_PUBLICATION_CODES)).toHaveLength(14);
    expect(directory.lookup("ChiReader")).toBe(1035);
    expect(directory.lookup("STREETWISE")).toBe(1055);
    expect(directory.lookup("unknown")).toBeUndefined();
  });

  it("lets the publications collection extend and override the built-in map", () => {
    const directory = new PublicationDirectory(
      [
        { publicationCode: "NewPaper", publicationId: 2001 },
        { publicationCode: "tribune", publicationId: 9043 },
      ],
      {},
    );

    expect(directory.lookup("newpaper")).toBe(2001);
    expect(directory.lookup("tribune")).toBe(9043);
  });

  it("gives PUBLICATION_CODE_MAP the last word over the collection and built-in map", () => {
    const directory = new PublicationDirectory(
      [{ publicationCode: "tribune", publicationId: 9043 }],
      parsePublicationCodeMap({ Tribune: 7043, extra: 3000 }),
    );

    expect(directory.lookup("tribune")).toBe(7043);
    expect(directory.lookup("EXTRA")).toBe(3000);
  });

  it("ignores a code the collection gives to two different publications", () => {
    const directory = new PublicationDirectory(
      [
        { publicationCode: "wbez", publicationId: 1 },
        { publicationCode: "WBEZ", publicationId: 2 },
      ],
      {},
    );

    expect(directory.conflicts).toEqual(["wbez"]);
    expect(directory.lookup("wbez")).toBe(1047);
  });
});

describe("parsePublicationCodeMap", () => {
  it("rejects anything but an object of integer ids", () => {
    expect(() => parsePublicationCodeMap([1])).toThrow("JSON object");
    expect(() => parsePublicationCodeMap({ a: "1" })).toThrow('"a"');
    expect(() => parsePublicationCodeMap({ a: 1.5 })).toThrow('"a"');
  });
});
