import { Validations } from "aws-cdk-lib";
import { PolicyStatement, type Role } from "aws-cdk-lib/aws-iam";
import { AwsSolutionsChecks } from "cdk-nag";
import type { IConstruct } from "constructs";
import { beforeAll, describe, expect, it } from "vitest";
import { synthesize } from "./stack-fixture";

// cdk-nag 3 is a CDK validation plugin (infra/app.ts registers it, so every
// `cdk synth` fails on a finding); findings are no longer Annotations, so the
// test runs the same pack over the construct tree directly.

const EVERYTHING_SET = {
  functionNamePrefix: "tracking-prod",
  resultsBucketName: "existing-tracking-results",
  mongoSecretArn:
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:tracking/mongodb-uri-AbCdEf",
  athenaDataLocation: "s3://tracking-aggregates/daily/",
  vpcSubnetIds: "subnet-0aaa1111,subnet-0bbb2222",
  securityGroupId: "sg-0ccc3333",
  alarmEmail: "ops@example.com",
};

function acknowledgements(scope: IConstruct): Array<{ id: string; reason: string }> {
  return scope.node.findAll().flatMap((construct) =>
    construct.node.metadata
      .filter((entry) => entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((entry) =>
        Object.entries(entry.data as Record<string, { reason?: string } | string>).map(
          ([id, value]) => ({
            id,
            reason: typeof value === "string" ? value : (value.reason ?? ""),
          }),
        ),
      ),
  );
}

describe.each([
  ["on defaults", {}],
  ["with every optional setting", EVERYTHING_SET],
])("the AwsSolutions checks %s", (_name, context) => {
  let app: ReturnType<typeof synthesize>["app"];

  beforeAll(() => {
    ({ app } = synthesize({ ...context, "aws:cdk:bundling-stacks": [] }));
  });

  it("find nothing unacknowledged", () => {
    const report = new AwsSolutionsChecks().validateScope(app);
    expect(
      report.violations.map(
        (violation) =>
          `${violation.ruleName} at ${violation.violatingResources.map((r) => r.constructPath).join(", ")}`,
      ),
    ).toEqual([]);
    expect(report.success).toBe(true);
  });

  it("acknowledge each finding by its exact id with a specific reason", () => {
    const acknowledged = acknowledgements(app);
    expect(acknowledged.length).toBeGreaterThan(0);
    for (const { id, reason } of acknowledged) {
      expect(id).toMatch(/AwsSolutions-[A-Z]+\d+/);
      // A bare rule id would silence every wildcard of the rule on that construct.
      if (id.includes("IAM5")) expect(id).toMatch(/IAM5\[Resource::.+\]$/);
      expect(reason.length).toBeGreaterThan(40);
    }
  });
});

describe("the AwsSolutions checks", () => {
  it("still catch a finding nobody acknowledged", () => {
    const { app, stack } = synthesize({ "aws:cdk:bundling-stacks": [] });
    // A stray wildcard grant on the start role must surface.
    const role = stack.node.findChild("Start").node.findChild("Role") as Role;
    role.addToPolicy(
      new PolicyStatement({ actions: ["s3:GetObject"], resources: ["arn:aws:s3:::elsewhere/*"] }),
    );
    const report = new AwsSolutionsChecks().validateScope(app);
    expect(report.violations.map((violation) => violation.ruleName)).toEqual([
      "AwsSolutions-IAM5[Resource::arn:aws:s3:::elsewhere/*]",
    ]);
  });
});
