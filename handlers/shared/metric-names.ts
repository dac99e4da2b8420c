/** Metrics both functions may publish (namespace METRICS_NAMESPACE, no dimensions). */

/** A result file whose records read differ from Athena's OutputRows; an alarm watches it. */
export const INCOMPLETE_RESULTS = "IncompleteResults";
