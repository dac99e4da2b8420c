/**
 * `state/watermark.json`: the last report date known to be completely synced.
 * Written by the ingest after a successful real run of an object that has a run
 * manifest; read by startQuery to catch up missed nights. Never moves backwards.
 */
export interface Watermark {
  /** `YYYY-MM-DD`: every day up to and including this one has been synced. */
  lastCompleteDate: string;
  updatedAt: string;
  /** The query whose ingest moved the watermark here. */
  queryExecutionId: string;
  sourceKey: string;
}

export function parseWatermark(value: unknown): Watermark {
  const watermark = value as Partial<Watermark> | null;
  if (typeof watermark?.lastCompleteDate !== "string") {
    throw new Error("watermark has no lastCompleteDate");
  }
  return watermark as Watermark;
}
