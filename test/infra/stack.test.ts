import { execFileSync } from "node:child_process";
import { join } from "node:path";
import type { App } from "aws-cdk-lib";
import { Match, type Template } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_CONTINUATION_MARGIN_MS } from "../../handlers/ingest/continuation";
import { classifyStartEvent } from "../../handlers/start/sync-event";
import {
  actionsOf,
  objectSuffix,
  resourcesOf,
  roleStatements,
  type Statement,
  statementFor,
  synthesize,
} from "./stack-fixture";

const START = "empowerlocal-tracking-sync-start";
const INGEST = "empowerlocal-tracking-sync-ingest";

let template: Template;
let app: App;

beforeAll(() => {
  // Synthesized once, with real esbuild bundling of both handlers.
  ({ template, app } = synthesize({ "aws:cdk:enable-asset-metadata": true }));
}, 120_000);

/** Loads a bundled handler in a fresh Node process with `env`, calls it with `event`, prints the result. */
function runBundle(functionName: string, env: Record<string, string>, event: unknown): unknown {
  const fn = Object.values(template.findResources("AWS::Lambda::Function")).find(
    (resource) => resource.Properties.FunctionName === functionName,
  );
  const bundle = join(app.synth().directory, String(fn?.Metadata["aws:asset:path"]), "index.mjs");
  const script = `const m = await import(${JSON.stringify(bundle)});
const result = await m.handler(${JSON.stringify(event)}, { awsRequestId: "smoke", getRemainingTimeInMillis: () => 30000 });
process.stdout.write("RESULT " + JSON.stringify(result) + "\\n");`;
  const output = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
    env: { PATH: process.env.PATH ?? "", AWS_REGION: "us-east-1", LOG_LEVEL: "error", ...env },
    encoding: "utf8",
  });
  const line = output.split("\n").find((entry) => entry.startsWith("RESULT "));
  return JSON.parse(line?.slice("RESULT ".length) ?? "null");
}

describe("the results bucket", () => {
  it("is encrypted, private, versioned and TLS-only", () => {
    template.hasResourceProperties("AWS::S3::Bucket", {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          { ServerSideEncryptionByDefault: { SSEAlgorithm: "AES256" } },
        ],
      },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      VersioningConfiguration: { Status: "Enabled" },
      LoggingConfiguration: Match.objectLike({ LogFilePrefix: "results-bucket/" }),
    });
    template.hasResourceProperties("AWS::S3::BucketPolicy", {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: "Deny",
            Action: "s3:*",
            Condition: { Bool: { "aws:SecureTransport": "false" } },
          }),
        ]),
      },
    });
  });

  it("expires Athena results and continuation leftovers after 30 days, aborts stale multipart uploads, keeps reports and rejects longer", () => {
    template.hasResourceProperties("AWS::S3::Bucket", {
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({ AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 } }),
          Match.objectLike({ Prefix: "athena-results/", ExpirationInDays: 30, Status: "Enabled" }),
          Match.objectLike({ Prefix: "reports/", ExpirationInDays: 400 }),
          Match.objectLike({ Prefix: "rejects/", ExpirationInDays: 400 }),
          Match.objectLike({ Prefix: "state/checkpoints/", ExpirationInDays: 30 }),
        ]),
      },
    });
  });

  it("is kept when the stack is deleted", () => {
    template.hasResource("AWS::S3::Bucket", {
      Properties: Match.objectLike({ VersioningConfiguration: { Status: "Enabled" } }),
      DeletionPolicy: "Retain",
    });
  });
});

describe("the Athena workgroup", () => {
  it("runs engine v3 with enforced, encrypted output under athena-results/, a scan cutoff and metrics", () => {
    template.hasResourceProperties("AWS::Athena::WorkGroup", {
      Name: "empowerlocal-tracking-sync",
      State: "ENABLED",
      WorkGroupConfiguration: {
        EngineVersion: { SelectedEngineVersion: "Athena engine version 3" },
        EnforceWorkGroupConfiguration: true,
        PublishCloudWatchMetricsEnabled: true,
        BytesScannedCutoffPerQuery: 10 * 1024 ** 3,
        ResultConfiguration: {
          EncryptionConfiguration: { EncryptionOption: "SSE_S3" },
          OutputLocation: {
            "Fn::Join": ["", ["s3://", { Ref: Match.anyValue() }, "/athena-results/"]],
          },
        },
      },
    });
  });
});

describe("the functions", () => {
  it("are bundled into ES modules that load and run as Lambda would load them", () => {
    expect(
      runBundle(START, { ATHENA_WORKGROUP: "wg", RESULTS_BUCKET: "bucket" }, { days: 0 }),
    ).toMatchObject({ success: false, error: expect.stringContaining("days must be") });
    expect(
      runBundle(
        INGEST,
        { MONGODB_URI: "mongodb://127.0.0.1:9", MONGODB_DB_NAME: "smoke" },
        { Records: [] },
      ),
    ).toMatchObject({ success: true, stats: { rowsFromAthena: 0 } });
  });

  it("run Node.js 24 on arm64, bundled as one ES module", () => {
    for (const name of [START, INGEST]) {
      template.hasResourceProperties("AWS::Lambda::Function", {
        FunctionName: name,
        Runtime: "nodejs24.x",
        Architectures: ["arm64"],
        Handler: "index.handler",
        LoggingConfig: { LogGroup: { Ref: Match.anyValue() } },
      });
    }
  });

  it("log to their own groups with a retention", () => {
    for (const name of [START, INGEST]) {
      template.hasResourceProperties("AWS::Logs::LogGroup", {
        LogGroupName: `/aws/lambda/${name}`,
        RetentionInDays: 90,
      });
    }
  });

  it("give the start function what it reads", () => {
    template.hasResourceProperties("AWS::Lambda::Function", {
      FunctionName: START,
      Timeout: 30,
      Environment: {
        Variables: Match.objectLike({
          ATHENA_WORKGROUP: "empowerlocal-tracking-sync",
          ATHENA_DATABASE: "ad_tracking",
          ATHENA_TABLE: "daily_aggregates",
          RESULTS_BUCKET: { Ref: Match.anyValue() },
          RETRY_QUEUE_URL: { Ref: Match.anyValue() },
          METRICS_NAMESPACE: "EmpowerLocal/TrackingSync",
          MAX_DAYS: "90",
          CATCH_UP_MAX_DAYS: "31",
          RESULT_DEADLINE_HOURS: "3",
          MAX_CONCURRENT_QUERIES: "5",
        }),
      },
    });
  });

  it("size the ingest per the spec (512 MB, 5 min), cap its concurrency, and give it the secret's ARN, never a URI", () => {
    template.hasResourceProperties("AWS::Lambda::Function", {
      FunctionName: INGEST,
      MemorySize: 512,
      Timeout: 300,
      ReservedConcurrentExecutions: 5,
      Environment: {
        Variables: {
          // 8 MB semi-spaces instead of the 1 MB V8 picks in 512 MB (infra/ingest-memory.ts).
          NODE_OPTIONS: "--enable-source-maps --max-semi-space-size=8",
          MONGODB_URI_SECRET_ARN: { Ref: Match.anyValue() },
          MONGODB_DB_NAME: "staging-chicago-hub",
          RESULTS_BUCKET: { Ref: Match.anyValue() },
          INGEST_PREFIXES: "athena-results/,reprocess/",
          METRICS_NAMESPACE: "EmpowerLocal/TrackingSync",
          CONTINUATION_MARGIN_MS: "75000",
        },
      },
    });
    expect(JSON.stringify(template.toJSON())).not.toMatch(/mongodb(\+srv)?:\/\//);
  });

  it("give the ingest the continuation margin its handler defaults to", () => {
    const ingest = Object.values(template.findResources("AWS::Lambda::Function")).find(
      (resource) => resource.Properties.FunctionName === INGEST,
    );

    expect(ingest?.Properties.Environment.Variables.CONTINUATION_MARGIN_MS).toBe(
      String(DEFAULT_CONTINUATION_MARGIN_MS),
    );
  });

  it("retry a failed ingest twice, then send the event to an encrypted on-failure queue", () => {
    template.hasResourceProperties("AWS::Lambda::EventInvokeConfig", {
      FunctionName: { Ref: Match.stringLikeRegexp("^Ingest") },
      MaximumRetryAttempts: 2,
      DestinationConfig: {
        OnFailure: {
          Destination: { "Fn::GetAtt": [Match.stringLikeRegexp("^IngestFailureQueue"), "Arn"] },
        },
      },
    });
    template.hasResourceProperties("AWS::SQS::Queue", {
      QueueName: "empowerlocal-tracking-sync-ingest-failures",
      SqsManagedSseEnabled: true,
      MessageRetentionPeriod: 14 * 86_400,
    });
  });

  it("keep the Mongo secret when no ARN is given: one is created, retained, to be filled in", () => {
    template.hasResource("AWS::SecretsManager::Secret", {
      Properties: Match.objectLike({ Name: "empowerlocal-tracking-sync/mongodb-uri" }),
      DeletionPolicy: "Retain",
    });
  });
});

describe("the triggers", () => {
  it("start the sync every day at 06:00 UTC", () => {
    template.hasResourceProperties("AWS::Events::Rule", {
      ScheduleExpression: "cron(0 6 * * ? *)",
      State: "ENABLED",
      Targets: [
        Match.objectLike({
          Arn: { "Fn::GetAtt": [Match.stringLikeRegexp("^StartFunction"), "Arn"] },
          // The Scheduled Event itself: a constant input would hide it from the start function.
          Input: Match.absent(),
        }),
      ],
    });
  });

  it("check every hour that the nightly results were reported, with an input the start function takes for a freshness check", () => {
    template.hasResourceProperties("AWS::Events::Rule", {
      Name: "empowerlocal-tracking-sync-freshness-check",
      ScheduleExpression: "rate(1 hour)",
      State: "ENABLED",
      Targets: [
        Match.objectLike({
          Arn: { "Fn::GetAtt": [Match.stringLikeRegexp("^StartFunction"), "Arn"] },
          Input: JSON.stringify({ trackingSyncCheck: "freshness" }),
        }),
      ],
    });
    const rules = template.findResources("AWS::Events::Rule", {
      Properties: { Name: "empowerlocal-tracking-sync-freshness-check" },
    });
    const [rule] = Object.values(rules);
    const input = JSON.parse(String(rule?.Properties.Targets[0].Input));
    expect(classifyStartEvent(input)).toEqual({ kind: "freshness-check" });
    template.hasResourceProperties("AWS::Lambda::Permission", {
      Action: "lambda:InvokeFunction",
      FunctionName: { "Fn::GetAtt": [Match.stringLikeRegexp("^StartFunction"), "Arn"] },
      Principal: "events.amazonaws.com",
      SourceArn: { "Fn::GetAtt": [Object.keys(rules)[0], "Arn"] },
    });
  });

  it("send FAILED, CANCELLED and SUCCEEDED queries of our workgroup to the start function", () => {
    template.hasResourceProperties("AWS::Events::Rule", {
      EventPattern: {
        source: ["aws.athena"],
        "detail-type": ["Athena Query State Change"],
        detail: {
          currentState: ["FAILED", "CANCELLED", "SUCCEEDED"],
          workgroupName: ["empowerlocal-tracking-sync"],
        },
      },
      Targets: [
        Match.objectLike({
          Arn: { "Fn::GetAtt": [Match.stringLikeRegexp("^StartFunction"), "Arn"] },
        }),
      ],
    });
  });

  it("feed restarts from an encrypted delay queue with a dead-letter queue back to the start function", () => {
    template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
      FunctionName: { Ref: Match.stringLikeRegexp("^StartFunction") },
      EventSourceArn: { "Fn::GetAtt": [Match.stringLikeRegexp("^RetryQueue"), "Arn"] },
      FunctionResponseTypes: ["ReportBatchItemFailures"],
    });
    template.hasResourceProperties("AWS::SQS::Queue", {
      QueueName: "empowerlocal-tracking-sync-retry",
      SqsManagedSseEnabled: true,
      VisibilityTimeout: 180,
      RedrivePolicy: { deadLetterTargetArn: Match.anyValue(), maxReceiveCount: 5 },
    });
    template.hasResourceProperties("AWS::SQS::QueuePolicy", {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: "Deny",
            Condition: { Bool: { "aws:SecureTransport": "false" } },
          }),
        ]),
      },
    });
  });

  it("notify the ingest of every kind of ObjectCreated for *.csv under athena-results/ and reprocess/, never *.csv.metadata", () => {
    const notifications = template.findResources("Custom::S3BucketNotifications");
    const configs = Object.values(notifications).flatMap(
      (resource) =>
        (
          resource.Properties.NotificationConfiguration as {
            LambdaFunctionConfigurations: Array<{
              Events: string[];
              Filter: { Key: { FilterRules: Array<{ Name: string; Value: string }> } };
              LambdaFunctionArn: { "Fn::GetAtt": string[] };
            }>;
          }
        ).LambdaFunctionConfigurations,
    );
    const rules = configs.map((config) => {
      const filter = Object.fromEntries(
        config.Filter.Key.FilterRules.map((rule) => [rule.Name, rule.Value]),
      );
      expect(config.Events).toEqual(["s3:ObjectCreated:*"]);
      expect(config.LambdaFunctionArn["Fn::GetAtt"][0]).toMatch(/^IngestFunction/);
      return filter as { prefix: string; suffix: string };
    });
    expect(rules).toEqual([
      { prefix: "athena-results/", suffix: ".csv" },
      { prefix: "reprocess/", suffix: ".csv" },
    ]);
    // S3 matches the key's literal start and end: what would trigger an ingest?
    const triggers = (key: string) =>
      rules.some((rule) => key.startsWith(rule.prefix) && key.endsWith(rule.suffix));
    expect(triggers("athena-results/5f1a6c7e-0000-4000-8000-000000000001.csv")).toBe(true);
    expect(triggers("athena-results/5f1a6c7e-0000-4000-8000-000000000001.csv.metadata")).toBe(
      false,
    );
    expect(triggers("reprocess/december fix.csv")).toBe(true);
    expect(triggers("reports/athena-results/x.csv.json")).toBe(false);
    expect(triggers("rejects/reprocess/x.csv")).toBe(false);
  });
});

describe("least privilege", () => {
  const allStatements = () =>
    Object.values(template.findResources("AWS::IAM::Policy")).flatMap(
      (policy) => (policy.Properties.PolicyDocument as { Statement: Statement[] }).Statement,
    );

  it("grants no wildcard action anywhere", () => {
    for (const statement of allStatements()) {
      for (const action of actionsOf(statement)) expect(action).not.toContain("*");
    }
  });

  it("gives no managed policy to either function's role (no AWSLambdaBasicExecutionRole)", () => {
    const roles = template.findResources("AWS::IAM::Role", {
      Properties: { Description: Match.stringLikeRegexp("^Execution role of") },
    });
    expect(Object.keys(roles)).toHaveLength(2);
    for (const role of Object.values(roles))
      expect(role.Properties.ManagedPolicyArns).toBeUndefined();
  });

  it("lets the start function start, inspect, count and stop queries in its workgroup only", () => {
    const statement = statementFor(roleStatements(template, START), "athena:StartQueryExecution");
    expect(actionsOf(statement).sort()).toEqual([
      "athena:GetQueryExecution",
      "athena:GetQueryRuntimeStatistics",
      "athena:StartQueryExecution",
      "athena:StopQueryExecution",
    ]);
    expect(objectSuffix(statement.Resource)).toMatch(/:workgroup\/empowerlocal-tracking-sync$/);
  });

  it("reads a succeeded query's runtime statistics from the start role only, never the ingest's", () => {
    template.hasResourceProperties("AWS::IAM::Policy", {
      Roles: [{ Ref: Match.stringLikeRegexp("^StartRole") }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: "Allow",
            Action: Match.arrayWith(["athena:GetQueryRuntimeStatistics"]),
          }),
        ]),
      },
    });
    expect(roleStatements(template, INGEST).flatMap(actionsOf)).not.toContain(
      "athena:GetQueryRuntimeStatistics",
    );
    expect(
      roleStatements(template, INGEST)
        .flatMap(actionsOf)
        .filter((action) => action.startsWith("athena:")),
    ).toEqual([]);
  });

  it("lets the start function read and rewrite Athena results' reports and write the watermark key only", () => {
    const statements = roleStatements(template, START);
    const reports = statements.filter((statement) =>
      resourcesOf(statement).map(objectSuffix).includes("/reports/athena-results/*"),
    );
    expect(reports).toHaveLength(1);
    expect(actionsOf(reports[0] as Statement).sort()).toEqual(["s3:GetObject", "s3:PutObject"]);
    template.hasResourceProperties("AWS::IAM::Policy", {
      Roles: [{ Ref: Match.stringLikeRegexp("^StartRole") }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: "s3:PutObject",
            Resource: [
              {
                "Fn::Join": [
                  "",
                  [
                    { "Fn::GetAtt": [Match.stringLikeRegexp("^ResultsBucket"), "Arn"] },
                    "/state/watermark.json",
                  ],
                ],
              },
              {
                "Fn::Join": [
                  "",
                  [
                    { "Fn::GetAtt": [Match.stringLikeRegexp("^ResultsBucket"), "Arn"] },
                    "/state/fan-out.json",
                  ],
                ],
              },
            ],
          }),
        ]),
      },
    });
  });

  it("lets the start function list the whole results bucket (runs/ for the freshness check, 404 for a missing key)", () => {
    const statement = statementFor(roleStatements(template, START), "s3:ListBucket");
    expect(statement.Resource).toEqual({
      "Fn::GetAtt": [expect.stringMatching(/^ResultsBucket/), "Arn"],
    });
    // An s3:prefix condition would turn the 404 of a missing manifest, watermark or report into 403.
    expect(statement.Condition).toBeUndefined();
  });

  it("lets the start function read the run manifests and Athena results' reports the freshness check looks at", () => {
    const reads = roleStatements(template, START)
      .filter((statement) => actionsOf(statement).includes("s3:GetObject"))
      .flatMap((statement) => resourcesOf(statement).map(objectSuffix));
    expect(reads).toEqual(expect.arrayContaining(["/runs/*", "/reports/athena-results/*"]));
  });

  it("lets the start function read the Glue catalog, database and table, nothing else", () => {
    const statement = statementFor(roleStatements(template, START), "glue:GetTable");
    expect(resourcesOf(statement).map(objectSuffix)).toEqual([
      expect.stringMatching(/:catalog$/),
      expect.stringMatching(/:database\/ad_tracking$/),
      expect.stringMatching(/:table\/ad_tracking\/daily_aggregates$/),
    ]);
    expect(actionsOf(statement).every((action) => /^glue:(Get|BatchGet)/.test(action))).toBe(true);
  });

  it("limits the start function's object access to athena-results/, runs/, reports/athena-results/ and state/ (writes: the watermark and the fan-out state)", () => {
    const statements = roleStatements(template, START);
    const objectStatements = statements.filter((statement) =>
      actionsOf(statement).some(
        (a) => /Object|Multipart/.test(a) && a !== "s3:ListBucketMultipartUploads",
      ),
    );
    const prefixes = objectStatements.flatMap((statement) =>
      resourcesOf(statement).map(objectSuffix),
    );
    expect(new Set(prefixes)).toEqual(
      new Set([
        "/athena-results/*",
        "/runs/*",
        "/reports/athena-results/*",
        "/state/*",
        "/state/watermark.json",
        "/state/fan-out.json",
      ]),
    );
    const writes = objectStatements.filter((statement) =>
      actionsOf(statement).includes("s3:PutObject"),
    );
    expect(writes.flatMap((statement) => resourcesOf(statement).map(objectSuffix)).sort()).toEqual([
      "/athena-results/*",
      "/reports/athena-results/*",
      "/runs/*",
      "/state/fan-out.json",
      "/state/watermark.json",
    ]);
  });

  it("lets the start function send to the retry queue", () => {
    const statement = statementFor(roleStatements(template, START), "sqs:SendMessage");
    expect(statement.Resource).toEqual({
      "Fn::GetAtt": [expect.stringMatching(/^RetryQueue/), "Arn"],
    });
  });

  it("limits the ingest's reads, tag reads and writes to their prefixes", () => {
    const statements = roleStatements(template, INGEST);
    const prefixes = (action: string) =>
      resourcesOf(statementFor(statements, action)).map(objectSuffix).sort();
    expect(prefixes("s3:GetObject")).toEqual([
      "/athena-results/*",
      "/rejects/*",
      "/reprocess/*",
      "/runs/*",
      "/state/*",
    ]);
    expect(prefixes("s3:GetObjectTagging")).toEqual(["/athena-results/*", "/reprocess/*"]);
    expect(prefixes("s3:PutObject")).toEqual(["/rejects/*", "/reports/*", "/state/*"]);
    // Stale rejects of a clean re-run; a continued file's checkpoint, dry-run memories and an
    // earlier version's rejects parts.
    expect(prefixes("s3:DeleteObject")).toEqual(["/rejects/*", "/state/checkpoints/*"]);
  });

  it("lets the ingest read the Mongo secret and nothing else in Secrets Manager", () => {
    const statement = statementFor(
      roleStatements(template, INGEST),
      "secretsmanager:GetSecretValue",
    );
    expect(statement.Resource).toEqual({ Ref: expect.stringMatching(/^MongoSecret/) });
    const secretActions = roleStatements(template, INGEST)
      .flatMap(actionsOf)
      .filter((action) => action.startsWith("secretsmanager:"));
    expect(secretActions.sort()).toEqual([
      "secretsmanager:DescribeSecret",
      "secretsmanager:GetSecretValue",
    ]);
  });

  it("lets the ingest invoke exactly itself (to continue big files), nothing else", () => {
    const statement = statementFor(roleStatements(template, INGEST), "lambda:InvokeFunction");
    expect(actionsOf(statement)).toEqual(["lambda:InvokeFunction"]);
    expect(objectSuffix(statement.Resource)).toBe(`arn::lambda:::function:${INGEST}`);
    expect(roleStatements(template, START).flatMap(actionsOf)).not.toContain(
      "lambda:InvokeFunction",
    );
  });

  it("lets both functions publish metrics only to the EmpowerLocal/TrackingSync namespace", () => {
    for (const name of [START, INGEST]) {
      const statement = statementFor(roleStatements(template, name), "cloudwatch:PutMetricData");
      expect(statement.Condition).toEqual({
        StringEquals: { "cloudwatch:namespace": "EmpowerLocal/TrackingSync" },
      });
    }
  });

  it("builds every ARN from the stack's partition, region and account (no hard-coded region)", () => {
    const text = JSON.stringify(template.toJSON());
    expect(text).not.toMatch(/arn:aws:|us-east-1|us-west-2|eu-west-1/);
  });
});

describe("monitoring", () => {
  const alarm = (name: string) =>
    template.hasResourceProperties(
      "AWS::CloudWatch::Alarm",
      Match.objectLike({
        AlarmName: name,
        AlarmActions: [{ Ref: Match.stringLikeRegexp("AlarmTopic") }],
      }),
    );

  it("sends every alarm to one TLS-only SNS topic", () => {
    template.hasResourceProperties("AWS::SNS::Topic", {
      TopicName: "empowerlocal-tracking-sync-alarms",
    });
    template.hasResourceProperties("AWS::SNS::TopicPolicy", {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: "Deny",
            Condition: { Bool: { "aws:SecureTransport": "false" } },
          }),
        ]),
      },
    });
    template.resourceCountIs("AWS::SNS::Subscription", 0);
    const alarms = Object.values(template.findResources("AWS::CloudWatch::Alarm"));
    expect(alarms).toHaveLength(10);
    for (const resource of alarms) expect(resource.Properties.AlarmActions).toHaveLength(1);
  });

  it("alarms on the spec's three: Errors > 100 in a run, no rows synced for 2 days (missing = breaching), Duration > 240000", () => {
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      Namespace: "EmpowerLocal/TrackingSync",
      MetricName: "Errors",
      Statistic: "Maximum",
      Threshold: 100,
      ComparisonOperator: "GreaterThanThreshold",
      EvaluationPeriods: 1,
    });
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      Namespace: "EmpowerLocal/TrackingSync",
      MetricName: "RowsSynced",
      Statistic: "Sum",
      Period: 86_400,
      EvaluationPeriods: 2,
      Threshold: 0,
      ComparisonOperator: "LessThanOrEqualToThreshold",
      TreatMissingData: "breaching",
    });
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      Namespace: "EmpowerLocal/TrackingSync",
      MetricName: "Duration",
      Statistic: "Maximum",
      Threshold: 240_000,
      ComparisonOperator: "GreaterThanThreshold",
      EvaluationPeriods: 1,
      TreatMissingData: "notBreaching",
    });
    alarm("empowerlocal-tracking-sync-errors-per-run");
    alarm("empowerlocal-tracking-sync-no-rows-synced");
    alarm("empowerlocal-tracking-sync-duration");
  });

  it("alarms on Duration only when an invocation runs past the point where a continued one has stopped", () => {
    // What is synthesized, not the constants: the ingest's timeout and margin, the alarm's threshold.
    const ingest = Object.values(template.findResources("AWS::Lambda::Function")).find(
      (resource) => resource.Properties.FunctionName === INGEST,
    );
    const timeoutMs = Number(ingest?.Properties.Timeout) * 1000;
    const marginMs = Number(ingest?.Properties.Environment.Variables.CONTINUATION_MARGIN_MS);
    const durationAlarm = Object.values(template.findResources("AWS::CloudWatch::Alarm")).find(
      (resource) =>
        resource.Properties.Namespace === "EmpowerLocal/TrackingSync" &&
        resource.Properties.MetricName === "Duration",
    );
    const thresholdMs = Number(durationAlarm?.Properties.Threshold);

    // The alarm fires within 60 s of the timeout...
    expect(timeoutMs - thresholdMs).toBe(60_000);
    // ...while a continued invocation stops reading 15 s before it, for its hand-over.
    expect(thresholdMs - (timeoutMs - marginMs)).toBe(15_000);
    expect(durationAlarm?.Properties.AlarmDescription).toMatch(
      /ingest invocation ran over 240 s of its 300 s timeout/,
    );
  });

  it("alarms on ingest and start errors, a non-empty on-failure queue and retry DLQ, and exhausted query retries", () => {
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      AlarmName: "empowerlocal-tracking-sync-ingest-errors",
      Namespace: "AWS/Lambda",
      MetricName: "Errors",
      Dimensions: [
        { Name: "FunctionName", Value: { Ref: Match.stringLikeRegexp("^IngestFunction") } },
      ],
      Threshold: 1,
      ComparisonOperator: "GreaterThanOrEqualToThreshold",
    });
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      AlarmName: "empowerlocal-tracking-sync-start-errors",
      MetricName: "Errors",
      Dimensions: [
        { Name: "FunctionName", Value: { Ref: Match.stringLikeRegexp("^StartFunction") } },
      ],
    });
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      AlarmName: "empowerlocal-tracking-sync-ingest-failed-events",
      Namespace: "AWS/SQS",
      MetricName: "ApproximateNumberOfMessagesVisible",
      Dimensions: [
        {
          Name: "QueueName",
          Value: { "Fn::GetAtt": [Match.stringLikeRegexp("^IngestFailureQueue"), "QueueName"] },
        },
      ],
      Threshold: 1,
    });
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      AlarmName: "empowerlocal-tracking-sync-retry-dead-letters",
      MetricName: "ApproximateNumberOfMessagesVisible",
      Dimensions: [
        {
          Name: "QueueName",
          Value: { "Fn::GetAtt": [Match.stringLikeRegexp("^RetryDeadLetterQueue"), "QueueName"] },
        },
      ],
    });
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      AlarmName: "empowerlocal-tracking-sync-query-failed",
      Namespace: "EmpowerLocal/TrackingSync",
      MetricName: "QueryRetriesExhausted",
      Threshold: 1,
      ComparisonOperator: "GreaterThanOrEqualToThreshold",
      TreatMissingData: "notBreaching",
    });
  });

  it("alarms on any incomplete result (Sum over 5 minutes > 0, missing data not breaching) to the alarm topic", () => {
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      AlarmName: "empowerlocal-tracking-sync-incomplete-results",
      Namespace: "EmpowerLocal/TrackingSync",
      MetricName: "IncompleteResults",
      Statistic: "Sum",
      Period: 300,
      Threshold: 0,
      ComparisonOperator: "GreaterThanThreshold",
      EvaluationPeriods: 1,
      TreatMissingData: "notBreaching",
      AlarmActions: [{ Ref: Match.stringLikeRegexp("^MonitoringAlarmTopic") }],
    });
    const alarms = template.findResources("AWS::CloudWatch::Alarm", {
      Properties: { MetricName: "IncompleteResults" },
    });
    expect(Object.values(alarms)[0]?.Properties.Dimensions).toBeUndefined();
  });

  it("alarms on any missing result (Sum over 1 hour > 0, missing data not breaching) and names the log line with the query ids", () => {
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      AlarmName: "empowerlocal-tracking-sync-missing-results",
      Namespace: "EmpowerLocal/TrackingSync",
      MetricName: "MissingResults",
      Statistic: "Sum",
      Period: 3600,
      Threshold: 0,
      ComparisonOperator: "GreaterThanThreshold",
      EvaluationPeriods: 1,
      TreatMissingData: "notBreaching",
      AlarmActions: [{ Ref: Match.stringLikeRegexp("^MonitoringAlarmTopic") }],
      AlarmDescription: Match.stringLikeRegexp(`start function's log for "Missing result"`),
    });
    const alarms = template.findResources("AWS::CloudWatch::Alarm", {
      Properties: { MetricName: "MissingResults" },
    });
    expect(Object.values(alarms)).toHaveLength(1);
    expect(Object.values(alarms)[0]?.Properties.Dimensions).toBeUndefined();
  });

  it("has a dashboard with the sync metrics and both functions' health", () => {
    const dashboards = Object.values(template.findResources("AWS::CloudWatch::Dashboard"));
    expect(dashboards).toHaveLength(1);
    const body = JSON.stringify(dashboards[0]?.Properties.DashboardBody);
    for (const metric of [
      "RowsSynced",
      "RowsSkipped",
      "Errors",
      "Duration",
      "RowsInserted",
      "RowsUpdated",
      "RowsUnchanged",
      "FileDuration",
      "FileInvocations",
      "QueryRetriesExhausted",
      "IncompleteResults",
      "MissingResults",
    ]) {
      expect(body).toContain(`\\"EmpowerLocal/TrackingSync\\",\\"${metric}\\"`);
    }
    for (const metric of ["Invocations", "Errors", "Throttles", "Duration"]) {
      expect(body).toContain(`\\"AWS/Lambda\\",\\"${metric}\\",\\"FunctionName\\"`);
    }
    expect(body).toMatch(/StartFunction/);
    expect(body).toMatch(/IngestFunction/);
  });
});

describe("outputs", () => {
  it("name the bucket, workgroup, functions, secret and alarm topic for the README's commands", () => {
    for (const output of [
      "ResultsBucketName",
      "AthenaWorkgroupName",
      "StartFunctionName",
      "IngestFunctionName",
      "MongoSecretArn",
      "AlarmTopicArn",
    ]) {
      template.hasOutput(output, {});
    }
  });
});
