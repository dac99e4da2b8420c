import { readFileSync } from "node:fs";
import { App } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { TrackingSyncStack } from "../../infra/tracking-sync-stack";

/** The context cdk.json gives the CLI (feature flags), so tests synthesize what `cdk synth` does. */
const cdkJsonContext = (
  JSON.parse(readFileSync(new URL("../../cdk.json", import.meta.url), "utf8")) as {
    context?: Record<string, unknown>;
  }
).context;

export function synthesize(context: Record<string, unknown> = {}) {
  const app = new App({ context: { ...cdkJsonContext, ...context } });
  const stack = new TrackingSyncStack(app, "TrackingSync");
  return { app, stack, template: Template.fromStack(stack) };
}

type Resources = Record<string, { Type: string; Properties?: Record<string, unknown> }>;

export interface Statement {
  Sid?: string;
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: unknown;
}

/** The statements of the execution role of the function named `functionName`. */
export function roleStatements(template: Template, functionName: string): Statement[] {
  const resources = template.toJSON().Resources as Resources;
  const fn = Object.values(resources).find(
    (resource) =>
      resource.Type === "AWS::Lambda::Function" &&
      resource.Properties?.FunctionName === functionName,
  );
  const role = fn?.Properties?.Role as { "Fn::GetAtt": string[] } | undefined;
  if (!role) throw new Error(`no function named ${functionName}`);
  const roleId = role["Fn::GetAtt"][0];
  const statements: Statement[] = [];
  for (const resource of Object.values(resources)) {
    if (resource.Type !== "AWS::IAM::Policy" || !resource.Properties) continue;
    const roles = resource.Properties.Roles as Array<{ Ref: string }>;
    if (!roles.some((entry) => entry.Ref === roleId)) continue;
    statements.push(
      ...(resource.Properties.PolicyDocument as { Statement: Statement[] }).Statement,
    );
  }
  return statements;
}

export function actionsOf(statement: Statement): string[] {
  return Array.isArray(statement.Action) ? statement.Action : [statement.Action];
}

export function resourcesOf(statement: Statement): unknown[] {
  return Array.isArray(statement.Resource) ? statement.Resource : [statement.Resource];
}

/** The statement granting `action`, or a failure naming what was there. */
export function statementFor(statements: Statement[], action: string): Statement {
  const found = statements.filter((statement) => actionsOf(statement).includes(action));
  if (found.length !== 1) {
    throw new Error(`expected one statement with ${action}, found ${found.length}`);
  }
  return found[0] as Statement;
}

/** `{"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, "/runs/*"]]}` → `/runs/*`; plain strings as they are. */
export function objectSuffix(resource: unknown): string {
  const join = (resource as { "Fn::Join"?: [string, unknown[]] })["Fn::Join"];
  if (!join) return String(JSON.stringify(resource));
  return join[1].filter((part) => typeof part === "string").join("");
}
