import { App, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { TrackingSyncStack } from "./tracking-sync-stack";

const app = new App();
new TrackingSyncStack(app, "TrackingSync", {
  stackName: app.node.tryGetContext("stackName") ?? "empowerlocal-tracking-sync",
  description: "tracking-sync: Athena daily ad-tracking aggregates to MongoDB performance_entries",
});
// Every synth is checked: an unacknowledged AwsSolutions finding fails it.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
