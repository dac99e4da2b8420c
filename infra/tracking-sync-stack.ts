import { fileURLToPath } from "node:url";
import {
  Annotations,
  ArnFormat,
  CfnOutput,
  Duration,
  RemovalPolicy,
  Stack,
  type StackProps,
} from "aws-cdk-lib";
import { CfnWorkGroup } from "aws-cdk-lib/aws-athena";
import { Rule, RuleTargetInput, Schedule } from "aws-cdk-lib/aws-events";
import { LambdaFunction } from "aws-cdk-lib/aws-events-targets";
import { Effect, ManagedPolicy, PolicyStatement, type Role } from "aws-cdk-lib/aws-iam";
import type { CfnFunction } from "aws-cdk-lib/aws-lambda";
import { SqsDestination } from "aws-cdk-lib/aws-lambda-destinations";
import { SqsEventSource } from "aws-cdk-lib/aws-lambda-event-sources";
import {
  BlockPublicAccess,
  Bucket,
  BucketEncryption,
  EventType,
  type IBucket,
} from "aws-cdk-lib/aws-s3";
import { LambdaDestination } from "aws-cdk-lib/aws-s3-notifications";
import { type ISecret, Secret } from "aws-cdk-lib/aws-secretsmanager";
import type { Construct } from "constructs";
import {
  ATHENA_RESULTS_PREFIX,
  FAN_OUT_KEY,
  REJECTS_PREFIX,
  REPORTS_PREFIX,
  REPROCESS_PREFIX,
  RUNS_PREFIX,
  STATE_PREFIX,
  WATERMARK_KEY,
} from "../handlers/shared/bucket-layout";
import { EncryptedQueue } from "./constructs/encrypted-queue";
import { Monitoring } from "./constructs/monitoring";
import { TrackingFunction } from "./constructs/tracking-function";
import {
  CONTINUATION_MARGIN_MS,
  DURATION_ALARM_THRESHOLD_MS,
  INGEST_TIMEOUT_MS,
} from "./ingest-budget";
import { INGEST_MEMORY_MB, INGEST_V8_FLAGS } from "./ingest-memory";
import { acknowledge, acknowledgeWildcardResources } from "./nag";
import { readSettings, type TrackingSyncSettings } from "./settings";

export const METRICS_NAMESPACE = "EmpowerLocal/TrackingSync";
const INGEST_PREFIXES = [ATHENA_RESULTS_PREFIX, REPROCESS_PREFIX];

const handlerPath = (file: string) =>
  fileURLToPath(new URL(`../handlers/${file}`, import.meta.url));

/**
 * The whole pipeline: results bucket, Athena workgroup, the start and ingest
 * Lambdas, the schedule, S3 notifications, the failed-query retry path, the
 * reconciliation of succeeded queries, the hourly freshness check of nightly
 * results, least-privilege roles, alarms and a dashboard. Region- and
 * account-agnostic: every ARN is built from the stack's own region, account and
 * partition.
 */
export class TrackingSyncStack extends Stack {
  readonly settings: TrackingSyncSettings;

  constructor(scope: Construct, id: string, props: StackProps = {}) {
    super(scope, id, props);
    const settings = readSettings(this.node);
    this.settings = settings;
    const prefix = settings.functionNamePrefix;
    const startFunctionName = `${prefix}-start`;
    const ingestFunctionName = `${prefix}-ingest`;

    // ── Results bucket ──────────────────────────────────────────────────────
    const bucket = this.resultsBucket(settings);

    // ── Athena workgroup ────────────────────────────────────────────────────
    const workgroup = new CfnWorkGroup(this, "Workgroup", {
      name: settings.athenaWorkgroupName,
      description: "tracking-sync: nightly export of daily ad-tracking aggregates",
      state: "ENABLED",
      recursiveDeleteOption: true,
      workGroupConfiguration: {
        enforceWorkGroupConfiguration: true,
        publishCloudWatchMetricsEnabled: true,
        bytesScannedCutoffPerQuery: settings.bytesScannedCutoff,
        engineVersion: { selectedEngineVersion: "Athena engine version 3" },
        resultConfiguration: {
          outputLocation: `s3://${bucket.bucketName}/${ATHENA_RESULTS_PREFIX}`,
          encryptionConfiguration: { encryptionOption: "SSE_S3" },
        },
      },
    });

    // ── Mongo secret ────────────────────────────────────────────────────────
    const mongoSecret = this.mongoSecret(settings, prefix);

    // ── Queues ──────────────────────────────────────────────────────────────
    const ingestFailures = new EncryptedQueue(this, "IngestFailureQueue", {
      queueName: `${prefix}-ingest-failures`,
    }).queue;
    const retryDeadLetters = new EncryptedQueue(this, "RetryDeadLetterQueue", {
      queueName: `${prefix}-retry-dlq`,
    }).queue;
    const startTimeout = Duration.seconds(30);
    const retryQueue = new EncryptedQueue(this, "RetryQueue", {
      queueName: `${prefix}-retry`,
      // Lambda's guidance for SQS sources: at least 6 × the function timeout.
      visibilityTimeout: Duration.seconds(startTimeout.toSeconds() * 6),
      deadLetterQueue: { queue: retryDeadLetters, maxReceiveCount: 5 },
    }).queue;

    // ── Start function ──────────────────────────────────────────────────────
    const start = new TrackingFunction(this, "Start", {
      functionName: startFunctionName,
      description: "Starts the nightly (or a requested) Athena query and restarts failed ones",
      entry: handlerPath("start-query.ts"),
      memorySize: 256,
      timeout: startTimeout,
      logRetention: settings.logRetentionDays,
      environment: {
        ATHENA_WORKGROUP: settings.athenaWorkgroupName,
        ATHENA_DATABASE: settings.athenaDatabase,
        ATHENA_TABLE: settings.athenaTable,
        RESULTS_BUCKET: bucket.bucketName,
        RETRY_QUEUE_URL: retryQueue.queueUrl,
        METRICS_NAMESPACE,
        MAX_DAYS: String(settings.maxDays),
        CATCH_UP_MAX_DAYS: String(settings.catchUpMaxDays),
        RESULT_DEADLINE_HOURS: String(settings.resultDeadlineHours),
        MAX_CONCURRENT_QUERIES: String(settings.maxConcurrentQueries),
      },
    });
    start.function.node.addDependency(workgroup);
    start.function.configureAsyncInvoke({ retryAttempts: 2 });
    start.function.addEventSource(
      new SqsEventSource(retryQueue, { batchSize: 5, reportBatchItemFailures: true }),
    );
    this.grantStart(start.role, bucket, settings);
    retryQueue.grantSendMessages(start.role);

    // ── Ingest function ─────────────────────────────────────────────────────
    const ingestEnvironment: Record<string, string> = {
      MONGODB_URI_SECRET_ARN: mongoSecret.secretArn,
      MONGODB_DB_NAME: settings.mongoDbName,
      RESULTS_BUCKET: bucket.bucketName,
      INGEST_PREFIXES: INGEST_PREFIXES.join(","),
      METRICS_NAMESPACE,
      // Derived with the timeout and the Duration alarm (ingest-budget.ts): a continued
      // invocation ends before the alarm's threshold.
      CONTINUATION_MARGIN_MS: String(CONTINUATION_MARGIN_MS),
    };
    if (settings.publicationCodeMap)
      ingestEnvironment.PUBLICATION_CODE_MAP = settings.publicationCodeMap;
    if (settings.ingestBatchSize) ingestEnvironment.BATCH_SIZE = String(settings.ingestBatchSize);
    const ingest = new TrackingFunction(this, "Ingest", {
      functionName: ingestFunctionName,
      description: "Ingests an Athena result (or a dropped) CSV into MongoDB performance_entries",
      entry: handlerPath("ingest-results.ts"),
      memorySize: INGEST_MEMORY_MB,
      nodeOptions: INGEST_V8_FLAGS,
      timeout: Duration.millis(INGEST_TIMEOUT_MS),
      reservedConcurrentExecutions: settings.ingestReservedConcurrency,
      logRetention: settings.logRetentionDays,
      environment: ingestEnvironment,
    });
    ingest.function.configureAsyncInvoke({
      retryAttempts: 2,
      onFailure: new SqsDestination(ingestFailures),
    });
    this.grantIngest(ingest.role, bucket, ingestFunctionName);
    mongoSecret.grantRead(ingest.role);
    if (settings.vpcSubnetIds.length > 0 && settings.securityGroupId) {
      // Only the ingest talks to MongoDB; the start function stays out of the VPC.
      const cfn = ingest.function.node.defaultChild as CfnFunction;
      cfn.vpcConfig = {
        subnetIds: settings.vpcSubnetIds,
        securityGroupIds: [settings.securityGroupId],
      };
      ingest.role.addManagedPolicy(
        ManagedPolicy.fromAwsManagedPolicyName("service-role/AWSLambdaVPCAccessExecutionRole"),
      );
      acknowledge(
        ingest.role,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]",
        "AWSLambdaVPCAccessExecutionRole is what Lambda needs to manage the ENIs of a function in the configured subnets; its EC2 network-interface actions cannot be scoped to resources.",
      );
    }

    // ── Triggers ────────────────────────────────────────────────────────────
    new Rule(this, "ScheduleRule", {
      ruleName: `${prefix}-schedule`,
      description: "Nightly start of the tracking sync",
      schedule: Schedule.expression(settings.scheduleExpression),
      targets: [new LambdaFunction(start.function)],
    });
    // One rule for every final state the start function acts on: it dispatches on
    // currentState (FAILED/CANCELLED → retry path, SUCCEEDED → reconciliation).
    new Rule(this, "QueryFinishedRule", {
      ruleName: `${prefix}-query-finished`,
      description:
        "Finished queries of the tracking-sync workgroup: FAILED or CANCELLED go to the retry path, SUCCEEDED to reconciliation",
      eventPattern: {
        source: ["aws.athena"],
        detailType: ["Athena Query State Change"],
        detail: {
          currentState: ["FAILED", "CANCELLED", "SUCCEEDED"],
          workgroupName: [settings.athenaWorkgroupName],
        },
      },
      targets: [new LambdaFunction(start.function)],
    });
    // Its own rule and a constant input, so the start function tells a freshness check
    // from the nightly Scheduled Event, which starts a query.
    new Rule(this, "FreshnessCheckRule", {
      ruleName: `${prefix}-freshness-check`,
      description: `Hourly: the start function checks that each nightly query's result was reported within ${settings.resultDeadlineHours} h`,
      schedule: Schedule.rate(Duration.hours(1)),
      targets: [
        new LambdaFunction(start.function, {
          event: RuleTargetInput.fromObject({ trackingSyncCheck: "freshness" }),
        }),
      ],
    });
    for (const ingestPrefix of INGEST_PREFIXES) {
      // Suffix `.csv` also keeps Athena's `<id>.csv.metadata` out; all ObjectCreated
      // kinds, because Athena writes results by multipart upload.
      bucket.addEventNotification(
        EventType.OBJECT_CREATED,
        new LambdaDestination(ingest.function),
        {
          prefix: ingestPrefix,
          suffix: ".csv",
        },
      );
    }

    // ── Monitoring ──────────────────────────────────────────────────────────
    const monitoring = new Monitoring(this, "Monitoring", {
      prefix,
      namespace: METRICS_NAMESPACE,
      alarmEmail: settings.alarmEmail,
      startFunction: start.function,
      ingestFunction: ingest.function,
      ingestTimeoutMs: INGEST_TIMEOUT_MS,
      durationAlarmThresholdMs: DURATION_ALARM_THRESHOLD_MS,
      ingestFailureQueue: ingestFailures,
      retryDeadLetterQueue: retryDeadLetters,
    });

    this.acknowledgeFrameworkFindings(ingestFailures);
    if (!settings.athenaDataLocation) {
      Annotations.of(this).addInfo(
        "athenaDataLocation is not set: the start role gets no read access to the table's data. Set -c athenaDataLocation=s3://<bucket>/<prefix>/ unless Lake Formation grants it.",
      );
    }

    new CfnOutput(this, "ResultsBucketName", { value: bucket.bucketName });
    new CfnOutput(this, "AthenaWorkgroupName", { value: settings.athenaWorkgroupName });
    new CfnOutput(this, "StartFunctionName", { value: start.function.functionName });
    new CfnOutput(this, "IngestFunctionName", { value: ingest.function.functionName });
    new CfnOutput(this, "MongoSecretArn", { value: mongoSecret.secretArn });
    new CfnOutput(this, "AlarmTopicArn", { value: monitoring.topic.topicArn });
    new CfnOutput(this, "IngestFailureQueueUrl", { value: ingestFailures.queueUrl });
  }

  private resultsBucket(settings: TrackingSyncSettings): IBucket {
    if (settings.resultsBucketName) {
      // An existing bucket keeps its own settings (encryption, lifecycle, ...); see README.
      return Bucket.fromBucketName(this, "ResultsBucket", settings.resultsBucketName);
    }
    const accessLogs = new Bucket(this, "AccessLogsBucket", {
      encryption: BucketEncryption.S3_MANAGED,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      lifecycleRules: [{ id: "expire-access-logs", expiration: Duration.days(90) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    return new Bucket(this, "ResultsBucket", {
      encryption: BucketEncryption.S3_MANAGED,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      versioned: true,
      serverAccessLogsBucket: accessLogs,
      serverAccessLogsPrefix: "results-bucket/",
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [
        {
          id: "abort-incomplete-multipart-uploads",
          abortIncompleteMultipartUploadAfter: Duration.days(7),
        },
        {
          id: "expire-athena-results",
          prefix: ATHENA_RESULTS_PREFIX,
          expiration: Duration.days(30),
        },
        { id: "expire-reprocess-drops", prefix: REPROCESS_PREFIX, expiration: Duration.days(90) },
        { id: "expire-run-manifests", prefix: RUNS_PREFIX, expiration: Duration.days(400) },
        { id: "expire-reports", prefix: REPORTS_PREFIX, expiration: Duration.days(400) },
        { id: "expire-rejects", prefix: REJECTS_PREFIX, expiration: Duration.days(400) },
        // Hand-overs of continued files: checkpoints and a dry run's memories are removed
        // when the file is done, rejects parts are left to expire here (a duplicated line
        // of invocations may still join them), and so is what a failed line left.
        {
          id: "expire-continuation-leftovers",
          prefix: `${STATE_PREFIX}checkpoints/`,
          expiration: Duration.days(30),
        },
        { id: "expire-noncurrent-versions", noncurrentVersionExpiration: Duration.days(30) },
      ],
    });
  }

  private mongoSecret(settings: TrackingSyncSettings, prefix: string): ISecret {
    if (settings.mongoSecretArn) {
      return Secret.fromSecretCompleteArn(this, "MongoSecret", settings.mongoSecretArn);
    }
    // No secret given: create one to be filled in after deploy (README "Deploy").
    // Until then its value is random and the ingest fails to connect, loudly.
    const secret = new Secret(this, "MongoSecret", {
      secretName: `${prefix}/mongodb-uri`,
      description: "MongoDB connection string for tracking-sync (put the real value after deploy)",
      removalPolicy: RemovalPolicy.RETAIN,
    });
    acknowledge(
      secret,
      "AwsSolutions-SMG4",
      "Holds the connection string of a MongoDB cluster managed outside AWS; its credentials are rotated by the database owner, who then puts the new value.",
    );
    return secret;
  }

  private arn(
    service: string,
    resource: string,
    resourceName?: string,
    arnFormat = ArnFormat.SLASH_RESOURCE_NAME,
  ) {
    return this.formatArn({
      service,
      resource,
      ...(resourceName !== undefined ? { resourceName } : {}),
      arnFormat,
    });
  }

  /**
   * Adds one statement; wildcards in its resources (object keys under a prefix)
   * are acknowledged for cdk-nag one by one, with the statement's own reason.
   */
  private allow(
    role: Role,
    statement: { sid: string; actions: string[]; resources: string[]; wildcardReason?: string },
  ): void {
    role.addToPolicy(
      new PolicyStatement({
        sid: statement.sid,
        effect: Effect.ALLOW,
        actions: statement.actions,
        resources: statement.resources,
      }),
    );
    if (statement.wildcardReason) {
      acknowledgeWildcardResources(role, statement.resources, statement.wildcardReason);
    }
  }

  private grantStart(role: Role, bucket: IBucket, settings: TrackingSyncSettings): void {
    const objects = (...prefixes: string[]) => prefixes.map((p) => bucket.arnForObjects(`${p}*`));
    const keysUnknown = "object keys are query ids, unknown in advance";
    this.allow(role, {
      sid: "StartAndInspectQueriesInTheWorkgroup",
      // Stop: only a dry run whose manifest could not be written (it would be ingested for real).
      // Runtime statistics: a succeeded query's output row count, for reconciliation.
      actions: [
        "athena:StartQueryExecution",
        "athena:GetQueryExecution",
        "athena:GetQueryRuntimeStatistics",
        "athena:StopQueryExecution",
      ],
      resources: [this.arn("athena", "workgroup", settings.athenaWorkgroupName)],
    });
    this.allow(role, {
      sid: "ReadTheTableDefinition",
      actions: [
        "glue:GetDatabase",
        "glue:GetTable",
        "glue:GetPartitions",
        "glue:BatchGetPartition",
      ],
      resources: [
        this.arn("glue", "catalog", undefined, ArnFormat.NO_RESOURCE_NAME),
        this.arn("glue", "database", settings.athenaDatabase),
        this.arn("glue", "table", `${settings.athenaDatabase}/${settings.athenaTable}`),
      ],
    });
    this.allow(role, {
      sid: "ResultsBucketLevel",
      // ListBucket: the freshness check lists runs/, and a missing manifest, watermark or
      // report answers 404 instead of 403. Deliberately without an s3:prefix condition: S3
      // answers a missing key with 404 only to a caller allowed to list the bucket, and the
      // functions read 404 as "not there", while a 403 fails them.
      actions: ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
      resources: [bucket.bucketArn],
    });
    this.allow(role, {
      sid: "AthenaWritesResultsWithTheCallersRights",
      actions: [
        "s3:GetObject",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
      ],
      resources: objects(ATHENA_RESULTS_PREFIX),
      wildcardReason: `Athena writes <query id>.csv under athena-results/ with the caller's rights; ${keysUnknown}.`,
    });
    this.allow(role, {
      sid: "RunManifests",
      actions: ["s3:GetObject", "s3:PutObject"],
      resources: objects(RUNS_PREFIX),
      wildcardReason: `Run manifests are runs/<query id>.json; ${keysUnknown}.`,
    });
    this.allow(role, {
      sid: "ReconcileAthenaResultReports",
      // Read, then a conditional (If-Match) put of the verdict into a report waiting for the count;
      // the freshness check reads whether a nightly query's report exists.
      actions: ["s3:GetObject", "s3:PutObject"],
      resources: objects(`${REPORTS_PREFIX}${ATHENA_RESULTS_PREFIX}`),
      wildcardReason: `Reports of Athena results are reports/athena-results/<query id>.csv.json, never those of reprocess/ drops; ${keysUnknown}.`,
    });
    this.allow(role, {
      sid: "ReadWatermark",
      actions: ["s3:GetObject"],
      resources: objects(STATE_PREFIX),
      wildcardReason: "Read-only on the state/ prefix, where the ingest keeps the sync watermark.",
    });
    this.allow(role, {
      sid: "MoveWatermarkAfterReconciliationAndFanOutDays",
      // The fan-out state: the days of multi-day requests, started as slots free up.
      actions: ["s3:PutObject"],
      resources: [bucket.arnForObjects(WATERMARK_KEY), bucket.arnForObjects(FAN_OUT_KEY)],
    });
    if (settings.athenaDataLocation) {
      const data = settings.athenaDataLocation;
      const dataBucketArn = `arn:${this.partition}:s3:::${data.bucket}`;
      this.allow(role, {
        sid: "AthenaReadsTheTableData",
        actions: ["s3:GetObject"],
        resources: [`${dataBucketArn}/${data.prefix}*`],
        wildcardReason:
          "Athena reads the table's data files with the caller's rights; read-only, limited to the table's location.",
      });
      this.allow(role, {
        sid: "AthenaListsTheTableData",
        actions: ["s3:GetBucketLocation", "s3:ListBucket"],
        resources: [dataBucketArn],
      });
    }
    this.allowPutMetricData(role);
  }

  private grantIngest(role: Role, bucket: IBucket, functionName: string): void {
    const objects = (...prefixes: string[]) => prefixes.map((p) => bucket.arnForObjects(`${p}*`));
    this.allow(role, {
      sid: "ResultsBucketLevel",
      // A missing run manifest (normal for manual drops) answers 404 instead of 403.
      actions: ["s3:ListBucket"],
      resources: [bucket.bucketArn],
    });
    this.allow(role, {
      sid: "ReadInputsManifestsAndState",
      actions: ["s3:GetObject"],
      resources: objects(
        ATHENA_RESULTS_PREFIX,
        REPROCESS_PREFIX,
        RUNS_PREFIX,
        STATE_PREFIX,
        REJECTS_PREFIX,
      ),
      wildcardReason:
        "Read-only on the prefixes the ingest reads: its inputs (athena-results/, reprocess/), run manifests, the watermark, and the rejects parts an earlier version of a file continued over several invocations left under rejects/; keys are not known in advance.",
    });
    this.allow(role, {
      sid: "RemoveStaleRejectsPartsAndCheckpoints",
      // A clean run removes an earlier run's rejects; a continued file its checkpoint, a dry
      // run's memories and an earlier version's rejects parts.
      actions: ["s3:DeleteObject"],
      resources: objects(REJECTS_PREFIX, `${STATE_PREFIX}checkpoints/`),
      wildcardReason:
        "Deletes only under rejects/ (stale rejects, an earlier version's rejects parts) and state/checkpoints/; keys follow the input's key.",
    });
    this.allow(role, {
      sid: "ReadDryRunTagOfInputs",
      actions: ["s3:GetObjectTagging"],
      resources: objects(...INGEST_PREFIXES),
      wildcardReason: "Reads the dryRun tag of input objects under the two ingest prefixes only.",
    });
    this.allow(role, {
      sid: "WriteReportsRejectsAndWatermark",
      actions: ["s3:PutObject"],
      resources: objects(REPORTS_PREFIX, REJECTS_PREFIX, STATE_PREFIX),
      wildcardReason:
        "Writes only under reports/, rejects/ and state/, never under an ingest prefix; keys follow the input's key.",
    });
    this.allow(role, {
      sid: "ContinueBigFilesInAFreshInvocation",
      actions: ["lambda:InvokeFunction"],
      // Built from the name, not the function's token: the function depends on this role.
      resources: [this.arn("lambda", "function", functionName, ArnFormat.COLON_RESOURCE_NAME)],
    });
    this.allowPutMetricData(role);
  }

  private allowPutMetricData(role: Role): void {
    role.addToPolicy(
      new PolicyStatement({
        sid: "PublishMetricsToOurNamespaceOnly",
        effect: Effect.ALLOW,
        actions: ["cloudwatch:PutMetricData"],
        resources: ["*"],
        conditions: { StringEquals: { "cloudwatch:namespace": METRICS_NAMESPACE } },
      }),
    );
    acknowledge(
      role,
      "AwsSolutions-IAM5[Resource::*]",
      "cloudwatch:PutMetricData has no resource-level permissions; the statement is limited by condition to the EmpowerLocal/TrackingSync namespace.",
    );
  }

  /** Findings on resources CDK adds by itself, each with its reason. */
  private acknowledgeFrameworkFindings(ingestFailureQueue: Construct): void {
    acknowledge(
      ingestFailureQueue,
      "AwsSolutions-SQS3",
      "This queue is itself the dead-letter store: the ingest function's on-failure destination.",
    );
    const notificationsHandler = this.node.tryFindChild(
      "BucketNotificationsHandler050a0587b7544547bf325f094a3db834",
    );
    if (notificationsHandler) {
      acknowledge(
        notificationsHandler,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
        "CDK's own bucket-notification custom resource; it runs only during deployment and CDK picks its role.",
      );
    }
  }
}
