import { describe, expect, it } from "vitest";
import {
  classifyRecord,
  decodeS3Key,
  eventRecords,
  type RecordFilter,
} from "../../../handlers/ingest/s3-records";
import { s3Event, s3TestEvent } from "../../helpers/s3-event";

const filter: RecordFilter = {
  ingestPrefixes: ["athena-results/", "reprocess/"],
  resultsBucket: undefined,
};

function decide(key: string, bucket = "results", options = filter) {
  const [record] = s3Event(bucket, key).Records;
  if (!record) throw new Error("no record");
  return classifyRecord(record, options);
}

describe("decodeS3Key", () => {
  it("turns + into a space before percent-decoding", () => {
    expect(decodeS3Key("reprocess/red+flower%2B%281%29.csv")).toBe("reprocess/red flower+(1).csv");
  });
});

describe("classifyRecord", () => {
  it("ingests CSV keys under an ingest prefix, decoded as S3 encodes them", () => {
    expect(decide("reprocess/my file+1.csv")).toMatchObject({
      kind: "ingest",
      object: { bucket: "results", key: "reprocess/my file+1.csv" },
    });
  });

  it.each([
    ["athena-results/abc.csv.metadata", "does not end in .csv"],
    ["reports/reprocess/x.csv.json", "outside the ingest prefixes"],
    ["rejects/reprocess/x.csv", "outside the ingest prefixes"],
    ["other/x.csv", "outside the ingest prefixes"],
  ])("ignores %s", (key, reason) => {
    expect(decide(key)).toMatchObject({ kind: "ignore", reason: expect.stringContaining(reason) });
  });

  it("refuses records for another bucket when RESULTS_BUCKET is set", () => {
    expect(
      decide("reprocess/x.csv", "elsewhere", { ...filter, resultsBucket: "results" }),
    ).toMatchObject({
      kind: "refuse",
    });
  });
});

describe("eventRecords", () => {
  it("finds no records in an s3:TestEvent or an empty event", () => {
    expect(eventRecords(s3TestEvent("results"))).toEqual([]);
    expect(eventRecords({})).toEqual([]);
    expect(eventRecords(null)).toEqual([]);
  });
});
