import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { type NotificationRule, type S3Server, startS3Server } from "../../local/s3-server";

export interface TestS3 {
  endpoint: string;
  /** Configured like a handler's client under `env`: path-style, dummy credentials. */
  client: S3Client;
  server: S3Server;
  /** What a handler needs in `process.env` to reach this server (dummy credentials). */
  env: Record<string, string>;
  stop(): Promise<void>;
}

/**
 * Starts the S3 stand-in on a free port with the given buckets created (through the S3
 * API) and notification rules wired. Call `stop()` in `afterEach`/`afterAll`.
 */
export async function startTestS3(
  options: { notifications?: NotificationRule[]; buckets?: string[] } = {},
): Promise<TestS3> {
  const server = await startS3Server({ notifications: options.notifications });
  const env = {
    AWS_ENDPOINT_URL_S3: server.endpoint,
    S3_FORCE_PATH_STYLE: "true",
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
  };
  const client = new S3Client({
    endpoint: server.endpoint,
    forcePathStyle: true,
    region: env.AWS_REGION,
    credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
  });
  try {
    for (const bucket of options.buckets ?? []) {
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
    }
  } catch (error) {
    client.destroy();
    await server.stop();
    throw error;
  }
  return {
    endpoint: server.endpoint,
    client,
    server,
    env,
    async stop() {
      client.destroy();
      await server.stop();
    },
  };
}
