import { RetentionDays } from "aws-cdk-lib/aws-logs";
import type { Node } from "constructs";

/**
 * Every deploy-time setting, from CDK context (`-c key=value` or cdk.json), with
 * defaults that let `cdk synth` run offline without an AWS account. The README's
 * "Deploy" section documents each one.
 */
export interface TrackingSyncSettings {
  functionNamePrefix: string;
  /** Import this existing bucket; unset: the stack creates one. */
  resultsBucketName: string | undefined;
  /** Full ARN of the secret holding the MongoDB connection string; unset: the stack creates an empty one. */
  mongoSecretArn: string | undefined;
  mongoDbName: string;
  athenaDatabase: string;
  athenaTable: string;
  athenaWorkgroupName: string;
  /** `s3://bucket/prefix/` of the table's data, which Athena reads with the start role's rights. */
  athenaDataLocation: { bucket: string; prefix: string } | undefined;
  scheduleExpression: string;
  alarmEmail: string | undefined;
  vpcSubnetIds: string[];
  securityGroupId: string | undefined;
  ingestReservedConcurrency: number;
  bytesScannedCutoff: number;
  logRetentionDays: RetentionDays;
  maxDays: number;
  catchUpMaxDays: number;
  /** Hours after the nightly start by which a query's report must exist (`RESULT_DEADLINE_HOURS`). */
  resultDeadlineHours: number;
  /** Queries of multi-day requests active at once (`MAX_CONCURRENT_QUERIES`). */
  maxConcurrentQueries: number;
  publicationCodeMap: string | undefined;
  ingestBatchSize: number | undefined;
}

export const DEFAULTS = {
  functionNamePrefix: "empowerlocal-tracking-sync",
  mongoDbName: "staging-chicago-hub",
  athenaDatabase: "ad_tracking",
  athenaTable: "daily_aggregates",
  scheduleExpression: "cron(0 6 * * ? *)",
  ingestReservedConcurrency: 5,
  // 10 GiB: a day of aggregates is far below; a runaway query stops at about $0.05.
  bytesScannedCutoff: 10 * 1024 ** 3,
  logRetentionDays: RetentionDays.THREE_MONTHS,
  maxDays: 90,
  catchUpMaxDays: 31,
  resultDeadlineHours: 3,
  maxConcurrentQueries: 5,
} as const;

export class SettingsError extends Error {}

export function readSettings(node: Node): TrackingSyncSettings {
  const get = (key: string): unknown => {
    const value = node.tryGetContext(key);
    return value === "" || value === null ? undefined : value;
  };
  const text = (key: string): string | undefined => {
    const value = get(key);
    if (value === undefined) return undefined;
    if (typeof value !== "string") throw new SettingsError(`context ${key} must be a string`);
    return value.trim() || undefined;
  };
  const integer = (key: string, fallback: number, min: number, max: number): number => {
    const value = get(key);
    if (value === undefined) return fallback;
    const parsed = typeof value === "number" ? value : Number(value);
    if (!Number.isInteger(parsed) || parsed < min || parsed > max) {
      throw new SettingsError(
        `context ${key} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`,
      );
    }
    return parsed;
  };

  const functionNamePrefix = text("functionNamePrefix") ?? DEFAULTS.functionNamePrefix;
  if (!/^[A-Za-z0-9-_]{1,48}$/.test(functionNamePrefix)) {
    throw new SettingsError("context functionNamePrefix must be 1-48 letters, digits, - or _");
  }

  const mongoSecretArn = text("mongoSecretArn");
  if (
    mongoSecretArn !== undefined &&
    !/^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+-[A-Za-z0-9]{6}$/.test(
      mongoSecretArn,
    )
  ) {
    throw new SettingsError(
      "context mongoSecretArn must be the secret's full ARN, ending in the 6-character suffix (arn:aws:secretsmanager:<region>:<account>:secret:<name>-AbCdEf), as create-secret prints it",
    );
  }

  const athenaDatabase = glueName(
    "athenaDatabase",
    text("athenaDatabase") ?? DEFAULTS.athenaDatabase,
  );
  const athenaTable = glueName("athenaTable", text("athenaTable") ?? DEFAULTS.athenaTable);

  const vpcSubnetIds = list(get("vpcSubnetIds"));
  const securityGroupId = text("securityGroupId");
  if (vpcSubnetIds.length > 0 !== (securityGroupId !== undefined)) {
    throw new SettingsError(
      "context vpcSubnetIds and securityGroupId go together: set both or neither",
    );
  }

  const logRetentionDays = integer("logRetentionDays", DEFAULTS.logRetentionDays, 1, 3653);
  if (!Object.values(RetentionDays).includes(logRetentionDays)) {
    throw new SettingsError(
      `context logRetentionDays ${logRetentionDays} is not a CloudWatch Logs retention value`,
    );
  }

  const publicationCodeMap = get("publicationCodeMap");
  let publicationCodeMapJson: string | undefined;
  if (publicationCodeMap !== undefined) {
    const parsed =
      typeof publicationCodeMap === "string" ? safeJson(publicationCodeMap) : publicationCodeMap;
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      throw new SettingsError(
        'context publicationCodeMap must be a JSON object such as {"newpaper": 1099}',
      );
    }
    publicationCodeMapJson = JSON.stringify(parsed);
  }

  const ingestBatchSize =
    get("ingestBatchSize") === undefined ? undefined : integer("ingestBatchSize", 1000, 1, 50_000);

  return {
    functionNamePrefix,
    resultsBucketName: text("resultsBucketName"),
    mongoSecretArn,
    mongoDbName: text("mongoDbName") ?? DEFAULTS.mongoDbName,
    athenaDatabase,
    athenaTable,
    athenaWorkgroupName: text("athenaWorkgroupName") ?? functionNamePrefix,
    athenaDataLocation: s3Location(text("athenaDataLocation")),
    scheduleExpression: text("scheduleExpression") ?? DEFAULTS.scheduleExpression,
    alarmEmail: text("alarmEmail"),
    vpcSubnetIds,
    securityGroupId,
    ingestReservedConcurrency: integer(
      "ingestReservedConcurrency",
      DEFAULTS.ingestReservedConcurrency,
      1,
      1000,
    ),
    bytesScannedCutoff: integer(
      "bytesScannedCutoff",
      DEFAULTS.bytesScannedCutoff,
      10_000_000,
      Number.MAX_SAFE_INTEGER,
    ),
    logRetentionDays: logRetentionDays as RetentionDays,
    maxDays: integer("maxDays", DEFAULTS.maxDays, 1, 3660),
    catchUpMaxDays: integer("catchUpMaxDays", DEFAULTS.catchUpMaxDays, 1, 3660),
    resultDeadlineHours: integer("resultDeadlineHours", DEFAULTS.resultDeadlineHours, 1, 48),
    maxConcurrentQueries: integer("maxConcurrentQueries", DEFAULTS.maxConcurrentQueries, 1, 100),
    publicationCodeMap: publicationCodeMapJson,
    ingestBatchSize,
  };
}

function glueName(key: string, value: string): string {
  if (!/^[A-Za-z0-9_]{1,255}$/.test(value)) {
    throw new SettingsError(
      `context ${key} must be a Glue name (letters, digits, _), got "${value}"`,
    );
  }
  return value;
}

/** `a,b` or `["a","b"]` (cdk.json) to a list. */
function list(value: unknown): string[] {
  if (value === undefined) return [];
  const items = Array.isArray(value) ? value.map(String) : String(value).split(",");
  return items.map((item) => item.trim()).filter((item) => item.length > 0);
}

function s3Location(value: string | undefined): { bucket: string; prefix: string } | undefined {
  if (value === undefined) return undefined;
  const match = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\/?(.*)$/.exec(value);
  if (!match)
    throw new SettingsError(
      `context athenaDataLocation must look like s3://bucket/prefix/, got "${value}"`,
    );
  const prefix = match[2] ?? "";
  return {
    bucket: match[1] as string,
    prefix: prefix === "" || prefix.endsWith("/") ? prefix : `${prefix}/`,
  };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
