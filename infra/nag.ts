import { Stack, Validations } from "aws-cdk-lib";
// cdk-nag's own flattening, so an acknowledgement names the finding exactly as the rule reports it.
import { flattenCfnReference } from "cdk-nag/lib/utils/flatten-cfn-reference";
import type { IConstruct } from "constructs";

/** Acknowledges one cdk-nag finding on `scope` (and its children) with its reason. */
export function acknowledge(scope: IConstruct, id: string, reason: string): void {
  Validations.of(scope).acknowledge({ id, reason });
}

/**
 * Acknowledges AwsSolutions-IAM5 for each of `resources` that contains a wildcard
 * (e.g. `<bucket>/runs/*`), naming each finding exactly, so any other wildcard
 * still fails the check.
 */
export function acknowledgeWildcardResources(
  scope: IConstruct,
  resources: string[],
  reason: string,
): void {
  const stack = Stack.of(scope);
  for (const resource of resources) {
    const flat = flattenCfnReference(stack.resolve(resource));
    if (flat.includes("*")) acknowledge(scope, `AwsSolutions-IAM5[Resource::${flat}]`, reason);
  }
}
