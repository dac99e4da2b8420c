import { Match, type Template } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it } from "vitest";
import {
  objectSuffix,
  resourcesOf,
  roleStatements,
  statementFor,
  synthesize,
} from "./stack-fixture";

const SECRET_ARN =
  "arn:aws:secretsmanager:us-east-1:123456789012:secret:tracking/mongodb-uri-AbCdEf";
const NO_BUNDLING = { "aws:cdk:bundling-stacks": [] };

describe("a stack with every setting given in context", () => {
  let template: Template;

  beforeAll(() => {
    ({ template } = synthesize({
      ...NO_BUNDLING,
      functionNamePrefix: "tracking-prod",
      resultsBucketName: "existing-tracking-results",
      mongoSecretArn: SECRET_ARN,
      mongoDbName: "chicago-hub",
      athenaDatabase: "tracking",
      athenaTable: "daily_v2",
      athenaWorkgroupName: "tracking-prod-wg",
      athenaDataLocation: "s3://tracking-aggregates/daily",
      scheduleExpression: "cron(30 7 * * ? *)",
      alarmEmail: "ops@example.com",
      vpcSubnetIds: "subnet-0aaa1111, subnet-0bbb2222",
      securityGroupId: "sg-0ccc3333",
      ingestReservedConcurrency: "3",
      bytesScannedCutoff: "1073741824",
      logRetentionDays: 30,
      maxDays: 60,
      catchUpMaxDays: 14,
      resultDeadlineHours: "6",
      maxConcurrentQueries: "4",
      publicationCodeMap: '{"newpaper": 1099}',
      ingestBatchSize: 500,
    }));
  });

  it("imports the bucket instead of creating one, and still wires its notifications", () => {
    template.resourceCountIs("AWS::S3::Bucket", 0);
    template.hasResourceProperties("Custom::S3BucketNotifications", {
      BucketName: "existing-tracking-results",
      Managed: false,
    });
    template.hasResourceProperties("AWS::Athena::WorkGroup", {
      Name: "tracking-prod-wg",
      WorkGroupConfiguration: Match.objectLike({
        BytesScannedCutoffPerQuery: 1_073_741_824,
        ResultConfiguration: Match.objectLike({
          OutputLocation: "s3://existing-tracking-results/athena-results/",
        }),
      }),
    });
  });

  it("names everything from the prefix", () => {
    for (const name of ["tracking-prod-start", "tracking-prod-ingest"]) {
      template.hasResourceProperties("AWS::Lambda::Function", { FunctionName: name });
      template.hasResourceProperties("AWS::Logs::LogGroup", {
        LogGroupName: `/aws/lambda/${name}`,
        RetentionInDays: 30,
      });
    }
    template.hasResourceProperties("AWS::SNS::Topic", { TopicName: "tracking-prod-alarms" });
  });

  it("uses the given secret: creates none, passes its ARN, grants read on it alone", () => {
    template.resourceCountIs("AWS::SecretsManager::Secret", 0);
    template.hasResourceProperties("AWS::Lambda::Function", {
      FunctionName: "tracking-prod-ingest",
      ReservedConcurrentExecutions: 3,
      Environment: {
        Variables: Match.objectLike({
          MONGODB_URI_SECRET_ARN: SECRET_ARN,
          MONGODB_DB_NAME: "chicago-hub",
          PUBLICATION_CODE_MAP: '{"newpaper":1099}',
          BATCH_SIZE: "500",
        }),
      },
    });
    const statement = statementFor(
      roleStatements(template, "tracking-prod-ingest"),
      "secretsmanager:GetSecretValue",
    );
    expect(statement.Resource).toBe(SECRET_ARN);
  });

  it("passes the Athena names, caps and result deadline to the start function", () => {
    template.hasResourceProperties("AWS::Lambda::Function", {
      FunctionName: "tracking-prod-start",
      Environment: {
        Variables: Match.objectLike({
          ATHENA_WORKGROUP: "tracking-prod-wg",
          ATHENA_DATABASE: "tracking",
          ATHENA_TABLE: "daily_v2",
          MAX_DAYS: "60",
          CATCH_UP_MAX_DAYS: "14",
          RESULT_DEADLINE_HOURS: "6",
          MAX_CONCURRENT_QUERIES: "4",
        }),
      },
    });
    const glue = statementFor(roleStatements(template, "tracking-prod-start"), "glue:GetTable");
    expect(resourcesOf(glue).map(objectSuffix)).toContainEqual(
      expect.stringMatching(/:table\/tracking\/daily_v2$/),
    );
  });

  it("lets Athena read the table's data location with the start role, read-only", () => {
    const statements = roleStatements(template, "tracking-prod-start");
    const reads = statements.filter((statement) =>
      resourcesOf(statement).some((resource) =>
        objectSuffix(resource).includes("tracking-aggregates"),
      ),
    );
    expect(
      reads.map((statement) => [statement.Action, resourcesOf(statement).map(objectSuffix)]),
    ).toEqual([
      ["s3:GetObject", ["arn::s3:::tracking-aggregates/daily/*"]],
      [["s3:GetBucketLocation", "s3:ListBucket"], ["arn::s3:::tracking-aggregates"]],
    ]);
  });

  it("puts only the ingest into the VPC, with the ENI permissions Lambda needs", () => {
    template.hasResourceProperties("AWS::Lambda::Function", {
      FunctionName: "tracking-prod-ingest",
      VpcConfig: {
        SubnetIds: ["subnet-0aaa1111", "subnet-0bbb2222"],
        SecurityGroupIds: ["sg-0ccc3333"],
      },
    });
    template.hasResourceProperties("AWS::Lambda::Function", {
      FunctionName: "tracking-prod-start",
      VpcConfig: Match.absent(),
    });
    template.hasResourceProperties("AWS::IAM::Role", {
      Description: "Execution role of tracking-prod-ingest",
      ManagedPolicyArns: [
        {
          "Fn::Join": [
            "",
            [
              "arn:",
              { Ref: "AWS::Partition" },
              ":iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
            ],
          ],
        },
      ],
    });
  });

  it("runs on the given schedule and mails alarms to the given address", () => {
    template.hasResourceProperties("AWS::Events::Rule", {
      ScheduleExpression: "cron(30 7 * * ? *)",
    });
    // The freshness check keeps its own hourly schedule whatever the nightly one is.
    template.hasResourceProperties("AWS::Events::Rule", {
      Name: "tracking-prod-freshness-check",
      ScheduleExpression: "rate(1 hour)",
    });
    template.hasResourceProperties("AWS::SNS::Subscription", {
      Protocol: "email",
      Endpoint: "ops@example.com",
    });
  });
});

describe("settings that cannot work", () => {
  it.each([
    [{ mongoSecretArn: "tracking/mongodb-uri" }, /mongoSecretArn must be the secret's full ARN/],
    [
      {
        mongoSecretArn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:tracking/mongodb-uri",
      },
      /6-character suffix/,
    ],
    [{ vpcSubnetIds: "subnet-0aaa1111" }, /vpcSubnetIds and securityGroupId go together/],
    [{ securityGroupId: "sg-0ccc3333" }, /go together/],
    [{ ingestReservedConcurrency: "0" }, /ingestReservedConcurrency must be an integer from 1/],
    [{ bytesScannedCutoff: "1000" }, /bytesScannedCutoff must be an integer from 10000000/],
    [{ logRetentionDays: 45 }, /logRetentionDays 45 is not a CloudWatch Logs retention value/],
    [{ athenaDatabase: "ad-tracking" }, /athenaDatabase must be a Glue name/],
    [
      { athenaDataLocation: "tracking-aggregates/daily" },
      /athenaDataLocation must look like s3:\/\/bucket\/prefix\//,
    ],
    [{ resultDeadlineHours: "0" }, /resultDeadlineHours must be an integer from 1 to 48, got "0"/],
    [{ resultDeadlineHours: 49 }, /resultDeadlineHours must be an integer from 1 to 48, got 49/],
    [{ resultDeadlineHours: "2.5" }, /resultDeadlineHours must be an integer from 1 to 48/],
    [{ maxConcurrentQueries: 0 }, /maxConcurrentQueries must be an integer from 1 to 100, got 0/],
    [{ publicationCodeMap: "[1,2]" }, /publicationCodeMap must be a JSON object/],
    [{ functionNamePrefix: "has spaces" }, /functionNamePrefix must be/],
  ])("refuses %j at synth with a message that names it", (context, message) => {
    expect(() => synthesize({ ...NO_BUNDLING, ...context })).toThrow(message);
  });
});
