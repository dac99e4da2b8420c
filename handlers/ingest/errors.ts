import { TrackingSyncError } from "../shared/errors";

/**
 * The S3 object could not be read (missing, access denied, stream broken). The object
 * is the unit of retry: the handler throws so Lambda's async retries take over.
 */
export class ObjectUnreadableError extends TrackingSyncError {}

/**
 * MongoDB could not be reached or failed mid-file. Retryable as a unit: every write is
 * idempotent (keyed on the unique upsert key), so a retry ends as a clean run would.
 */
export class MongoUnavailableError extends TrackingSyncError {}

/**
 * The file lacks required columns. A data problem: retrying cannot help, so the run is
 * reported `success: false` and the handler does not throw.
 */
export class MissingColumnsError extends TrackingSyncError {
  readonly missingColumns: string[];

  constructor(missingColumns: string[], context: Record<string, unknown> = {}) {
    super(`CSV header lacks required column(s): ${missingColumns.join(", ")}`, {
      ...context,
      missingColumns,
    });
    this.missingColumns = missingColumns;
  }
}

/** Existing duplicate entries prevent the unique index on the upsert key. */
export class DuplicateEntriesError extends TrackingSyncError {}

/** The run manifest exists but is not valid: whether to write is unknown, so nothing is written. */
export class InvalidManifestError extends TrackingSyncError {}

/** One or more objects of an event failed as a unit; Lambda retries the event. */
export class IngestFailedError extends TrackingSyncError {}

/** The object changed since the first invocation read it: its halves must not be mixed. */
export class ObjectReplacedError extends TrackingSyncError {}

/** Handing over to a fresh invocation failed: this invocation must be retried. */
export class ContinuationFailedError extends TrackingSyncError {}
