import { describe, expect, it } from "vitest";
import {
  type ColumnIndex,
  indexHeader,
  parseCount,
  validateRecord,
} from "../../../handlers/ingest/validate-row";

const HEADER = [
  "report_date",
  "creative_id",
  "publication_code",
  "channel",
  "ad_size",
  "impressions",
  "clicks",
  "viewable_impressions",
  "unique_ips",
];

function columns(): { index: ColumnIndex; width: number } {
  const result = indexHeader(HEADER);
  if (!result.ok) throw new Error("header");
  return result;
}

function validate(overrides: Record<string, string | null>) {
  const values: Record<string, string | null> = {
    report_date: "2025-12-10",
    creative_id: "cr_a_1",
    publication_code: "chireader",
    channel: "website",
    ad_size: "300x250",
    impressions: "100",
    clicks: "5",
    viewable_impressions: "50",
    unique_ips: "40",
    ...overrides,
  };
  const { index, width } = columns();
  return validateRecord(
    HEADER.map((name) => values[name] ?? null),
    7,
    index,
    width,
    new Set(),
  );
}

describe("indexHeader", () => {
  it("matches columns by trimmed, case-insensitive name in any order and ignores extras", () => {
    const result = indexHeader(["extra", " Unique_IPs ", ...HEADER.slice(0, 8).reverse()]);

    expect(result.ok).toBe(true);
    if (result.ok) {
      expect(result.index).toMatchObject({ unique_ips: 1, report_date: 9 });
      expect(Object.keys(result.index)).not.toContain("extra");
    }
  });

  it("names every missing required column", () => {
    expect(indexHeader(["report_date", "creative_id"])).toEqual({
      ok: false,
      missing: [
        "publication_code",
        "channel",
        "ad_size",
        "impressions",
        "clicks",
        "viewable_impressions",
        "unique_ips",
      ],
    });
  });
});

describe("validateRecord", () => {
  it("accepts a valid row with trimmed text and numeric counts", () => {
    expect(validate({ creative_id: " cr_a_1 " })).toEqual({
      ok: true,
      row: {
        line: 7,
        reportDate: "2025-12-10",
        creativeId: "cr_a_1",
        publicationCode: "chireader",
        channel: "website",
        adSize: "300x250",
        impressions: 100,
        clicks: 5,
        viewableImpressions: 50,
        uniqueIps: 40,
      },
      warnings: undefined,
    });
  });

  it.each([
    [{ report_date: "2025-02-30" }, "invalid-report-date"],
    [{ report_date: "2025-12-1" }, "invalid-report-date"],
    [{ report_date: null }, "invalid-report-date"],
    [{ creative_id: "" }, "missing-creative-id"],
    [{ creative_id: null }, "missing-creative-id"],
    [{ publication_code: "  " }, "missing-publication-code"],
    [{ creative_id: 'cr_"a' }, "malformed-quoting"],
    [{ impressions: "1e3" }, "invalid-impressions"],
    [{ impressions: "1.5" }, "invalid-impressions"],
    [{ impressions: "-1" }, "invalid-impressions"],
    [{ impressions: "" }, "invalid-impressions"],
    [{ impressions: null }, "invalid-impressions"],
    [{ clicks: "x" }, "invalid-clicks"],
    [{ viewable_impressions: "0x10" }, "invalid-viewable-impressions"],
    [{ unique_ips: "1234567890123456" }, "invalid-unique-ips"],
  ])("rejects %j with %s", (overrides, reason) => {
    expect(validate(overrides)).toMatchObject({ ok: false, reason });
  });

  it("rejects a row with the wrong number of fields", () => {
    const { index, width } = columns();
    expect(validateRecord(["2025-12-10"], 3, index, width, new Set())).toMatchObject({
      ok: false,
      reason: "wrong-field-count",
      detail: "expected 9 fields, got 1",
    });
  });

  it("keeps clicks and viewable impressions above impressions as measured, with warnings", () => {
    const result = validate({
      impressions: "10",
      clicks: "12",
      viewable_impressions: "11",
      unique_ips: "3",
    });

    expect(result).toMatchObject({
      ok: true,
      row: { impressions: 10, clicks: 12, viewableImpressions: 11 },
      warnings: ["clicks-exceed-impressions", "viewable-exceed-impressions"],
    });
  });

  it("keeps NULL channel and ad size as null and empty strings as empty", () => {
    expect(validate({ channel: null, ad_size: "" })).toMatchObject({
      ok: true,
      row: { channel: null, adSize: "" },
    });
  });
});

describe("parseCount", () => {
  it("accepts only non-negative integers", () => {
    expect([parseCount("0"), parseCount("007"), parseCount(" 5 ")]).toEqual([0, 7, 5]);
    expect([parseCount("1e3"), parseCount("+1"), parseCount(null)]).toEqual([-1, -1, -1]);
  });
});
