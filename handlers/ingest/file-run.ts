import { randomUUID } from "node:crypto";
import type { Checkpoint } from "./batch-pipeline";
import {
  CONTINUATION_VERSION,
  type ContinuationState,
  type DryRunMemoryRef,
  type RejectsProgress,
} from "./continuation";
import { runIdOf } from "./ledger";
import { buildReport, type ObjectReport } from "./report";
import type { RunOptions } from "./run-options";
import type { S3ObjectRef } from "./s3-records";
import { Tally } from "./tally";

/** The report fields only the end of a run knows. */
export type ReportOutcome = Pick<ObjectReport, "outcome"> &
  Partial<Pick<ObjectReport, "error" | "missingColumns" | "rejects">>;

/**
 * One source file's run, across every invocation it takes: when it started, its tally,
 * the committed checkpoint, the header, the run options, the lookup and batch counters
 * and the rejects progress. A fresh run starts at the top of the file; a resumed one
 * takes all of it from the continuation state an earlier invocation handed over. It
 * produces the report and the next continuation state, so no one else needs to know
 * whether the file was resumed.
 */
export class FileRun {
  readonly startedAt: Date;
  readonly tally: Tally;
  /** The first invocation's decisions (dry run, manifest); unknown until they are read. */
  options: RunOptions | undefined;
  /** The CSV header as read from the top of the file. */
  header: readonly (string | null)[] | undefined;
  /** Everything before it is committed. */
  checkpoint: Checkpoint;
  /** The ETag and size the first invocation read. */
  source: { eTag: string; size: number } | undefined;
  private lookupQueriesNow = 0;
  private writeBatchesNow = 0;
  private handOverChain: string | undefined;

  private constructor(
    readonly object: S3ObjectRef,
    private readonly earlier: ContinuationState | undefined,
  ) {
    this.startedAt = earlier ? new Date(earlier.startedAt) : new Date();
    this.tally = earlier ? Tally.restore(earlier.tally) : new Tally();
    this.options = earlier?.run;
    this.header = earlier?.header;
    this.checkpoint = earlier?.checkpoint ?? { rows: 0, byteOffset: 0, line: 1 };
    this.source = earlier?.source;
  }

  /** A file read from its first byte. */
  static start(object: S3ObjectRef): FileRun {
    return new FileRun(object, undefined);
  }

  /** The rest of a file an earlier invocation handed over. */
  static resume(state: ContinuationState): FileRun {
    return new FileRun(state.object, state);
  }

  get resumed(): boolean {
    return this.earlier !== undefined;
  }

  /** This invocation's number in the file's chain (1 for the first). */
  get invocation(): number {
    return (this.earlier?.continuation ?? 0) + 1;
  }

  /** The chain of invocations the earlier parts of this file belong to (none when fresh). */
  get chain(): string | undefined {
    return this.earlier?.chain;
  }

  /**
   * Names the file's chain of invocations (random, from the first hand-over), so the
   * rejects parts of a duplicated delivery or of a replaced object never collide.
   */
  chainForHandOver(): string {
    this.handOverChain ??= this.earlier?.chain ?? randomUUID();
    return this.handOverChain;
  }

  /** A continued dry run: where the earlier invocation left what it simulated. */
  get earlierDryRunMemory(): DryRunMemoryRef | undefined {
    return this.earlier?.dryRunMemory;
  }

  /** The rejects the earlier invocations uploaded. */
  get earlierRejects(): RejectsProgress {
    return this.earlier?.rejects ?? { rows: 0, parts: [] };
  }

  /** Where this invocation reads the object from: the top, or the checkpoint of the same version. */
  get readFrom(): { byteOffset: number; eTag: string } | undefined {
    return this.earlier
      ? { byteOffset: this.earlier.checkpoint.byteOffset, eTag: this.earlier.source.eTag }
      : undefined;
  }

  /**
   * The run's id in `tracking_sync_runs` and in the contributions' provenance: the object
   * version read and the upload's event (known once the source is open).
   */
  get runId(): string | undefined {
    if (!this.source) return undefined;
    return runIdOf({
      bucket: this.object.bucket,
      key: this.object.key,
      versionId: this.object.versionId,
      eTag: this.source.eTag,
      sequencer: this.object.sequencer,
    });
  }

  get lookupQueries(): number {
    return (this.earlier?.lookupQueries ?? 0) + this.lookupQueriesNow;
  }

  get writeBatches(): number {
    return (this.earlier?.writeBatches ?? 0) + this.writeBatchesNow;
  }

  countLookupQueries(queries: number): void {
    this.lookupQueriesNow += queries;
  }

  countWriteBatch(): void {
    this.writeBatchesNow++;
  }

  /** Whether the committed checkpoint is short of the object's end. */
  get hasMore(): boolean {
    return this.checkpoint.byteOffset < (this.source?.size ?? Number.POSITIVE_INFINITY);
  }

  report(end: ReportOutcome): ObjectReport {
    const options = this.options;
    return buildReport({
      object: this.object,
      tally: this.tally,
      dryRun: options?.dryRun ?? false,
      dryRunSource: options?.dryRunSource,
      queryExecutionId: options?.queryExecutionId,
      run: options?.dryRun ? undefined : this.runId,
      progress: this.checkpoint,
      lookupQueries: this.lookupQueries,
      writeBatches: this.writeBatches,
      invocations: this.invocation,
      startedAt: this.startedAt,
      finishedAt: new Date(),
      ...end,
    });
  }

  /** What the next invocation continues from (the chain is named at the first hand-over). */
  continuationState(rejects: RejectsProgress, dryRunMemory?: DryRunMemoryRef): ContinuationState {
    if (!this.options || !this.header || !this.source) {
      throw new Error("a file can be handed over only once its header and options are read");
    }
    return {
      version: CONTINUATION_VERSION,
      object: this.object,
      source: this.source,
      startedAt: this.startedAt.toISOString(),
      chain: this.chainForHandOver(),
      continuation: this.invocation,
      checkpoint: this.checkpoint,
      header: [...this.header],
      run: this.options,
      tally: this.tally.snapshot(),
      rejects,
      lookupQueries: this.lookupQueries,
      writeBatches: this.writeBatches,
      ...(dryRunMemory ? { dryRunMemory } : {}),
    };
  }
}
