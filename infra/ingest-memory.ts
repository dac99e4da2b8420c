/**
 * The ingest function's memory and the V8 heap flags it runs with, in one place: the
 * stack deploys them and `npm run bench` runs its ingest worker with the same heap, so
 * the benchmark's peak RSS and CPU are the function's, not a 24 GB workstation's.
 */

/** The ingest function's memory (MB). */
export const INGEST_MEMORY_MB = 512;

/**
 * How V8 sizes its heap by itself in a container of INGEST_MEMORY_MB: measured with
 * Node 20 in a 512 MB memory cgroup, `v8.getHeapStatistics().heap_size_limit` is 259 MB,
 * exactly what these flags give. Without a limit (this machine) it is 4,144 MB, and V8
 * then lets garbage grow to over 300 MB RSS before collecting it.
 */
export const CONTAINER_HEAP_FLAGS = ["--max-old-space-size=256", "--max-semi-space-size=1"];

/**
 * Added to the function's NODE_OPTIONS. With 1 MB semi-spaces a batch's objects (alive
 * for the few hundred ms its write is in flight) are promoted and die in the old
 * generation; 8 MB semi-spaces let most die young (BENCHMARKS.md: less ingest CPU per row,
 * about 10 MB more peak RSS).
 */
export const INGEST_V8_FLAGS = ["--max-semi-space-size=8"];
