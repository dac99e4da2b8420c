/**
 * Invokes one of the real handlers in this process, the way Lambda would, against
 * whatever the environment points at (the stand-ins of `npm run local`, after
 * exporting the variables it prints). The handler's return value goes to stdout as
 * JSON; its log lines go to stderr.
 *
 *   npx tsx local/invoke.ts start '{"days":1}'        # a manual SyncEvent
 *   npx tsx local/invoke.ts schedule                  # the nightly EventBridge event
 *   npx tsx local/invoke.ts ingest reprocess/my.csv   # an S3 ObjectCreated for an existing object
 */
import { parseArgs } from "node:util";
import { HeadObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { setDefaultLogWriter } from "../handlers/shared/logger";
import {
  createLambdaContext,
  INGEST_FUNCTION_NAME,
  START_FUNCTION_NAME,
  scheduledEvent,
} from "./lambda-runtime";
import { createObjectCreatedEvent } from "./s3-events";

const USAGE = `usage: npx tsx local/invoke.ts start ['<SyncEvent JSON>'] | schedule [--id ID] | ingest <key>`;

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { id: { type: "string" }, help: { type: "boolean", short: "h" } },
  });
  const [command, argument] = positionals;
  if (values.help || !command) {
    process.stdout.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  setDefaultLogWriter((line) => process.stderr.write(`${line}\n`));

  let result: unknown;
  if (command === "start" || command === "schedule") {
    const event =
      command === "schedule"
        ? scheduledEvent(values.id ? { id: values.id } : {})
        : JSON.parse(argument ?? "{}");
    const { handler } = await import("../handlers/start-query");
    result = await handler(event, createLambdaContext({ functionName: START_FUNCTION_NAME }));
  } else if (command === "ingest") {
    if (!argument) throw new Error(`ingest needs an object key\n${USAGE}`);
    const bucket = process.env.RESULTS_BUCKET;
    if (!bucket) throw new Error("RESULTS_BUCKET is not set: export what `npm run local` prints");
    const s3 = new S3Client({ forcePathStyle: process.env.S3_FORCE_PATH_STYLE === "true" });
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: argument }));
    s3.destroy();
    const event = createObjectCreatedEvent({
      bucket,
      key: argument,
      size: head.ContentLength ?? 0,
      eTag: head.ETag ?? "",
      ...(head.VersionId ? { versionId: head.VersionId } : {}),
    });
    const { handler } = await import("../handlers/ingest-results");
    result = await handler(event, createLambdaContext({ functionName: INGEST_FUNCTION_NAME }));
  } else {
    throw new Error(`unknown command "${command}"\n${USAGE}`);
  }
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  return 0;
}

// Exit explicitly: the ingest keeps its MongoDB pool open across invocations, as on Lambda.
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
