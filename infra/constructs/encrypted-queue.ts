import { Duration } from "aws-cdk-lib";
import { type DeadLetterQueue, Queue, QueueEncryption } from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";

export interface EncryptedQueueProps {
  queueName: string;
  visibilityTimeout?: Duration;
  deadLetterQueue?: DeadLetterQueue;
}

/** An SQS queue with the house defaults: SSE-SQS encryption, TLS only, 14 days' retention. */
export class EncryptedQueue extends Construct {
  readonly queue: Queue;

  constructor(scope: Construct, id: string, props: EncryptedQueueProps) {
    super(scope, id);
    this.queue = new Queue(this, "Queue", {
      queueName: props.queueName,
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      ...(props.visibilityTimeout ? { visibilityTimeout: props.visibilityTimeout } : {}),
      ...(props.deadLetterQueue ? { deadLetterQueue: props.deadLetterQueue } : {}),
    });
  }
}
