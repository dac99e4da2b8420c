import type { S3Event } from "aws-lambda";
import {
  createObjectCreatedEvent,
  createTestEvent,
  type ObjectCreatedEventInput,
  type S3TestEvent,
} from "../../local/s3-events";

export type S3EventOverrides = Partial<Omit<ObjectCreatedEventInput, "bucket" | "key">>;

/**
 * An `ObjectCreated` event for one object, shaped exactly like S3's: the key is
 * URL-encoded as S3 encodes it (`red flower.csv` → `red+flower.csv`). Pass the real,
 * unencoded key. Defaults: `ObjectCreated:Put`, size 0, the MD5 of empty content.
 */
export function s3Event(bucket: string, key: string, overrides: S3EventOverrides = {}): S3Event {
  return createObjectCreatedEvent({
    size: 0,
    eTag: "d41d8cd98f00b204e9800998ecf8427e",
    ...overrides,
    bucket,
    key,
  });
}

/** The `s3:TestEvent` S3 sends when a notification configuration is enabled (no `Records`). */
export function s3TestEvent(bucket = "test-bucket"): S3TestEvent {
  return createTestEvent(bucket);
}
