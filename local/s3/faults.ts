export interface CutDownloadSpec {
  /** Only GETs of this bucket; any bucket when omitted. */
  bucket?: string;
  key: string;
  /** Body bytes sent before the connection is destroyed (of the range asked for, if any). */
  afterBytes: number;
  /** How many matching GETs are cut (default 1); later ones are served whole. */
  count?: number;
  /**
   * Runs, and is awaited, after the bytes are sent and before the connection is destroyed:
   * whatever it changes (say, replacing the object) is in place before the client can
   * read again.
   */
  beforeCut?: () => Promise<void> | void;
}

/**
 * Faults the S3 stand-in injects on purpose, so a test can see what a client does when a
 * download breaks as real S3 (or the network) breaks one: headers and part of the body
 * arrive, then the socket closes short of Content-Length ("socket hang up").
 */
export interface S3Faults {
  /** The next `count` GETs of the key send `afterBytes` of the body, then the socket dies. */
  cutDownloads(spec: CutDownloadSpec): void;
  /** Drops every pending fault. */
  reset(): void;
}

type PendingCut = CutDownloadSpec & { count: number };

/** The state behind {@link S3Faults}, consulted by GetObject. */
export class FaultState implements S3Faults {
  private cuts: PendingCut[] = [];

  cutDownloads(spec: CutDownloadSpec): void {
    const count = spec.count ?? 1;
    if (!Number.isInteger(count) || count < 1) {
      throw new RangeError(`cutDownloads count must be a positive integer, got ${count}`);
    }
    if (!Number.isInteger(spec.afterBytes) || spec.afterBytes < 0) {
      throw new RangeError(`cutDownloads afterBytes must be >= 0, got ${spec.afterBytes}`);
    }
    this.cuts.push({ ...spec, count });
  }

  /** The cut that applies to this GET, if any, consuming it. */
  takeCut(bucket: string, key: string): PendingCut | undefined {
    const position = this.cuts.findIndex(
      (cut) => cut.key === key && (cut.bucket === undefined || cut.bucket === bucket),
    );
    const cut = this.cuts[position];
    if (!cut) return undefined;
    cut.count--;
    if (cut.count === 0) this.cuts.splice(position, 1);
    return cut;
  }

  reset(): void {
    this.cuts = [];
  }
}
