import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { resolveMongoUri } from "../../../handlers/ingest/mongo-uri";

const secrets = mockClient(SecretsManagerClient);
const ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mongo";

describe("resolveMongoUri", () => {
  beforeEach(() => secrets.reset());

  it("uses MONGODB_URI as is", async () => {
    expect(await resolveMongoUri({ kind: "env", uri: "mongodb://a" }, undefined)).toBe(
      "mongodb://a",
    );
  });

  it.each([
    ["mongodb+srv://cluster.example/", "mongodb+srv://cluster.example/"],
    ['{"uri": "mongodb://from-json"}', "mongodb://from-json"],
  ])("reads a raw or JSON secret (%s)", async (secretString, uri) => {
    secrets.on(GetSecretValueCommand, { SecretId: ARN }).resolves({ SecretString: secretString });
    const client = new SecretsManagerClient({ region: "us-east-1" });

    expect(await resolveMongoUri({ kind: "secret", secretArn: ARN }, client)).toBe(uri);
    expect(secrets).toHaveReceivedCommandTimes(GetSecretValueCommand, 1);
  });

  it("explains a JSON secret without a uri", async () => {
    secrets.on(GetSecretValueCommand).resolves({ SecretString: '{"url": "x"}' });

    await expect(
      resolveMongoUri(
        { kind: "secret", secretArn: ARN },
        new SecretsManagerClient({ region: "us-east-1" }),
      ),
    ).rejects.toThrow('no "uri"');
  });
});
