import { randomBytes } from "node:crypto";
import type { S3Event, S3EventRecord } from "aws-lambda";

/**
 * S3 event notifications as S3 sends them (event message structure 2.1), built in one
 * place so the S3 stand-in and the test factories cannot drift apart.
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html
 */

/** The `ObjectCreated` kinds S3 emits; the stand-in produces the first three. */
export const OBJECT_CREATED_EVENTS = [
  "ObjectCreated:Put",
  "ObjectCreated:Copy",
  "ObjectCreated:CompleteMultipartUpload",
  "ObjectCreated:Post",
] as const;

export type ObjectCreatedEventName = (typeof OBJECT_CREATED_EVENTS)[number];

/** What S3 sends once when a notification configuration is enabled: no `Records`. */
export interface S3TestEvent {
  Service: "Amazon S3";
  Event: "s3:TestEvent";
  Time: string;
  Bucket: string;
  RequestId: string;
  HostId: string;
}

// Bytes S3 leaves as they are in an event key: the form-encoding safe set plus "/".
// Everything else is percent-encoded from its UTF-8 bytes, and a space becomes "+",
// so "reprocess/red flower+(1).csv" arrives as "reprocess/red+flower%2B%281%29.csv".
const UNENCODED_KEY_BYTE = /^[A-Za-z0-9\-_.*/]$/;

/**
 * Encodes an object key the way S3 writes it into `s3.object.key`
 * (application/x-www-form-urlencoded, keeping "/").
 */
export function encodeS3EventKey(key: string): string {
  let encoded = "";
  for (const byte of Buffer.from(key, "utf8")) {
    const char = String.fromCharCode(byte);
    if (char === " ") encoded += "+";
    else if (byte < 0x80 && UNENCODED_KEY_BYTE.test(char)) encoded += char;
    else encoded += `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return encoded;
}

/** The inverse: what a handler does with `s3.object.key` (`+` is a space, then percent-decoding). */
export function decodeS3EventKey(encodedKey: string): string {
  return decodeURIComponent(encodedKey.replace(/\+/g, " "));
}

/** An S3 request id: 16 upper-case hex characters. */
export function createRequestId(): string {
  return randomBytes(8).toString("hex").toUpperCase();
}

/** An `x-amz-id-2` host id: opaque base64. */
export function createHostId(): string {
  return randomBytes(48).toString("base64");
}

let lastSequencer = 0n;

/**
 * A sequencer as S3 writes it: upper-case hex, larger for later events on the same key.
 * Time-based and strictly increasing within the process, so it also orders events across
 * servers started one after another in a test run.
 */
export function nextSequencer(): string {
  const fromClock = BigInt(Date.now()) << 16n;
  lastSequencer = fromClock > lastSequencer ? fromClock : lastSequencer + 1n;
  return lastSequencer.toString(16).toUpperCase().padStart(18, "0");
}

export interface ObjectCreatedEventInput {
  bucket: string;
  /** The object key as stored (not encoded); it is encoded here. */
  key: string;
  size: number;
  /** With or without the quotes S3 puts around ETags in HTTP headers; the event has none. */
  eTag: string;
  eventName?: ObjectCreatedEventName;
  versionId?: string;
  sequencer?: string;
  region?: string;
  eventTime?: Date;
  configurationId?: string;
  sourceIPAddress?: string;
  requestId?: string;
  hostId?: string;
  principalId?: string;
  bucketOwnerPrincipalId?: string;
}

const DEFAULT_PRINCIPAL_ID = "AWS:AIDAEXAMPLELOCALSTANDIN";
const DEFAULT_BUCKET_OWNER_ID = "A3LOCALSTANDINEXAMPLE";

/** One `ObjectCreated` record, shaped exactly like S3's. */
export function createObjectCreatedRecord(input: ObjectCreatedEventInput): S3EventRecord {
  const object: S3EventRecord["s3"]["object"] = {
    key: encodeS3EventKey(input.key),
    size: input.size,
    eTag: input.eTag.replace(/^"|"$/g, ""),
    ...(input.versionId === undefined ? {} : { versionId: input.versionId }),
    sequencer: input.sequencer ?? nextSequencer(),
  };
  return {
    eventVersion: "2.1",
    eventSource: "aws:s3",
    awsRegion: input.region ?? "us-east-1",
    eventTime: (input.eventTime ?? new Date()).toISOString(),
    eventName: input.eventName ?? "ObjectCreated:Put",
    userIdentity: { principalId: input.principalId ?? DEFAULT_PRINCIPAL_ID },
    requestParameters: { sourceIPAddress: input.sourceIPAddress ?? "127.0.0.1" },
    responseElements: {
      "x-amz-request-id": input.requestId ?? createRequestId(),
      "x-amz-id-2": input.hostId ?? createHostId(),
    },
    s3: {
      s3SchemaVersion: "1.0",
      configurationId: input.configurationId ?? "tracking-sync-ingest",
      bucket: {
        name: input.bucket,
        ownerIdentity: { principalId: input.bucketOwnerPrincipalId ?? DEFAULT_BUCKET_OWNER_ID },
        arn: `arn:aws:s3:::${input.bucket}`,
      },
      object,
    },
  };
}

/** An S3 event with one `ObjectCreated` record (S3 sends one record per event). */
export function createObjectCreatedEvent(input: ObjectCreatedEventInput): S3Event {
  return { Records: [createObjectCreatedRecord(input)] };
}

/** The `s3:TestEvent` S3 sends when a notification configuration is saved. */
export function createTestEvent(bucket: string, time: Date = new Date()): S3TestEvent {
  return {
    Service: "Amazon S3",
    Event: "s3:TestEvent",
    Time: time.toISOString(),
    Bucket: bucket,
    RequestId: createRequestId(),
    HostId: createHostId(),
  };
}
