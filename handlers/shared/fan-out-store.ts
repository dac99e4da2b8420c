import type { S3Client } from "@aws-sdk/client-s3";
import { FAN_OUT_KEY } from "./bucket-layout";
import { type FanOutState, parseFanOutState, prunePlans } from "./fan-out";
import { getJsonObject, updateJsonObject } from "./s3";

/** The fan-out state of a results bucket (`state/fan-out.json`). */
export interface FanOutStore {
  read(): Promise<FanOutState>;
  /**
   * Applies `change` to the latest state and writes the result if anything changed, so
   * concurrent invocations never lose each other's changes. `change` may run more than
   * once (after a lost race) and must only change the state it is given.
   */
  update<R>(change: (state: FanOutState) => R): Promise<R>;
}

/** Every ending day, ingest and start writes here, a few at once: allow more lost races. */
const UPDATE_ATTEMPTS = 20;

export function createS3FanOutStore(
  s3: S3Client,
  bucket: string,
  now: () => Date = () => new Date(),
): FanOutStore {
  return {
    read: async () => parseFanOutState(await getJsonObject(s3, bucket, FAN_OUT_KEY)),
    update: (change) =>
      updateJsonObject(
        s3,
        bucket,
        FAN_OUT_KEY,
        (value) => {
          const state = parseFanOutState(value);
          const before = JSON.stringify(state);
          const result = change(state);
          prunePlans(state, now());
          return JSON.stringify(state) === before ? { result } : { next: state, result };
        },
        UPDATE_ATTEMPTS,
      ),
  };
}
