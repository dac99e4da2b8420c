import { describe, expect, it } from "vitest";
import {
  createObjectCreatedEvent,
  decodeS3EventKey,
  encodeS3EventKey,
  nextSequencer,
} from "../../local/s3-events";
import { s3Event, s3TestEvent } from "../helpers/s3-event";

describe("encodeS3EventKey", () => {
  it("turns spaces into plus signs and percent-encodes a literal plus and parentheses", () => {
    expect(encodeS3EventKey("reprocess/red flower+(1).csv")).toBe(
      "reprocess/red+flower%2B%281%29.csv",
    );
  });

  it("keeps slashes, letters, digits and - _ . * as they are", () => {
    expect(encodeS3EventKey("athena-results/AB_c.d*9/x.csv")).toBe("athena-results/AB_c.d*9/x.csv");
  });

  it("percent-encodes reserved characters and the UTF-8 bytes of non-ASCII ones", () => {
    expect(encodeS3EventKey("dt=2025-12-10/a:b&c~é.csv")).toBe(
      "dt%3D2025-12-10/a%3Ab%26c%7E%C3%A9.csv",
    );
  });

  it("round-trips through the decoding a handler does", () => {
    const key = "reprocess/Müller & Söhne +50% (final) ~ v2.csv";
    expect(decodeS3EventKey(encodeS3EventKey(key))).toBe(key);
  });
});

describe("nextSequencer", () => {
  it("returns upper-case hex strings that increase from one event to the next", () => {
    const first = nextSequencer();
    const second = nextSequencer();
    expect(first).toMatch(/^[0-9A-F]{18}$/);
    expect(BigInt(`0x${second}`)).toBeGreaterThan(BigInt(`0x${first}`));
  });
});

describe("createObjectCreatedEvent", () => {
  it("builds one record with S3's 2.1 structure and an unquoted eTag", () => {
    const event = createObjectCreatedEvent({
      bucket: "results",
      key: "athena-results/a b.csv",
      size: 42,
      eTag: '"0123456789abcdef0123456789abcdef"',
      eventName: "ObjectCreated:CompleteMultipartUpload",
      versionId: "v1",
      region: "eu-west-1",
      eventTime: new Date("2025-12-11T06:00:01.234Z"),
      requestId: "REQ",
      hostId: "HOST",
      sequencer: "0062E99A88DC407460",
      configurationId: "ingest",
      sourceIPAddress: "10.0.0.1",
    });

    expect(event.Records).toHaveLength(1);
    expect(event.Records[0]).toEqual({
      eventVersion: "2.1",
      eventSource: "aws:s3",
      awsRegion: "eu-west-1",
      eventTime: "2025-12-11T06:00:01.234Z",
      eventName: "ObjectCreated:CompleteMultipartUpload",
      userIdentity: { principalId: expect.any(String) },
      requestParameters: { sourceIPAddress: "10.0.0.1" },
      responseElements: { "x-amz-request-id": "REQ", "x-amz-id-2": "HOST" },
      s3: {
        s3SchemaVersion: "1.0",
        configurationId: "ingest",
        bucket: {
          name: "results",
          ownerIdentity: { principalId: expect.any(String) },
          arn: "arn:aws:s3:::results",
        },
        object: {
          key: "athena-results/a+b.csv",
          size: 42,
          eTag: "0123456789abcdef0123456789abcdef",
          versionId: "v1",
          sequencer: "0062E99A88DC407460",
        },
      },
    });
  });

  it("leaves versionId out for unversioned buckets", () => {
    const event = createObjectCreatedEvent({ bucket: "b", key: "k", size: 1, eTag: "e" });
    expect(event.Records[0]?.s3.object).not.toHaveProperty("versionId");
  });
});

describe("test fixtures", () => {
  it("s3Event encodes the key as S3 does and applies overrides", () => {
    const event = s3Event("results", "reprocess/red flower+(1).csv", {
      size: 10,
      eventName: "ObjectCreated:Copy",
    });
    const record = event.Records[0];
    expect(record?.s3.object.key).toBe("reprocess/red+flower%2B%281%29.csv");
    expect(record?.s3.object.size).toBe(10);
    expect(record?.eventName).toBe("ObjectCreated:Copy");
    expect(record?.s3.bucket.name).toBe("results");
  });

  it("s3TestEvent has S3's test-event fields and no Records", () => {
    const event = s3TestEvent("results");
    expect(event).toMatchObject({ Service: "Amazon S3", Event: "s3:TestEvent", Bucket: "results" });
    expect(event).not.toHaveProperty("Records");
  });
});
