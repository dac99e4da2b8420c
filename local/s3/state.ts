import { randomBytes } from "node:crypto";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { wholeSeconds } from "./conventions";
import { FaultState } from "./faults";
import { createNotificationState, type NotificationState } from "./notifications";
import { type Bucket, ObjectStore, type StoredObject } from "./store";

/** Everything the S3 stand-in knows; every operation reads and changes it through here. */
export interface S3State {
  readonly store: ObjectStore;
  readonly region: string;
  /** Give every object a versionId (only the latest version is kept). */
  readonly versioning: boolean;
  /** The temp dir is removed on stop only when the server made it. */
  readonly ownsDir: boolean;
  /** Known once the server listens; CompleteMultipartUpload's Location names it. */
  endpoint: string;
  readonly notifications: NotificationState;
  /** Failures injected on purpose (tests): cut downloads. */
  readonly faults: FaultState;
}

export interface S3StateOptions {
  dir?: string;
  region?: string;
  versioning?: boolean;
  onDeliveryError?: NotificationState["onDeliveryError"];
}

export async function createS3State(options: S3StateOptions): Promise<S3State> {
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), "s3-stand-in-")));
  const store = new ObjectStore(dir);
  await store.init();
  return {
    store,
    region: options.region ?? "us-east-1",
    versioning: options.versioning === true,
    ownsDir: options.dir === undefined,
    endpoint: "",
    notifications: createNotificationState(options.onDeliveryError),
    faults: new FaultState(),
  };
}

/** Returns the bucket, creating it first when it does not exist. */
export function ensureBucket(state: S3State, name: string): Bucket {
  const existing = state.store.buckets.get(name);
  if (existing) return existing;
  const bucket: Bucket = {
    name,
    created: wholeSeconds(new Date()),
    objects: new Map(),
    uploads: new Map(),
  };
  state.store.buckets.set(name, bucket);
  return bucket;
}

export function newVersionId(state: S3State): string | undefined {
  return state.versioning ? randomBytes(24).toString("base64url") : undefined;
}

/** Replaces (or adds) the object, dropping the bytes of the one it replaces. */
export async function commitObject(
  state: S3State,
  bucket: Bucket,
  object: StoredObject,
): Promise<void> {
  const previous = bucket.objects.get(object.key);
  bucket.objects.set(object.key, object);
  if (previous && previous.file !== object.file) await state.store.discard(previous.file);
}
