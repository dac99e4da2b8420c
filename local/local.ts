/**
 * `npm run local`: the stand-ins of the demo, seeded and wired to the real ingest
 * handler, left running for the AWS CLI, mongosh and `local/invoke.ts`. Ctrl-C stops
 * everything and removes the temporary files.
 */
import { parseArgs } from "node:util";
import { type IngestInvocation, type LocalPipeline, startLocalPipeline } from "./pipeline";
import { decodeS3EventKey } from "./s3-events";

const USAGE = `usage: npm run local -- [options]

  --date YYYY-MM-DD   last day of sample data (default: yesterday)
  --days N            days of sample data (default 7)
  --seed N            another set of sample numbers
  --free-ports        pick free ports instead of the fixed ones below
  --quiet             hide the ingest handler's JSON log lines
  -h, --help

Fixed ports: MongoDB 27027, S3 4569, Athena 4570, CloudWatch 4571.`;

const FIXED_PORTS = { mongo: 27027, s3: 4569, athena: 4570, cloudwatch: 4571 };

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      date: { type: "string" },
      days: { type: "string" },
      seed: { type: "string" },
      "free-ports": { type: "boolean", default: false },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const pipeline = await startLocalPipeline({
    ...(values.date ? { endDate: values.date } : {}),
    ...(values.days ? { days: Number(values.days) } : {}),
    ...(values.seed ? { seed: Number(values.seed) } : {}),
    ...(values["free-ports"] ? {} : { ports: FIXED_PORTS }),
    logWriter: values.quiet ? () => undefined : (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(instructions(pipeline));
  watchIngests(pipeline);

  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  process.stdout.write("\nStopping…\n");
  await pipeline.stop();
  process.stdout.write("Stopped every stand-in; temporary files removed.\n");
  return 0;
}

function instructions(pipeline: LocalPipeline): string {
  const { env, endpoints, bucket, workGroup, dbName, sample } = pipeline;
  const s3 = `aws --endpoint-url ${endpoints.s3}`;
  const athena = `aws --endpoint-url ${endpoints.athena}`;
  const end = sample.dateRange.end;
  return `tracking-sync local pipeline: running until Ctrl-C

  MongoDB     ${endpoints.mongoUri}  database ${dbName}
  S3          ${endpoints.s3}  bucket ${bucket} (path-style)
  Athena      ${endpoints.athena}  workgroup ${workGroup} → s3://${bucket}/athena-results/
  CloudWatch  ${endpoints.cloudwatch}  (PutMetricData only)
  Data        ${sample.rows.length} rows of ad_tracking.daily_aggregates, ${sample.dateRange.start} … ${end}

S3 ObjectCreated for *.csv under athena-results/ and reprocess/ runs the ingest handler
in this process (with Lambda's two retries); its log lines appear here.

In another shell:

${Object.entries(env)
  .map(([name, value]) => `  export ${name}=${shellQuote(value)}`)
  .join("\n")}

  # run the start handler (a SyncEvent, or the nightly schedule event)
  npx tsx local/invoke.ts start '{"date":"${end}"}'
  npx tsx local/invoke.ts schedule

  # re-process a CSV, or preview it (the tag must be set at upload)
  ${s3} s3 cp corrections.csv s3://${bucket}/reprocess/corrections.csv
  ${s3} s3api put-object --bucket ${bucket} --key reprocess/preview.csv --body corrections.csv --tagging dryRun=true
  ${s3} s3 ls s3://${bucket}/reports/ --recursive

  # Athena directly
  # (any result with the ingest's columns under athena-results/ is ingested, as in AWS)
  ${athena} athena start-query-execution --work-group ${workGroup} \\
    --query-string "SELECT DATE_FORMAT(report_date, '%Y-%m-%d') AS report_date, creative_id, publication_code, channel, ad_size, impressions, clicks, viewable_impressions, unique_ips FROM ad_tracking.daily_aggregates WHERE report_date = ? AND impressions > 0" \\
    --execution-parameters "DATE '${end}'"
  ${athena} athena get-query-execution --query-execution-id <id>

  # the Hub's collections
  mongosh '${withDatabase(endpoints.mongoUri, dbName)}' --eval 'db.performance_entries.find().limit(3)'

`;
}

function watchIngests(pipeline: LocalPipeline): void {
  let seen = 0;
  const timer = setInterval(() => {
    for (const invocation of pipeline.ingestInvocations.slice(seen))
      void announce(pipeline, invocation);
    seen = pipeline.ingestInvocations.length;
  }, 200);
  timer.unref();
}

async function announce(pipeline: LocalPipeline, invocation: IngestInvocation): Promise<void> {
  await invocation.done;
  const keys = invocation.event.Records.map((record) => decodeS3EventKey(record.s3.object.key));
  const attempts = `${invocation.attempts.length} attempt${invocation.attempts.length === 1 ? "" : "s"}`;
  const result = invocation.result as
    | { success?: boolean; error?: string; stats?: Record<string, number> }
    | undefined;
  const stats = result?.stats;
  const outcome = invocation.onFailure
    ? `failed after ${attempts} → on-failure: ${invocation.onFailure.responsePayload.errorMessage}`
    : `${stats ? `${stats.rowsFromAthena} row${stats.rowsFromAthena === 1 ? "" : "s"}: ${stats.synced} synced, ${stats.skipped} skipped, ${stats.errors} errors` : "done"} (${attempts}); reports under s3://${pipeline.bucket}/reports/${result?.success === false ? ` (not ingested: ${result.error})` : ""}`;
  process.stdout.write(`ingest ${keys.join(", ")}: ${outcome}\n`);
}

function withDatabase(uri: string, database: string): string {
  const url = new URL(uri);
  url.pathname = `/${database}`;
  return url.toString();
}

function shellQuote(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    const hint = (error as { code?: string }).code === "EADDRINUSE" ? " (try --free-ports)" : "";
    process.stderr.write(`local pipeline failed: ${message}${hint}\n`);
    process.exit(1);
  },
);
