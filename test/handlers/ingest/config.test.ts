import { describe, expect, it } from "vitest";
import { loadIngestConfig } from "../../../handlers/ingest/config";
import { ConfigurationError } from "../../../handlers/shared/errors";

const BASE_ENV = { MONGODB_URI: "mongodb://db.example:27017", MONGODB_DB_NAME: "hub" };

describe("loadIngestConfig", () => {
  it("applies the documented defaults", () => {
    expect(
      loadIngestConfig({ MONGODB_URI: "mongodb://db.example:27017", MONGODB_DB_NAME: "hub" }),
    ).toEqual({
      mongoUri: { kind: "env", uri: "mongodb://db.example:27017" },
      dbName: "hub",
      resultsBucket: undefined,
      ingestPrefixes: ["athena-results/", "reprocess/"],
      metricsNamespace: "EmpowerLocal/TrackingSync",
      publicationCodeOverrides: {},
      batchSize: 2500,
      maxInFlight: 2,
      streamResume: { attempts: 3, backoffMs: 200 },
      continuation: { marginMs: 75_000, functionName: undefined },
    });
  });

  it("keeps 75 s back by default and continues only inside Lambda", () => {
    expect(loadIngestConfig(BASE_ENV).continuation).toEqual({
      marginMs: 75_000,
      functionName: undefined,
    });
    expect(
      loadIngestConfig({
        ...BASE_ENV,
        CONTINUATION_MARGIN_MS: "5000",
        AWS_LAMBDA_FUNCTION_NAME: "f",
      }).continuation,
    ).toEqual({ marginMs: 5_000, functionName: "f" });
    expect(() => loadIngestConfig({ ...BASE_ENV, CONTINUATION_MARGIN_MS: "soon" })).toThrow(
      ConfigurationError,
    );
  });

  it("prefers the secret ARN and reads every variable", () => {
    const config = loadIngestConfig({
      MONGODB_URI: "mongodb://local",
      MONGODB_URI_SECRET_ARN: "arn:aws:secretsmanager:us-east-1:123456789012:secret:mongo",
      MONGODB_DB_NAME: "hub",
      RESULTS_BUCKET: "results",
      INGEST_PREFIXES: "in/, again",
      METRICS_NAMESPACE: "Test/Ns",
      PUBLICATION_CODE_MAP: '{"NEW": 5}',
      BATCH_SIZE: "250",
      STREAM_RESUME_ATTEMPTS: "0",
      STREAM_RESUME_BACKOFF_MS: "50",
    });

    expect(config).toMatchObject({
      mongoUri: { kind: "secret" },
      resultsBucket: "results",
      ingestPrefixes: ["in/", "again/"],
      metricsNamespace: "Test/Ns",
      publicationCodeOverrides: { new: 5 },
      batchSize: 250,
      streamResume: { attempts: 0, backoffMs: 50 },
    });
  });

  it.each([
    [{ MONGODB_DB_NAME: "hub" }, "MONGODB_URI"],
    [{ MONGODB_URI: "mongodb://x" }, "MONGODB_DB_NAME"],
    [{ MONGODB_URI: "mongodb://x", MONGODB_DB_NAME: "hub", BATCH_SIZE: "0" }, "BATCH_SIZE"],
    [
      { MONGODB_URI: "mongodb://x", MONGODB_DB_NAME: "hub", STREAM_RESUME_ATTEMPTS: "-1" },
      "STREAM_RESUME_ATTEMPTS",
    ],
    [
      { MONGODB_URI: "mongodb://x", MONGODB_DB_NAME: "hub", PUBLICATION_CODE_MAP: "{" },
      "PUBLICATION_CODE_MAP",
    ],
  ])("fails fast naming the bad variable (%j)", (env, name) => {
    expect(() => loadIngestConfig(env)).toThrow(name);
  });
});
