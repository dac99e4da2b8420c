import { CloudWatchClient } from "@aws-sdk/client-cloudwatch";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { S3Client } from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import { composeIngest, createIngestClients } from "../../../handlers/ingest/compose";
import { loadIngestConfig } from "../../../handlers/ingest/config";

const BASE_ENV = { MONGODB_URI: "mongodb://db.example:27017", MONGODB_DB_NAME: "hub" };
const region = "us-east-1";

describe("composeIngest", () => {
  it("hands files over only inside Lambda, with the configured margin", () => {
    const config = loadIngestConfig({
      ...BASE_ENV,
      AWS_LAMBDA_FUNCTION_NAME: "ingest",
      CONTINUATION_MARGIN_MS: "5000",
    });
    const clients = createIngestClients(config, {
      s3: new S3Client({ region }),
      cloudwatch: new CloudWatchClient({ region }),
    });

    const deps = composeIngest(config, clients);

    expect(clients.lambda).toBeInstanceOf(LambdaClient);
    expect(deps.handOver?.marginMs).toBe(5_000);
    expect(deps.handOver?.continueWith).toBeTypeOf("function");
  });

  it("never hands a file over outside Lambda (no function name)", () => {
    const config = loadIngestConfig(BASE_ENV);
    const clients = createIngestClients(config, {
      s3: new S3Client({ region }),
      cloudwatch: new CloudWatchClient({ region }),
    });

    const deps = composeIngest(config, clients);

    expect(clients.lambda).toBeUndefined();
    expect(clients.secrets).toBeUndefined();
    expect(deps.handOver).toBeUndefined();
  });

  it("filters records by the configured bucket and prefixes", () => {
    const config = loadIngestConfig({
      ...BASE_ENV,
      RESULTS_BUCKET: "results",
      INGEST_PREFIXES: "in/",
    });

    const deps = composeIngest(
      config,
      createIngestClients(config, { s3: new S3Client({ region }) }),
    );

    expect(deps.filter).toEqual({ ingestPrefixes: ["in/"], resultsBucket: "results" });
  });
});
