import { GetSecretValueCommand, type SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import type { MongoUriSource } from "./config";

/**
 * The MongoDB connection string: `MONGODB_URI` as is, or the Secrets Manager secret
 * named by `MONGODB_URI_SECRET_ARN`, holding either the raw URI or JSON `{"uri": "..."}`.
 * Called once per cold start (the connection it opens is reused).
 */
export async function resolveMongoUri(
  source: MongoUriSource,
  secrets: SecretsManagerClient | undefined,
): Promise<string> {
  if (source.kind === "env") return source.uri;
  if (!secrets) throw new Error("no Secrets Manager client for MONGODB_URI_SECRET_ARN");
  const response = await secrets.send(new GetSecretValueCommand({ SecretId: source.secretArn }));
  const secret = response.SecretString?.trim();
  if (!secret) throw new Error("the MongoDB secret has no SecretString");
  if (!secret.startsWith("{")) return secret;
  let parsed: unknown;
  try {
    parsed = JSON.parse(secret);
  } catch {
    throw new Error("the MongoDB secret is neither a connection string nor JSON");
  }
  const uri = (parsed as { uri?: unknown }).uri;
  if (typeof uri !== "string" || uri.trim() === "") {
    throw new Error('the MongoDB secret JSON has no "uri" string');
  }
  return uri.trim();
}
