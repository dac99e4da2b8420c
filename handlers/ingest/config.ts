import { parseIngestPrefixes } from "../shared/bucket-layout";
import { integerEnv, optionalEnv, requireEnv } from "../shared/env";
import { ConfigurationError } from "../shared/errors";
import { DEFAULT_CONTINUATION_MARGIN_MS } from "./continuation";
import { parsePublicationCodeMap } from "./publications";
import {
  DEFAULT_STREAM_RESUME_ATTEMPTS,
  DEFAULT_STREAM_RESUME_BACKOFF_MS,
  type StreamResumeConfig,
} from "./resumable-source";

export const DEFAULT_METRICS_NAMESPACE = "EmpowerLocal/TrackingSync";
/** Rows per batch: each batch costs about five MongoDB commands (facts read, facts write, entries, facts read back, lookups), so 2,500 keeps a file under 20 commands per 10,000 rows. */
export const DEFAULT_BATCH_SIZE = 2500;
/** Bulk writes in flight at once per object: parse and resolve the next batch while one writes. */
export const DEFAULT_MAX_IN_FLIGHT = 2;

/** Where the MongoDB connection string comes from; never the string itself in a log. */
export type MongoUriSource = { kind: "env"; uri: string } | { kind: "secret"; secretArn: string };

export interface IngestConfig {
  mongoUri: MongoUriSource;
  dbName: string;
  /** When set, records for any other bucket are refused. */
  resultsBucket: string | undefined;
  ingestPrefixes: string[];
  metricsNamespace: string;
  /** Lower-cased publication code → publicationId, merged over the built-in map. */
  publicationCodeOverrides: Record<string, number>;
  batchSize: number;
  maxInFlight: number;
  /** A body stream that breaks mid-file is reopened where it broke (resumable-source.ts). */
  streamResume: StreamResumeConfig;
  continuation: ContinuationConfig;
}

/** Files beyond one invocation (continuation.ts). */
export interface ContinuationConfig {
  /** Time kept back when deciding to stop reading (CONTINUATION_MARGIN_MS). */
  marginMs: number;
  /** Lambda sets AWS_LAMBDA_FUNCTION_NAME; without it (local runs) files never continue. */
  functionName: string | undefined;
}

type Env = Record<string, string | undefined>;

/** Every environment variable the ingest reads, read in one place (at cold start). */
export function loadIngestConfig(env: Env = process.env): IngestConfig {
  const uri = optionalEnv("MONGODB_URI", env);
  const secretArn = optionalEnv("MONGODB_URI_SECRET_ARN", env);
  if (!uri && !secretArn) {
    throw new ConfigurationError(
      "Missing required environment variable MONGODB_URI or MONGODB_URI_SECRET_ARN",
      { name: "MONGODB_URI" },
    );
  }
  const rawMap = optionalEnv("PUBLICATION_CODE_MAP", env);
  let publicationCodeOverrides: Record<string, number> = {};
  if (rawMap) {
    try {
      publicationCodeOverrides = parsePublicationCodeMap(JSON.parse(rawMap));
    } catch (error) {
      throw new ConfigurationError(
        `Environment variable PUBLICATION_CODE_MAP is not a JSON object of code → publicationId: ${(error as Error).message}`,
        { name: "PUBLICATION_CODE_MAP" },
      );
    }
  }
  return {
    // A secret ARN wins: deployments set it, a plain URI is for local runs.
    mongoUri: secretArn ? { kind: "secret", secretArn } : { kind: "env", uri: uri as string },
    dbName: requireEnv("MONGODB_DB_NAME", env),
    resultsBucket: optionalEnv("RESULTS_BUCKET", env),
    ingestPrefixes: parseIngestPrefixes(optionalEnv("INGEST_PREFIXES", env)),
    metricsNamespace: optionalEnv("METRICS_NAMESPACE", env) ?? DEFAULT_METRICS_NAMESPACE,
    publicationCodeOverrides,
    batchSize: integerEnv("BATCH_SIZE", DEFAULT_BATCH_SIZE, env, { min: 1, max: 50_000 }),
    maxInFlight: integerEnv("MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT, env, { min: 1, max: 16 }),
    streamResume: {
      attempts: integerEnv("STREAM_RESUME_ATTEMPTS", DEFAULT_STREAM_RESUME_ATTEMPTS, env, {
        min: 0,
        max: 10,
      }),
      backoffMs: integerEnv("STREAM_RESUME_BACKOFF_MS", DEFAULT_STREAM_RESUME_BACKOFF_MS, env, {
        min: 0,
        max: 10_000,
      }),
    },
    continuation: {
      marginMs: integerEnv("CONTINUATION_MARGIN_MS", DEFAULT_CONTINUATION_MARGIN_MS, env, {
        min: 0,
        max: 900_000,
      }),
      functionName: optionalEnv("AWS_LAMBDA_FUNCTION_NAME", env),
    },
  };
}
