import { Duration } from "aws-cdk-lib";
import {
  Alarm,
  AlarmStatusWidget,
  ComparisonOperator,
  Dashboard,
  GraphWidget,
  type IMetric,
  Metric,
  TreatMissingData,
} from "aws-cdk-lib/aws-cloudwatch";
import { SnsAction } from "aws-cdk-lib/aws-cloudwatch-actions";
import type { IFunction } from "aws-cdk-lib/aws-lambda";
import { Topic } from "aws-cdk-lib/aws-sns";
import { EmailSubscription } from "aws-cdk-lib/aws-sns-subscriptions";
import type { IQueue } from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import { INCOMPLETE_RESULTS, MISSING_RESULTS } from "../../handlers/shared/metric-names";

export interface MonitoringProps {
  prefix: string;
  namespace: string;
  alarmEmail: string | undefined;
  startFunction: IFunction;
  ingestFunction: IFunction;
  /** The ingest function's timeout: what one invocation's `Duration` is measured against. */
  ingestTimeoutMs: number;
  /** `Duration` above this alarms: the invocation came close to its timeout (ingest-budget.ts). */
  durationAlarmThresholdMs: number;
  /** The ingest's on-failure destination: events that failed all async retries. */
  ingestFailureQueue: IQueue;
  /** Restart messages the start function could not process. */
  retryDeadLetterQueue: IQueue;
}

/**
 * Alarms (to one SNS topic, optional e-mail) and a dashboard. The sync metrics
 * carry no dimensions: the ingest publishes them namespace-wide. `Duration` has one
 * data point per invocation (per object it handled); the counts, `FileDuration` and
 * `FileInvocations` one per ingested file, from the invocation that finished it.
 */
export class Monitoring extends Construct {
  readonly topic: Topic;
  readonly dashboard: Dashboard;
  readonly alarms: Alarm[] = [];

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const { prefix, namespace, ingestTimeoutMs, durationAlarmThresholdMs } = props;
    const seconds = (ms: number) => `${ms / 1000} s`;

    this.topic = new Topic(this, "AlarmTopic", {
      topicName: `${prefix}-alarms`,
      displayName: "tracking-sync alarms",
      enforceSSL: true,
    });
    if (props.alarmEmail) this.topic.addSubscription(new EmailSubscription(props.alarmEmail));

    const sync = (metricName: string, statistic: string, period = Duration.minutes(5)) =>
      new Metric({ namespace, metricName, statistic, period });

    this.alarm("SyncErrorsAlarm", {
      alarmName: `${prefix}-errors-per-run`,
      alarmDescription:
        "More than 100 rows failed in one ingest run (spec: Errors > 100). Read the run's report under reports/ and its rejects under rejects/.",
      metric: sync("Errors", "Maximum"),
      threshold: 100,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    this.alarm("NoRowsSyncedAlarm", {
      alarmName: `${prefix}-no-rows-synced`,
      alarmDescription:
        "No row synced for 2 consecutive days (missing data counts): the nightly query, its ingest or the data upstream stopped.",
      metric: sync("RowsSynced", "Sum", Duration.days(1)),
      threshold: 0,
      comparisonOperator: ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 2,
      treatMissingData: TreatMissingData.BREACHING,
    });
    this.alarm("DurationAlarm", {
      alarmName: `${prefix}-duration`,
      alarmDescription: `An ingest invocation ran over ${seconds(durationAlarmThresholdMs)} of its ${seconds(ingestTimeoutMs)} timeout (spec: Duration > ${durationAlarmThresholdMs} ms). Files that continue in fresh invocations stop in time by design, so this one was slow after it decided to stop or to finish (MongoDB writes, S3, a huge batch) and nearly timed out. Read that invocation's log; FileDuration on the dashboard is the whole file's time.`,
      metric: sync("Duration", "Maximum"),
      threshold: durationAlarmThresholdMs,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    this.alarm("IngestErrorsAlarm", {
      alarmName: `${prefix}-ingest-errors`,
      alarmDescription:
        "The ingest function threw (MongoDB or S3 unreachable, unreadable object); Lambda retries it twice.",
      metric: props.ingestFunction.metricErrors({ period: Duration.minutes(5), statistic: "Sum" }),
      threshold: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    this.alarm("StartErrorsAlarm", {
      alarmName: `${prefix}-start-errors`,
      alarmDescription:
        "The start function threw (Athena, S3 or SQS refused); Lambda retries it twice with the same token.",
      metric: props.startFunction.metricErrors({ period: Duration.minutes(5), statistic: "Sum" }),
      threshold: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    this.alarm("IngestFailuresQueuedAlarm", {
      alarmName: `${prefix}-ingest-failed-events`,
      alarmDescription:
        "An S3 event failed the ingest 3 times and waits in the on-failure queue: fix the cause, then re-drop the object into reprocess/.",
      metric: props.ingestFailureQueue.metricApproximateNumberOfMessagesVisible({
        period: Duration.minutes(5),
        statistic: "Maximum",
      }),
      threshold: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    this.alarm("RetryDeadLettersAlarm", {
      alarmName: `${prefix}-retry-dead-letters`,
      alarmDescription:
        "A restart of a failed Athena query could not be started and was dead-lettered.",
      metric: props.retryDeadLetterQueue.metricApproximateNumberOfMessagesVisible({
        period: Duration.minutes(5),
        statistic: "Maximum",
      }),
      threshold: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    this.alarm("QueryRetriesExhaustedAlarm", {
      alarmName: `${prefix}-query-failed`,
      alarmDescription:
        "An Athena query failed on all 3 attempts. Read the reason in the start function's log (search the query id), fix it, then start the range by hand.",
      metric: sync("QueryRetriesExhausted", "Sum"),
      threshold: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    this.alarm("IncompleteResultsAlarm", {
      alarmName: `${prefix}-incomplete-results`,
      alarmDescription:
        "The records the ingest read from an Athena result differ from the query's OutputRows: rows may be missing from MongoDB. Read the report reports/athena-results/<query id>.csv.json (outcome incomplete) and both functions' logs for the query id, then start the range again.",
      metric: sync(INCOMPLETE_RESULTS, "Sum"),
      threshold: 0,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    // One period per hourly check. The metric is a count without dimensions, so the
    // query ids are only in the start function's log.
    this.alarm("MissingResultsAlarm", {
      alarmName: `${prefix}-missing-results`,
      alarmDescription:
        "A nightly result was not reported within the deadline, or the schedule started no query for a night: its rows are not in MongoDB. An alarm cannot name the query: search the start function's log for \"Missing result\", whose lines carry each query id (or say that no query started), check that query in the workgroup's history and the ingest's log, fix the cause, then start the range again.",
      metric: sync(MISSING_RESULTS, "Sum", Duration.hours(1)),
      threshold: 0,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });

    const hourly = (metricName: string, statistic = "Sum") =>
      sync(metricName, statistic, Duration.hours(1));
    const fnMetrics = (fn: IFunction): IMetric[][] => [
      [
        fn.metricInvocations({ statistic: "Sum" }),
        fn.metricErrors({ statistic: "Sum" }),
        fn.metricThrottles({ statistic: "Sum" }),
      ],
      [fn.metricDuration({ statistic: "Maximum" }), fn.metricDuration({ statistic: "Average" })],
    ];
    const [startCounts = [], startDuration = []] = fnMetrics(props.startFunction);
    const [ingestCounts = [], ingestDuration = []] = fnMetrics(props.ingestFunction);

    this.dashboard = new Dashboard(this, "Dashboard", {
      dashboardName: prefix,
      widgets: [
        [
          new GraphWidget({
            title: "Rows per hour",
            left: ["RowsSynced", "RowsSkipped", "Errors"].map((name) => hourly(name)),
            width: 6,
          }),
          new GraphWidget({
            title: "Entries written per hour",
            left: ["RowsInserted", "RowsUpdated", "RowsUnchanged"].map((name) => hourly(name)),
            width: 6,
          }),
          new GraphWidget({
            title: "Ingest invocation duration (ms)",
            left: [sync("Duration", "Maximum"), sync("Duration", "Average")],
            leftAnnotations: [
              { value: durationAlarmThresholdMs, label: "alarm" },
              { value: ingestTimeoutMs, label: "timeout" },
            ],
            width: 6,
          }),
          new GraphWidget({
            title: "Files: whole-file duration (ms) and invocations per file",
            left: [hourly("FileDuration", "Maximum")],
            right: [hourly("FileInvocations", "Maximum")],
            width: 6,
          }),
        ],
        [
          new GraphWidget({
            title: "Start function: invocations, errors, throttles",
            left: startCounts,
            width: 6,
          }),
          new GraphWidget({
            title: "Start function: duration (ms)",
            left: startDuration,
            width: 6,
          }),
          new GraphWidget({
            title: "Ingest function: invocations, errors, throttles",
            left: ingestCounts,
            width: 6,
          }),
          new GraphWidget({
            title: "Ingest function: duration (ms)",
            left: ingestDuration,
            width: 6,
          }),
        ],
        [
          new GraphWidget({
            title: "Failed work waiting, incomplete and missing results",
            left: [
              props.ingestFailureQueue.metricApproximateNumberOfMessagesVisible({
                label: "ingest on-failure queue",
              }),
              props.retryDeadLetterQueue.metricApproximateNumberOfMessagesVisible({
                label: "retry dead letters",
              }),
              sync("QueryRetriesExhausted", "Sum"),
              sync(INCOMPLETE_RESULTS, "Sum"),
              hourly(MISSING_RESULTS),
            ],
            width: 12,
          }),
          new AlarmStatusWidget({ title: "Alarms", alarms: this.alarms, width: 12 }),
        ],
      ],
    });
  }

  private alarm(id: string, props: ConstructorParameters<typeof Alarm>[2]): Alarm {
    const alarm = new Alarm(this, id, props);
    alarm.addAlarmAction(new SnsAction(this.topic));
    this.alarms.push(alarm);
    return alarm;
  }
}
