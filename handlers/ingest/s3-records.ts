import type { S3Event, S3EventRecord } from "aws-lambda";

/** One S3 object named by an event record, key already decoded. */
export interface S3ObjectRef {
  bucket: string;
  key: string;
  size: number | undefined;
  eTag: string | undefined;
  versionId: string | undefined;
  sequencer: string | undefined;
  eventName: string;
}

export type RecordDecision =
  | { kind: "ingest"; object: S3ObjectRef }
  | { kind: "ignore"; object: S3ObjectRef; reason: string }
  | { kind: "refuse"; object: S3ObjectRef; reason: string };

/**
 * S3 URL-encodes keys in events (`red flower.csv` arrives as `red+flower.csv`):
 * `+` is a space, then percent-decoding.
 */
export function decodeS3Key(encoded: string): string {
  return decodeURIComponent(encoded.replace(/\+/g, " "));
}

/** The records of an S3 notification; none for `s3:TestEvent` or an event without records. */
export function eventRecords(event: unknown): S3EventRecord[] {
  const records = (event as Partial<S3Event> | null)?.Records;
  return Array.isArray(records) ? records : [];
}

export interface RecordFilter {
  ingestPrefixes: readonly string[];
  resultsBucket: string | undefined;
}

/** Decides what to do with one record: ingest it, ignore it (one log line), or refuse it. */
export function classifyRecord(record: S3EventRecord, filter: RecordFilter): RecordDecision {
  const object: S3ObjectRef = {
    bucket: record.s3.bucket.name,
    key: decodeS3Key(record.s3.object.key),
    size: record.s3.object.size,
    eTag: record.s3.object.eTag,
    versionId: record.s3.object.versionId,
    sequencer: record.s3.object.sequencer,
    eventName: record.eventName,
  };
  if (filter.resultsBucket !== undefined && object.bucket !== filter.resultsBucket) {
    return { kind: "refuse", object, reason: "bucket is not RESULTS_BUCKET" };
  }
  if (!record.eventName?.startsWith("ObjectCreated")) {
    return { kind: "ignore", object, reason: `event ${record.eventName} is not ObjectCreated` };
  }
  if (!filter.ingestPrefixes.some((prefix) => object.key.startsWith(prefix))) {
    return { kind: "ignore", object, reason: "key is outside the ingest prefixes" };
  }
  if (!object.key.endsWith(".csv")) {
    return { kind: "ignore", object, reason: "key does not end in .csv" };
  }
  return { kind: "ingest", object };
}
