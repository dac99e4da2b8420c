import { InvokeCommand, type LambdaClient } from "@aws-sdk/client-lambda";
import type { SelfInvoker } from "./ports";

/**
 * Invokes this function asynchronously (InvocationType `Event`) by its unqualified name,
 * which the stack's grant names. Lambda answers 202 once the event is queued.
 */
export function lambdaSelfInvoker(client: LambdaClient, functionName: string): SelfInvoker {
  return async (event) => {
    const response = await client.send(
      new InvokeCommand({
        FunctionName: functionName,
        InvocationType: "Event",
        Payload: Buffer.from(JSON.stringify(event)),
      }),
    );
    if (response.StatusCode !== 202) {
      throw new Error(`asynchronous invoke answered ${response.StatusCode}, not 202`);
    }
  };
}
