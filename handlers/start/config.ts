import { ATHENA_RESULTS_PREFIX } from "../shared/bucket-layout";
import { integerEnv, optionalEnv, requireEnv } from "../shared/env";
import { ConfigurationError } from "../shared/errors";

type Env = Record<string, string | undefined>;

/** Everything the start Lambda reads from its environment, read once at cold start. */
export interface StartConfig {
  workgroup: string;
  database: string;
  table: string;
  resultsBucket: string;
  /** `s3://<bucket>/athena-results/`: the workgroup enforces it; sent too so local stand-ins agree. */
  outputLocation: string;
  /** Unset means failed queries cannot be restarted (local runs); a FAILED event then throws. */
  retryQueueUrl: string | undefined;
  metricsNamespace: string;
  /** Largest `days` a request may ask for. */
  maxDays: number;
  /** Longest range a catch-up after missed nights may start. */
  catchUpMaxDays: number;
  /** Hours a scheduled query's result may take to be reported before it counts as missing. */
  resultDeadlineHours: number;
  /**
   * Queries of fanned-out requests active at once (Athena's active-query quota counts
   * queued ones too); further days wait in `state/fan-out.json`.
   */
  maxConcurrentQueries: number;
}

export const DEFAULT_METRICS_NAMESPACE = "EmpowerLocal/TrackingSync";
export const DEFAULT_MAX_DAYS = 90;
export const DEFAULT_CATCH_UP_MAX_DAYS = 31;
export const DEFAULT_RESULT_DEADLINE_HOURS = 3;
export const DEFAULT_MAX_CONCURRENT_QUERIES = 5;

// Database and table names are identifiers, which Athena cannot take as execution
// parameters; they come from configuration only and must be plain Glue names.
const GLUE_NAME = /^[A-Za-z0-9_]{1,255}$/;

export function loadStartConfig(env: Env = process.env): StartConfig {
  const resultsBucket = requireEnv("RESULTS_BUCKET", env);
  return {
    workgroup: requireEnv("ATHENA_WORKGROUP", env),
    database: glueName("ATHENA_DATABASE", optionalEnv("ATHENA_DATABASE", env) ?? "ad_tracking"),
    table: glueName("ATHENA_TABLE", optionalEnv("ATHENA_TABLE", env) ?? "daily_aggregates"),
    resultsBucket,
    outputLocation: `s3://${resultsBucket}/${ATHENA_RESULTS_PREFIX}`,
    retryQueueUrl: optionalEnv("RETRY_QUEUE_URL", env),
    metricsNamespace: optionalEnv("METRICS_NAMESPACE", env) ?? DEFAULT_METRICS_NAMESPACE,
    maxDays: integerEnv("MAX_DAYS", DEFAULT_MAX_DAYS, env, { min: 1, max: 3660 }),
    catchUpMaxDays: integerEnv("CATCH_UP_MAX_DAYS", DEFAULT_CATCH_UP_MAX_DAYS, env, {
      min: 1,
      max: 3660,
    }),
    resultDeadlineHours: integerEnv("RESULT_DEADLINE_HOURS", DEFAULT_RESULT_DEADLINE_HOURS, env, {
      min: 1,
      max: 48,
    }),
    maxConcurrentQueries: integerEnv(
      "MAX_CONCURRENT_QUERIES",
      DEFAULT_MAX_CONCURRENT_QUERIES,
      env,
      { min: 1, max: 100 },
    ),
  };
}

function glueName(name: string, value: string): string {
  if (!GLUE_NAME.test(value)) {
    throw new ConfigurationError(
      `Environment variable ${name} must be a Glue name (letters, digits, _), got "${value}"`,
      { name },
    );
  }
  return value;
}
