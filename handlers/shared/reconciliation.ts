/**
 * Whether a result file was loaded whole: the records the ingest read against the rows
 * Athena says the query returned (`GetQueryRuntimeStatistics` → `Rows.OutputRows`,
 * which the start function records in the run manifest once the query SUCCEEDED).
 * Either function may see both numbers second; that one records the verdict.
 */
export type Reconciliation =
  /** A manual drop: no run manifest, no query to compare with. */
  | { status: "not-reconciled"; reason: string }
  /** The file is read; Athena's count is not known yet (the start function records the verdict). */
  | { status: "pending"; read: number }
  | {
      status: "complete" | "incomplete";
      expected: number;
      read: number;
      recordedBy: "ingest" | "start";
    };

export function reconcile(
  expected: number,
  read: number,
  recordedBy: "ingest" | "start",
): Reconciliation {
  return { status: expected === read ? "complete" : "incomplete", expected, read, recordedBy };
}

/** The report fields a verdict decides. */
export interface ReconciledReport {
  success: boolean;
  dryRun?: boolean;
  outcome: string;
  error?: string;
  reconciliation?: Reconciliation;
}

/**
 * The report with a verdict recorded. An incomplete file is a failed run with a clear
 * reason (outcome `incomplete`); a complete one keeps what the ingest said.
 */
export function withVerdict<T extends ReconciledReport>(report: T, verdict: Reconciliation): T {
  if (verdict.status !== "incomplete") return { ...report, reconciliation: verdict };
  return {
    ...report,
    success: false,
    outcome: "incomplete",
    error: `Incomplete result: read ${verdict.read} records, Athena returned ${verdict.expected} rows`,
    reconciliation: verdict,
  };
}
