/**
 * The results bucket layout (DESIGN.md "Results bucket layout"). Every key the
 * project reads or writes is built here, so nothing the ingest writes can land
 * under an ingest prefix by accident.
 */
export const ATHENA_RESULTS_PREFIX = "athena-results/";
export const REPROCESS_PREFIX = "reprocess/";
export const RUNS_PREFIX = "runs/";
export const REPORTS_PREFIX = "reports/";
export const REJECTS_PREFIX = "rejects/";
export const STATE_PREFIX = "state/";

export const DEFAULT_INGEST_PREFIXES = [ATHENA_RESULTS_PREFIX, REPROCESS_PREFIX] as const;

export const WATERMARK_KEY = `${STATE_PREFIX}watermark.json`;
/** The days of multi-day requests and where each stands (handlers/shared/fan-out.ts). */
export const FAN_OUT_KEY = `${STATE_PREFIX}fan-out.json`;

/** `runs/<QueryExecutionId>.json`: written by startQuery, read by the ingest. */
export function runManifestKey(queryExecutionId: string): string {
  return `${RUNS_PREFIX}${queryExecutionId}.json`;
}

/** `reports/<source key>.json`: one run report per ingested object. */
export function reportKey(sourceKey: string): string {
  return `${REPORTS_PREFIX}${sourceKey}.json`;
}

/** `rejects/<source key>`: the rows that were not synced, re-droppable into `reprocess/`. */
export function rejectsKey(sourceKey: string): string {
  return `${REJECTS_PREFIX}${sourceKey}`;
}

/** `athena-results/<QueryExecutionId>.csv`: where the workgroup's enforced output puts a result. */
export function athenaResultKey(queryExecutionId: string): string {
  return `${ATHENA_RESULTS_PREFIX}${queryExecutionId}.csv`;
}

// Athena names a result `<QueryExecutionId>.csv`; the id is a UUID.
const QUERY_RESULT_FILE =
  /(?:^|\/)([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.csv$/i;

/** The QueryExecutionId an Athena result key names, or undefined for any other key. */
export function queryExecutionIdFromKey(key: string): string | undefined {
  return QUERY_RESULT_FILE.exec(key)?.[1];
}

/** Parses `INGEST_PREFIXES` (comma-separated); each prefix ends with `/`. */
export function parseIngestPrefixes(raw: string | undefined): string[] {
  if (!raw) return [...DEFAULT_INGEST_PREFIXES];
  return raw
    .split(",")
    .map((prefix) => prefix.trim())
    .filter((prefix) => prefix.length > 0)
    .map((prefix) => (prefix.endsWith("/") ? prefix : `${prefix}/`));
}

/** `state/checkpoints/<source key>.json`: a continued file's latest hand-over, for operators. */
export function checkpointKey(sourceKey: string): string {
  return `${STATE_PREFIX}checkpoints/${sourceKey}.json`;
}

/**
 * `state/checkpoints/<source key>.dry-run-<name>`: what a dry run continued over several
 * invocations has simulated so far, as one hand-over left it (`name`: the chain, the
 * invocation and a nonce of that hand-over), until the file is done.
 */
export function dryRunMemoryKey(sourceKey: string, name: string): string {
  return `${STATE_PREFIX}checkpoints/${sourceKey}.dry-run-${name}`;
}

/**
 * `state/checkpoints/<source key>.rejects-<name>`: one invocation's rejected rows of a
 * continued file, until the file is done. `name` is `<chain>-<invocation>-<nonce>`, unique
 * per hand-over; one that is never joined (a hand-over whose invoke failed, the dropped
 * line of a twice-delivered continuation) expires with the rest of `state/checkpoints/`.
 * A part named `<chain>-<n>` is one an earlier version handed over, under
 * `rejects/<source key>.part-<chain>-<n>`.
 */
export function rejectsPartKey(sourceKey: string, name: string): string {
  return isEarlierVersionsPart(name)
    ? `${rejectsKey(sourceKey)}.part-${name}`
    : `${STATE_PREFIX}checkpoints/${sourceKey}.rejects-${name}`;
}

/** A rejects part an earlier version named `<chain>-<n>` and kept under `rejects/`. */
export function isEarlierVersionsPart(name: string): boolean {
  return /^[0-9a-f-]{36}-\d+$/.test(name);
}
