/** Metrics both functions may publish (namespace METRICS_NAMESPACE, no dimensions). */

/** A result file whose records read differ from Athena's OutputRows; an alarm watches it. */
export const INCOMPLETE_RESULTS = "IncompleteResults";

/** Nightly results not reported within the deadline, or a night the schedule started nothing for. */
export const MISSING_RESULTS = "MissingResults";
