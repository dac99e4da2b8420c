/** The spec's SyncEvent: what a person (or the schedule, as `{}`) asks the start Lambda for. */
export interface SyncRequest {
  date?: string;
  days?: number;
  publicationCode?: string;
  dryRun?: boolean;
}

export interface DateRange {
  /** First report date, `YYYY-MM-DD`, inclusive. */
  start: string;
  /** Last report date, `YYYY-MM-DD`, inclusive. */
  end: string;
}
