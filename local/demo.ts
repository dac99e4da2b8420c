/**
 * `npm run demo`: the whole pipeline on this machine, nothing from AWS. Starts the
 * stand-ins, seeds them, fires the nightly schedule event at the real start handler,
 * waits for the ingest Athena's result file triggers, then shows the other ways in
 * (the same night again, a reprocess drop and its dry run) and checks what it saw.
 * Exits 0 only when every check holds; stops everything it started either way.
 */
import { randomUUID } from "node:crypto";
import { realpathSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import type { Context } from "aws-lambda";
import { stringify } from "csv-stringify/sync";
import { type Db, type Document, ObjectId, type WithId } from "mongodb";
import { provenancePipeline } from "../handlers/ingest/ledger";
import {
  athenaResultKey,
  FAN_OUT_KEY,
  rejectsKey,
  reportKey,
  runManifestKey,
  WATERMARK_KEY,
} from "../handlers/shared/bucket-layout";
import { addDays, daysBetween, toIsoDate } from "../handlers/shared/dates";
import { type FanOutPlan, parseFanOutState } from "../handlers/shared/fan-out";
import { MISSING_RESULTS } from "../handlers/shared/metric-names";
import type { Reconciliation } from "../handlers/shared/reconciliation";
import type { RunManifest } from "../handlers/shared/run-manifest";
import type { FreshnessOutcome } from "../handlers/start/freshness";
import { FRESHNESS_CHECK_EVENT } from "../handlers/start/sync-event";
import type { PublishedMetric } from "./cloudwatch-server";
import {
  createLambdaContext,
  type OnFailureRecord,
  START_FUNCTION_NAME,
  scheduledEvent,
} from "./lambda-runtime";
import { type IngestInvocation, type LocalPipeline, startLocalPipeline } from "./pipeline";
import { buildReprocessCsv } from "./sample-data";

export interface DemoOptions {
  /** The SyncEvent fields; any of them turns the first run into a manual invoke. */
  date?: string;
  days?: number;
  publication?: string;
  dryRun?: boolean;
  /** A CSV of one's own to drop into `reprocess/` instead of the generated one. */
  reprocessFile?: string;
  /** Tags for that drop; given, the file is dropped once with exactly these tags. */
  tags?: Record<string, string>;
  seed?: number;
  /** How long to wait for each ingest; default 60 s. */
  timeoutMs?: number;
  /** Handler log lines; default: dropped. */
  logWriter?: (line: string) => void;
  /** Progress for people; default: nothing. */
  print?: (text: string) => void;
  /** Called with the running pipeline after the last step, before it stops (tests look into MongoDB here). */
  inspect?: (pipeline: LocalPipeline) => Promise<void>;
}

export interface DemoResult {
  success: boolean;
  sample: { start: string; end: string; seed: number | undefined; rows: number };
  bucket: string;
  workGroup: string;
  database: string;
  steps: DemoStep[];
  /** A creative re-mapped to another campaign and its day dropped again: the move, and provenance. */
  remap?: RemapDemo;
  /** The hourly freshness check, run against a nightly query whose result never landed. */
  freshness: FreshnessDemo;
  /** A backfill of every sample day, fanned out into one query per day. */
  backfill: BackfillDemo;
  checks: DemoCheck[];
  metrics: PublishedMetric[];
  onFailure: OnFailureRecord[];
}

export type StepName =
  | "nightly"
  | "manual"
  | "redelivery"
  | "same-night"
  | "reprocess-dry-run"
  | "reprocess"
  | "remap";

export interface DemoStep {
  name: StepName;
  title: string;
  /** What was sent: the event and request id for the start handler, or the S3 PUT. */
  trigger: Record<string, unknown>;
  start?: StartOutput;
  ingest?: IngestOutcome;
  /** A request of several days, fanned out: each day's ingest, in date order. */
  days?: IngestOutcome[];
  /** `performance_entries` after the step, sorted by date, order and item. */
  entries: Record<string, unknown>[];
  changes: EntryChanges;
}

export interface StartOutput {
  success?: boolean;
  queryExecutionId?: string;
  dateRange?: { start: string; end: string };
  dryRun?: boolean;
  error?: string;
  [field: string]: unknown;
}

export interface IngestOutcome {
  key: string;
  attempts: number;
  /** What the handler returned (absent when every attempt failed). */
  result?: unknown;
  onFailure?: OnFailureRecord;
  reportKey: string;
  report?: Record<string, unknown>;
  rejectsKey?: string;
  rejectedRows?: number;
}

/** What MongoDB shows changed in a step, by comparing documents before and after. */
export interface EntryChanges {
  inserted: number;
  updated: number;
  unchanged: number;
  removed: number;
}

export interface DemoCheck {
  name: string;
  ok: boolean;
  detail: string;
}

const ENTRIES = "performance_entries";

export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const print = options.print ?? (() => undefined);
  const timeoutMs = options.timeoutMs ?? 60_000;
  const yesterday = addDays(toIsoDate(new Date()), -1);
  const sampleRange = sampleRangeFor(yesterday, options.date, options.days);

  const pipeline = await startLocalPipeline({
    endDate: sampleRange.end,
    days: sampleRange.days,
    ...(options.seed !== undefined ? { seed: options.seed } : {}),
    logWriter: options.logWriter ?? (() => undefined),
  });
  try {
    const { sample } = pipeline;
    print(header(pipeline));
    const run = new DemoRun(pipeline, print, timeoutMs, await snapshotEntries(pipeline));
    const firstStep = await runStartSteps(run, options);
    const reprocessDate = clampDate(
      firstStep.start?.dateRange?.end ?? sample.dateRange.end,
      sample.dateRange,
    );
    await runReprocessSteps(run, await reprocessDrops(options, pipeline, reprocessDate));
    const remap = options.reprocessFile ? undefined : await runRemapStep(run, reprocessDate);
    const freshness = await runFreshnessCheck(run);
    const backfill = await runBackfill(run);
    run.checks.push({
      name: "nothing reached the on-failure destination",
      ok: pipeline.onFailure.length === 0,
      detail: plural(pipeline.onFailure.length, "record"),
    });
    await options.inspect?.(pipeline);

    const result: DemoResult = {
      success: run.checks.every((check) => check.ok),
      sample: {
        start: sample.dateRange.start,
        end: sample.dateRange.end,
        seed: options.seed,
        rows: sample.rows.length,
      },
      bucket: pipeline.bucket,
      workGroup: pipeline.workGroup,
      database: pipeline.dbName,
      steps: run.steps,
      ...(remap ? { remap } : {}),
      freshness,
      backfill,
      checks: run.checks,
      metrics: [...pipeline.metrics],
      onFailure: [...pipeline.onFailure],
    };
    print(describeChecks(result));
    return result;
  } finally {
    await pipeline.stop();
  }
}

/** The steps and checks so far, and the entries as the last step left them. */
class DemoRun {
  readonly steps: DemoStep[] = [];
  readonly checks: DemoCheck[] = [];

  constructor(
    readonly pipeline: LocalPipeline,
    readonly print: (text: string) => void,
    readonly timeoutMs: number,
    private entries: Record<string, unknown>[],
  ) {}

  /** `performance_entries` as the last recorded step left them. */
  get lastEntries(): Record<string, unknown>[] {
    return this.entries;
  }

  /** Records a step with the entries after it and what changed, and prints it. */
  async record(step: Omit<DemoStep, "entries" | "changes">): Promise<DemoStep> {
    const after = await snapshotEntries(this.pipeline);
    const full = { ...step, entries: after, changes: compareEntries(this.entries, after) };
    const before = this.entries;
    this.entries = after;
    this.steps.push(full);
    this.print(describeStep(this.steps.length, full, this.pipeline, before));
    return full;
  }
}

/**
 * Through the start handler: the nightly schedule (or the SyncEvent asked for), the same
 * event redelivered, then a new event for the same night. Returns the first step.
 */
async function runStartSteps(run: DemoRun, options: DemoOptions): Promise<DemoStep> {
  const { pipeline, timeoutMs, checks } = run;
  const manual =
    options.date !== undefined ||
    options.days !== undefined ||
    options.publication !== undefined ||
    options.dryRun !== undefined;
  const syncEvent = {
    ...(options.date !== undefined ? { date: options.date } : {}),
    ...(options.days !== undefined ? { days: options.days } : {}),
    ...(options.publication !== undefined ? { publicationCode: options.publication } : {}),
    ...(options.dryRun !== undefined ? { dryRun: options.dryRun } : {}),
  };
  const event = manual ? syncEvent : scheduledEvent({ time: scheduleTime() });
  const context = createLambdaContext({ functionName: START_FUNCTION_NAME });
  const first = await startAndIngest(pipeline, event, context, timeoutMs);
  const firstPlan = (first.start as PlanAnswer).plan;
  if (!first.start.success || (!first.start.queryExecutionId && !firstPlan)) {
    throw new DemoError(`start-query started nothing: ${first.start.error ?? "no query id"}`);
  }
  const firstStep = await run.record({
    name: manual ? "manual" : "nightly",
    title: manual
      ? `Manual invoke ${JSON.stringify(syncEvent)} → start-query`
      : "Nightly schedule (EventBridge Scheduled Event → start-query)",
    trigger: { event, requestId: context.awsRequestId },
    start: first.start,
    ...(first.ingest ? { ingest: first.ingest } : {}),
    ...(first.days ? { days: first.days } : {}),
  });
  checks.push(ingestsCheck("Athena's result file was ingested", first));
  checks.push(reconciliationCheck(ingestsOf(first)));
  const dryFirst = first.start.dryRun === true;
  checks.push({
    name: dryFirst ? "the dry run wrote nothing" : "the first run wrote entries",
    ok: dryFirst
      ? firstStep.changes.inserted + firstStep.changes.updated === 0
      : firstStep.changes.inserted + firstStep.changes.updated > 0,
    detail: describeChanges(firstStep.changes),
  });

  const again = await startAndIngest(pipeline, event, context, timeoutMs);
  await run.record({
    name: "redelivery",
    title: "The same event delivered again (same id / request id → same token)",
    trigger: { event, requestId: context.awsRequestId },
    start: again.start,
    ...(again.ingest ? { ingest: again.ingest } : {}),
    ...(again.days ? { days: again.days } : {}),
  });
  const againPlan = (again.start as PlanAnswer).plan;
  const ingestedAgain = ingestsOf(again).length > 0;
  checks.push({
    name: "a redelivered event starts no second query",
    ok:
      again.start.queryExecutionId === first.start.queryExecutionId &&
      againPlan?.planId === firstPlan?.planId &&
      !ingestedAgain,
    detail: `${againPlan ? `plan ${againPlan.planId}` : `query ${again.start.queryExecutionId ?? "none"}`}${ingestedAgain ? ", ingested again" : ", no new file"}`,
  });

  const nextEvent = manual
    ? syncEvent
    : scheduledEvent({ time: new Date((event as { time: string }).time) });
  const nextContext = createLambdaContext({ functionName: START_FUNCTION_NAME });
  const sameNight = await startAndIngest(pipeline, nextEvent, nextContext, timeoutMs);
  const sameNightStep = await run.record({
    name: "same-night",
    title: manual
      ? "The same request again (a new invoke)"
      : "A second schedule event for the same night (new event id)",
    trigger: { event: nextEvent, requestId: nextContext.awsRequestId },
    start: sameNight.start,
    ...(sameNight.ingest ? { ingest: sameNight.ingest } : {}),
    ...(sameNight.days ? { days: sameNight.days } : {}),
  });
  checks.push(ingestsCheck("the same night's new query was ingested", sameNight));
  checks.push({
    name: "the same night again changes no entry",
    ok:
      sameNightStep.changes.inserted === 0 &&
      sameNightStep.changes.updated === 0 &&
      sameNightStep.changes.removed === 0,
    detail: describeChanges(sameNightStep.changes),
  });
  return firstStep;
}

export interface FreshnessDemo {
  /** The query whose result never landed (its manifest written as the schedule would have, hours ago). */
  lostQueryExecutionId: string;
  outcome: Record<string, unknown>;
  /** The MissingResults value the check published. */
  missingResults: number | undefined;
}

export interface BackfillDemo {
  request: { date: string; days: number };
  /** The start function's answer: the plan, each day's query or place in the queue. */
  start: Record<string, unknown>;
  days: {
    date: string;
    queryExecutionId?: string;
    status: string;
    reconciliation?: Record<string, unknown>;
  }[];
  maxQueriesInFlight: number;
  maxIngestsInFlight: number;
  wallMs: number;
  /** One day's request alone, end to end, just before. */
  oneDayMs: number;
  watermark: string | undefined;
  /** `performance_entries` after the backfill, and what it changed. */
  entries: Record<string, unknown>[];
  changes: EntryChanges;
}

interface PlanAnswer {
  plan?: {
    planId: string;
    maxConcurrentQueries: number;
    days: { date: string; status: string; queryExecutionId?: string; queuePosition?: number }[];
  };
}

/**
 * A manual backfill of every sample day: one query per day, at most MAX_CONCURRENT_QUERIES
 * at once, the rest started by Athena's SUCCEEDED events as earlier days finish; each
 * day's file is ingested and reconciled on its own.
 */
async function runBackfill(run: DemoRun): Promise<BackfillDemo> {
  const { pipeline, checks } = run;
  const { start: first, end } = pipeline.sample.dateRange;
  const request = { date: end, days: daysBetween(first, end) + 1 };
  // One day alone first, for the wall time a day takes end to end.
  const oneDayStartedAt = Date.now();
  const single = (await pipeline.invokeStart({ date: end })) as { queryExecutionId?: string };
  if (single.queryExecutionId) {
    await pipeline.waitForIngest(athenaResultKey(single.queryExecutionId), {
      timeoutMs: run.timeoutMs,
    });
  }
  await pipeline.settle();
  const oneDayMs = Date.now() - oneDayStartedAt;
  pipeline.resetConcurrency();
  const startedAt = Date.now();
  const answer = (await pipeline.invokeStart(request)) as PlanAnswer & Record<string, unknown>;
  const plan = answer.plan;
  const finished = plan ? await waitForPlan(pipeline, plan.planId, run.timeoutMs) : undefined;
  const wallMs = Date.now() - startedAt;
  const { maxQueriesInFlight, maxIngestsInFlight } = pipeline.concurrency();
  const days: BackfillDemo["days"] = [];
  for (const day of finished?.days ?? []) {
    const key = day.queryExecutionId ? athenaResultKey(day.queryExecutionId) : undefined;
    const report = key ? JSON.parse((await pipeline.getText(reportKey(key))) ?? "null") : null;
    days.push({
      date: day.date,
      status: day.status,
      ...(day.queryExecutionId ? { queryExecutionId: day.queryExecutionId } : {}),
      ...(report?.reconciliation ? { reconciliation: report.reconciliation } : {}),
    });
  }
  const watermark = JSON.parse((await pipeline.getText(WATERMARK_KEY)) ?? "null")?.lastCompleteDate;
  const entries = await snapshotEntries(pipeline);
  const changes = compareEntries(run.lastEntries, entries);
  const queued = plan?.days.filter((day) => day.status === "queued").length ?? 0;
  run.print(
    [
      `Backfill of ${request.days} days (start-query ${JSON.stringify(request)}), fanned out: one query per day`,
      row(
        "plan",
        `${(plan?.days.length ?? 0) - queued} started at once, ${queued} queued (MAX_CONCURRENT_QUERIES ${plan?.maxConcurrentQueries ?? "?"})`,
        3,
      ),
      ...days.map((day) =>
        row(
          day.date,
          `${day.status}; ${describeReconciliation(day.reconciliation) ?? "no report"}`,
          3,
        ),
      ),
      row(
        "in flight",
        `at most ${maxQueriesInFlight} queries and ${maxIngestsInFlight} ingests at once; ${wallMs} ms in all (one day alone: ${oneDayMs} ms)`,
        3,
      ),
      row("watermark", watermark ?? "none", 3),
      row(
        "MongoDB",
        `${describeChanges(changes)}${changes.updated > 0 ? " (Athena's numbers again where the reprocess drop had corrected them)" : ""}`,
        3,
      ),
      "",
    ].join("\n"),
  );
  const allComplete =
    days.length === request.days &&
    days.every((day) => day.status === "succeeded" && day.reconciliation?.status === "complete");
  checks.push({
    name: "a multi-day backfill runs one query per day, reconciled complete, within the concurrency limit",
    ok:
      allComplete &&
      new Set(days.map((day) => day.queryExecutionId)).size === request.days &&
      maxQueriesInFlight <= (plan?.maxConcurrentQueries ?? 0) &&
      watermark === end,
    detail: `${days.length} days, at most ${maxQueriesInFlight} queries in flight, watermark ${watermark ?? "none"}`,
  });
  return {
    request,
    start: answer,
    days,
    maxQueriesInFlight,
    maxIngestsInFlight,
    wallMs,
    oneDayMs,
    watermark,
    entries,
    changes,
  };
}

/** The plan once none of its days waits or runs any more. */
async function waitForPlan(
  pipeline: LocalPipeline,
  planId: string,
  timeoutMs: number,
): Promise<FanOutPlan | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await pipeline.settle();
    const state = parseFanOutState(
      JSON.parse((await pipeline.getText(FAN_OUT_KEY)) ?? "null") ?? undefined,
    );
    const plan = state.plans.find((candidate) => candidate.planId === planId);
    const busy = plan?.days.some((day) => ["queued", "starting", "running"].includes(day.status));
    if (!busy || Date.now() > deadline) return plan;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * The freshness schedule's check, with one nightly query whose result never landed: its
 * run manifest says the schedule started it four hours ago (past the 3-hour deadline),
 * and no file or report ever came. The check must name it and count it.
 */
async function runFreshnessCheck(run: DemoRun): Promise<FreshnessDemo> {
  const { pipeline, checks } = run;
  const lostQueryExecutionId = randomUUID();
  const startedAt = new Date(Date.now() - 4 * 3_600_000);
  // A night outside the sample, so no run of the demo covers it (a covering run would count).
  const night = addDays(pipeline.sample.dateRange.start, -1);
  const manifest: RunManifest = {
    version: 1,
    queryExecutionId: lostQueryExecutionId,
    request: {},
    dateRange: { start: night, end: night },
    dryRun: false,
    attempt: 1,
    trigger: { kind: "schedule", id: `lost-${lostQueryExecutionId}` },
    startedAt: startedAt.toISOString(),
  };
  await pipeline.putObject(runManifestKey(lostQueryExecutionId), JSON.stringify(manifest));
  const metricsBefore = pipeline.metrics.length;
  const outcome = (await pipeline.invokeStart(FRESHNESS_CHECK_EVENT)) as FreshnessOutcome;
  const missingResults = pipeline.metrics
    .slice(metricsBefore)
    .find((metric) => metric.name === MISSING_RESULTS)?.value;
  const named = outcome.missing?.map((result) => result.queryExecutionId) ?? [];
  run.print(
    [
      "Freshness check (hourly schedule → start-query), after a nightly query whose file never landed",
      row("missing", named.length > 0 ? named.join(", ") : "none", 3),
      row("metric", `MissingResults ${missingResults ?? "not published"}`, 3),
      "",
    ].join("\n"),
  );
  checks.push({
    name: "the freshness check names the query whose file never landed",
    ok: named.length === 1 && named[0] === lostQueryExecutionId && missingResults === 1,
    detail: `${named.length} missing, MissingResults ${missingResults ?? "none"}`,
  });
  return { lostQueryExecutionId, outcome: { ...outcome }, missingResults };
}

/** Reprocess drops through S3: a preview tagged dryRun=true, then the real one (or the user's file). */
async function runReprocessSteps(
  run: DemoRun,
  drops: Awaited<ReturnType<typeof reprocessDrops>>,
): Promise<void> {
  const { pipeline, timeoutMs, checks } = run;
  for (const drop of drops) {
    const before = pipeline.ingestInvocations.length;
    await pipeline.putObject(drop.key, drop.body, drop.tags);
    const invocation = await pipeline.waitForIngest(drop.key, { timeoutMs, after: before });
    const ingest = await describeIngest(pipeline, drop.key, invocation);
    const step = await run.record({
      name: drop.dryRun ? "reprocess-dry-run" : "reprocess",
      title: drop.title,
      trigger: {
        put: `s3://${pipeline.bucket}/${drop.key}`,
        ...(drop.tags ? { tagging: new URLSearchParams(drop.tags).toString() } : {}),
        bytes: Buffer.byteLength(drop.body),
      },
      ingest,
    });
    checks.push(
      ingestCheck(`the ${drop.dryRun ? "dry-run " : ""}reprocess drop was ingested`, ingest),
    );
    if (drop.dryRun) {
      checks.push({
        name: "the dry run wrote nothing",
        ok: step.changes.inserted === 0 && step.changes.updated === 0 && step.changes.removed === 0,
        detail: describeChanges(step.changes),
      });
    }
  }
}

export interface RemapDemo {
  creativeId: string;
  date: string;
  fromCampaign: string;
  toCampaign: string;
  /** Impressions of the entry the creative left, before and after. */
  oldEntry: { before: number; after: number };
  /** The day's impressions over all automated entries, before and after. */
  dayTotal: { before: number; after: number };
  /** Where the numbers of the creative's new entry came from (the README's provenance query). */
  provenance: { creativeId: string; impressions: number; key?: string; line: number }[];
}

/**
 * Re-maps one creative of an entry with several creatives to another campaign at the same
 * publication, then drops that day's numbers again under reprocess/: its contribution
 * moves (the old entry goes down by it, the day's total stays), and the provenance query
 * names the file and line of each number of its new entry.
 */
async function runRemapStep(run: DemoRun, date: string): Promise<RemapDemo | undefined> {
  const { pipeline, timeoutMs, checks } = run;
  const db = pipeline.db;
  const dayStart = new Date(`${date}T00:00:00.000Z`);
  const entries = await db
    .collection(ENTRIES)
    .find({ source: "automated", dateStart: dayStart })
    .sort({ orderId: 1, itemPath: 1 })
    .toArray();
  const orders = await db
    .collection("publication_insertion_orders")
    .find({ deletedAt: { $exists: false } })
    .toArray();
  // An entry with several creatives (its numbers go down, it stays), and a creative of it
  // whose script is corrected to a campaign the publication has one live order for.
  let pick: { entry: Document; contribution: Document; toCampaign: string } | undefined;
  for (const entry of entries.filter((candidate) => candidate.contributions?.length >= 2)) {
    const contribution = (entry.contributions as Document[])[0];
    const others = orders.filter(
      (order) =>
        order.publicationId === entry.publicationId && order.campaignId !== entry.campaignId,
    );
    let target = others.find(
      (order) => others.filter((other) => other.campaignId === order.campaignId).length === 1,
    );
    if (!target) {
      // No other campaign runs there yet: its order arrives now (a copy of this entry's order).
      const own = orders.find((order) => String(order._id) === entry.orderId);
      if (!own) continue;
      target = { ...own, _id: new ObjectId(), campaignId: `${entry.campaignId}-corrected` };
      await db.collection("publication_insertion_orders").insertOne(target);
    }
    if (contribution) {
      pick = { entry, contribution, toCampaign: String(target.campaignId) };
      break;
    }
  }
  if (!pick) {
    checks.push({ name: "a re-mapped creative moved", ok: false, detail: "no creative to re-map" });
    return undefined;
  }
  const { entry, contribution, toCampaign } = pick;
  const fromCampaign = String(entry.campaignId);
  const total = (list: Document[]) =>
    list.reduce((sum, item) => sum + (item.metrics?.impressions ?? 0), 0);
  const dayBefore = total(entries);
  // Its tracking script corrected to the other campaign (a script wins over the name).
  await db.collection("tracking_scripts").updateOne(
    { creativeId: contribution.creativeId, publicationId: entry.publicationId },
    {
      $set: { campaignId: toCampaign },
      $setOnInsert: {
        channel: contribution.channel ?? "website",
        creative: { name: contribution.itemName },
      },
    },
    { upsert: true },
  );
  // The day as the entries hold it, one row per contribution: the same numbers again.
  const body = stringify(
    entries.flatMap((held) =>
      (held.contributions as Document[]).map((c) => ({
        report_date: date,
        creative_id: c.creativeId,
        publication_code: c.publicationCode,
        channel: c.channel,
        ad_size: c.adSize,
        impressions: c.impressions,
        clicks: c.clicks,
        viewable_impressions: c.viewableImpressions,
        unique_ips: c.uniqueIps,
      })),
    ),
    { header: true, quoted: true },
  );
  const key = `reprocess/${date} after re-mapping ${contribution.creativeId}.csv`;
  const before = pipeline.ingestInvocations.length;
  await pipeline.putObject(key, body);
  const invocation = await pipeline.waitForIngest(key, { timeoutMs, after: before });
  const ingest = await describeIngest(pipeline, key, invocation);
  await run.record({
    name: "remap",
    title: `${contribution.creativeId}'s tracking script corrected from ${fromCampaign} to ${toCampaign}, its day dropped again`,
    trigger: { put: `s3://${pipeline.bucket}/${key}`, bytes: Buffer.byteLength(body) },
    ingest,
  });
  const after = await db
    .collection(ENTRIES)
    .find({ source: "automated", dateStart: dayStart })
    .toArray();
  const oldAfter = after.find(
    (item) => item.orderId === entry.orderId && item.itemPath === entry.itemPath,
  );
  const moved = after.find((item) =>
    (item.contributions as Document[]).some((c) => c.key === contribution.key),
  );
  const provenance = moved ? await provenanceOf(db, moved) : [];
  const result: RemapDemo = {
    creativeId: String(contribution.creativeId),
    date,
    fromCampaign,
    toCampaign,
    oldEntry: { before: entry.metrics.impressions, after: oldAfter?.metrics?.impressions ?? 0 },
    dayTotal: { before: dayBefore, after: total(after) },
    provenance,
  };
  const i = 3;
  run.print(
    [
      row(
        "old entry",
        `${fmt(result.oldEntry.before)} → ${fmt(result.oldEntry.after)} impressions (${contribution.creativeId}'s ${fmt(contribution.impressions)} left it)`,
        i,
      ),
      row(
        "day total",
        `${fmt(result.dayTotal.before)} → ${fmt(result.dayTotal.after)} impressions`,
        i,
      ),
      row(
        "provenance",
        `where the numbers of ${contribution.creativeId}'s new entry came from:`,
        i,
      ),
      ...provenance.map((origin) =>
        row(
          "",
          `${origin.creativeId}  ${fmt(origin.impressions)} impressions  ${origin.key ?? "?"} line ${origin.line}`,
          i + 2,
        ),
      ),
      "",
    ].join("\n"),
  );
  checks.push({
    name: "a re-mapped creative moved, the day's total stayed",
    ok:
      result.oldEntry.after === result.oldEntry.before - contribution.impressions &&
      result.dayTotal.after === result.dayTotal.before &&
      moved !== undefined &&
      moved.orderId !== entry.orderId &&
      (ingest.report?.moved as number | undefined) === 1,
    detail: `old entry ${fmt(result.oldEntry.before)} → ${fmt(result.oldEntry.after)}, day ${fmt(result.dayTotal.before)} → ${fmt(result.dayTotal.after)}`,
  });
  const own = provenance.find((origin) => origin.creativeId === contribution.creativeId);
  checks.push({
    name: "its new entry names the file and line its numbers came from",
    ok: own?.key === key && own.line >= 2,
    detail: own ? `${own.key} line ${own.line}` : "not found",
  });
  return result;
}

/** The README's provenance query: each contribution of an entry, with its run's file. */
async function provenanceOf(db: Db, entry: Document): Promise<RemapDemo["provenance"]> {
  const origins = await db
    .collection(ENTRIES)
    .aggregate(provenancePipeline({ _id: entry._id }))
    .toArray();
  return origins.map((origin) => ({
    creativeId: String(origin.creativeId),
    impressions: Number(origin.impressions),
    ...(origin.file?.key ? { key: String(origin.file.key) } : {}),
    line: Number(origin.line),
  }));
}

export class DemoError extends Error {
  override name = "DemoError";
}

/** The sample data covers the week ending yesterday, or the requested range when it lies elsewhere. */
function sampleRangeFor(
  yesterday: string,
  date: string | undefined,
  days: number | undefined,
): { end: string; days: number } {
  const end = date ?? yesterday;
  const start = addDays(end, -((days ?? 1) - 1));
  if (start >= addDays(yesterday, -6) && end <= yesterday) return { end: yesterday, days: 7 };
  return { end, days: Math.max(7, days ?? 1) };
}

// The rule fires at 06:00 UTC and syncs the day before. The demo plays this morning's
// firing, or before 06:00 fires "now": either way the night it syncs is yesterday.
function scheduleTime(): Date {
  const now = new Date();
  const sixToday = new Date(`${toIsoDate(now)}T06:00:00.000Z`);
  return now >= sixToday ? sixToday : now;
}

function clampDate(date: string, range: { start: string; end: string }): string {
  if (date < range.start) return range.start;
  if (date > range.end) return range.end;
  return date;
}

interface Drop {
  key: string;
  body: string;
  tags?: Record<string, string>;
  dryRun: boolean;
  title: string;
}

async function reprocessDrops(
  options: DemoOptions,
  pipeline: LocalPipeline,
  date: string,
): Promise<Drop[]> {
  let body: string;
  let name: string;
  if (options.reprocessFile) {
    body = await readFile(options.reprocessFile, "utf8");
    name = basename(options.reprocessFile).replace(/\.csv$/i, "");
  } else {
    body = buildReprocessCsv(pipeline.sample, { date }).csv;
    name = `late corrections ${date}`;
  }
  if (options.tags) {
    const dryRun = ["true", "1", "yes"].includes(
      Object.entries(options.tags)
        .find(([tag]) => tag.toLowerCase() === "dryrun")?.[1]
        ?.toLowerCase() ?? "",
    );
    return [
      {
        key: `reprocess/${name}.csv`,
        body,
        tags: options.tags,
        dryRun,
        title: `Reprocess drop tagged ${new URLSearchParams(options.tags).toString()}`,
      },
    ];
  }
  return [
    {
      key: `reprocess/${name} (dry run).csv`,
      body,
      tags: { dryRun: "true" },
      dryRun: true,
      title: "Reprocess drop tagged dryRun=true (a preview: nothing is written)",
    },
    {
      key: `reprocess/${name}.csv`,
      body,
      dryRun: false,
      title: "The same file dropped into reprocess/ for real",
    },
  ];
}

async function startAndIngest(
  pipeline: LocalPipeline,
  event: unknown,
  context: Context,
  timeoutMs: number,
): Promise<StartedIngests> {
  const before = pipeline.ingestInvocations.length;
  const start = (await pipeline.invokeStart(event, context)) as StartOutput & PlanAnswer;
  if (start.success && start.plan) {
    // Fanned out: wait for every day, then each day's ingest that ran for this invoke.
    const plan = await waitForPlan(pipeline, start.plan.planId, timeoutMs);
    const days: IngestOutcome[] = [];
    for (const day of plan?.days ?? []) {
      if (!day.queryExecutionId) continue;
      const key = athenaResultKey(day.queryExecutionId);
      const invocation = pipeline.ingestInvocations
        .slice(before)
        .find((candidate) => pipeline.keysOf(candidate).includes(key));
      if (invocation) days.push(await describeIngest(pipeline, key, invocation));
    }
    return { start, days };
  }
  const queryId = start.queryExecutionId;
  if (!start.success || !queryId) return { start };
  const key = `athena-results/${queryId}.csv`;
  const earlier = pipeline.ingestInvocations
    .slice(0, before)
    .some((invocation) => pipeline.keysOf(invocation).includes(key));
  if (earlier) {
    // An idempotent repeat returns the query that already ran, and Athena writes no new
    // file. Let everything settle, then look: an ingest now would be a second run.
    await pipeline.settle();
    const again = pipeline.ingestInvocations
      .slice(before)
      .find((invocation) => pipeline.keysOf(invocation).includes(key));
    return again ? { start, ingest: await describeIngest(pipeline, key, again) } : { start };
  }
  const invocation = await pipeline.waitForIngest(key, { timeoutMs, after: before });
  // The start function's SUCCEEDED run may record the reconciliation after the ingest.
  await pipeline.settle();
  return { start, ingest: await describeIngest(pipeline, key, invocation) };
}

interface StartedIngests {
  start: StartOutput;
  ingest?: IngestOutcome;
  days?: IngestOutcome[];
}

/** The step's ingests: its one file's, or each fanned-out day's. */
function ingestsOf(started: StartedIngests): IngestOutcome[] {
  return started.days ?? (started.ingest ? [started.ingest] : []);
}

/** Ingested: the one file, or every day of a fanned-out request. */
function ingestsCheck(name: string, started: StartedIngests): DemoCheck {
  const plan = (started.start as PlanAnswer).plan;
  if (!plan) return ingestCheck(name, started.ingest);
  const days = started.days ?? [];
  const failed = days.filter((day) => day.onFailure);
  return {
    name,
    ok: days.length === plan.days.length && failed.length === 0,
    detail: `${days.length} of ${plan.days.length} days' files ingested${failed.length > 0 ? `, ${failed.length} failed` : ""}`,
  };
}

async function describeIngest(
  pipeline: LocalPipeline,
  key: string,
  invocation: IngestInvocation,
): Promise<IngestOutcome> {
  const report = await pipeline.getText(reportKey(key));
  const rejects = await pipeline.getText(rejectsKey(key));
  return {
    key,
    attempts: invocation.attempts.length,
    ...(invocation.result !== undefined ? { result: invocation.result } : {}),
    ...(invocation.onFailure ? { onFailure: invocation.onFailure } : {}),
    reportKey: reportKey(key),
    ...(report !== undefined ? { report: JSON.parse(report) as Record<string, unknown> } : {}),
    ...(rejects !== undefined
      ? { rejectsKey: rejectsKey(key), rejectedRows: countRejectedRows(report, rejects) }
      : {}),
  };
}

// The report counts the rejected rows; lines of the object are only a fallback.
function countRejectedRows(report: string | undefined, rejects: string): number {
  const counted = report
    ? (JSON.parse(report) as { rejects?: { rows?: number } }).rejects?.rows
    : undefined;
  return (
    counted ?? Math.max(0, rejects.split(/\r?\n/).filter((line) => line.length > 0).length - 1)
  );
}

async function snapshotEntries(pipeline: LocalPipeline): Promise<Record<string, unknown>[]> {
  const documents = await pipeline.db
    .collection(ENTRIES)
    .find()
    .sort({ dateStart: 1, orderId: 1, itemPath: 1 })
    .toArray();
  return documents.map(toPlain);
}

function toPlain(document: WithId<Document>): Record<string, unknown> {
  return JSON.parse(JSON.stringify(document)) as Record<string, unknown>;
}

function entryKey(entry: Record<string, unknown>): string {
  return JSON.stringify([entry.orderId, entry.itemPath, entry.dateStart, entry.source]);
}

function compareEntries(
  before: Record<string, unknown>[],
  after: Record<string, unknown>[],
): EntryChanges {
  const old = new Map(before.map((entry) => [entryKey(entry), JSON.stringify(entry)]));
  const changes: EntryChanges = { inserted: 0, updated: 0, unchanged: 0, removed: 0 };
  const seen = new Set<string>();
  for (const entry of after) {
    const key = entryKey(entry);
    seen.add(key);
    const previous = old.get(key);
    if (previous === undefined) changes.inserted++;
    else if (previous === JSON.stringify(entry)) changes.unchanged++;
    else changes.updated++;
  }
  changes.removed = [...old.keys()].filter((key) => !seen.has(key)).length;
  return changes;
}

function ingestCheck(name: string, ingest: IngestOutcome | undefined): DemoCheck {
  if (!ingest) return { name, ok: false, detail: "no ingest ran" };
  if (ingest.onFailure) {
    return {
      name,
      ok: false,
      detail: `failed ${ingest.attempts} times: ${ingest.onFailure.responsePayload.errorMessage}`,
    };
  }
  return { name, ok: true, detail: plural(ingest.attempts, "attempt") };
}

function describeChanges(changes: EntryChanges): string {
  return `${changes.inserted} inserted, ${changes.updated} updated, ${changes.unchanged} unchanged, ${changes.removed} removed`;
}

// ---------------------------------------------------------------------------
// Human output

function header(pipeline: LocalPipeline): string {
  const { sample } = pipeline;
  const orders = sample.fixtures.publication_insertion_orders;
  return [
    "tracking-sync demo: the real handlers against local stand-ins; nothing leaves this machine",
    "",
    row("MongoDB", `${pipeline.endpoints.mongoUri}  database ${pipeline.dbName}`),
    row("S3", `${pipeline.endpoints.s3}  bucket ${pipeline.bucket}`),
    row(
      "Athena",
      `${pipeline.endpoints.athena}  workgroup ${pipeline.workGroup} → s3://${pipeline.bucket}/athena-results/`,
    ),
    row(
      "Sample data",
      `${sample.rows.length} rows of ad_tracking.daily_aggregates, ${sample.dateRange.start} … ${sample.dateRange.end}`,
    ),
    row(
      "",
      `${sample.fixtures.publications.length} publications, ${orders.length} insertion orders (${orders.filter((o) => o.deletedAt).length} soft-deleted), ${sample.fixtures.tracking_scripts.length} tracking scripts`,
    ),
    "",
  ].join("\n");
}

function row(label: string, text: string, indent = 0): string {
  return `${" ".repeat(indent)}${label.padEnd(14)}${text}`;
}

function describeStep(
  index: number,
  step: DemoStep,
  pipeline: LocalPipeline,
  before: Record<string, unknown>[],
): string {
  const lines = [`${index}. ${step.title}`];
  const i = 3;
  const plan = (step.start as (StartOutput & PlanAnswer) | undefined)?.plan;
  if (step.start && plan) {
    const count = (status: string) => plan.days.filter((day) => day.status === status).length;
    const running = count("running");
    const queued = count("queued");
    const done = plan.days.length - running - queued;
    lines.push(
      row(
        "plan",
        `${plan.days.length} days, one query each: ${running} started at once, ${queued} queued${done > 0 ? `, ${done} already done` : ""} (MAX_CONCURRENT_QUERIES ${plan.maxConcurrentQueries})${step.start.dryRun ? "  (dry run)" : ""}`,
        i,
      ),
    );
    for (const day of step.days ?? []) {
      const summary = summarizeReport(day.report);
      const verdict = describeReconciliation(day.report?.reconciliation) ?? "no verdict";
      const date = String(
        (day.report?.dateRange as { start?: string } | undefined)?.start ?? day.key,
      );
      lines.push(
        row(
          date,
          `${summary ? `${summary.rows} read, ${summary.synced} synced; ` : ""}${verdict}`,
          i,
        ),
      );
    }
    if ((step.days ?? []).length === 0) {
      lines.push(row("ingest", "none: every day's query had already run, no new file", i));
    }
  } else if (step.start) {
    const { start } = step;
    if (start.success) {
      lines.push(
        row(
          "query",
          `${start.queryExecutionId}  ${start.dateRange?.start} … ${start.dateRange?.end}${start.dryRun ? "  (dry run)" : ""}`,
          i,
        ),
      );
    } else {
      lines.push(row("refused", start.error ?? "", i));
    }
  }
  if (step.trigger.put) {
    lines.push(
      row(
        "PUT",
        `${step.trigger.put}${step.trigger.tagging ? `  tagging ${step.trigger.tagging}` : ""}`,
        i,
      ),
    );
  }
  const ingest = step.ingest;
  if (plan) {
    // Each day's line above.
  } else if (!ingest) {
    if (step.start)
      lines.push(row("ingest", "none: Athena returned the query it already ran, no new file", i));
  } else {
    if (step.start) lines.push(row("file landed", `s3://${pipeline.bucket}/${ingest.key}`, i));
    lines.push(...describeReport(ingest, pipeline, i));
  }
  lines.push(row("MongoDB", describeChanges(step.changes), i));
  if (step.name === "nightly" || step.name === "manual") {
    lines.push(...describeEntries(step.entries, i));
  }
  if (step.changes.updated > 0) lines.push(...describeUpdates(before, step.entries, i));
  lines.push("");
  return lines.join("\n");
}

function describeReport(ingest: IngestOutcome, pipeline: LocalPipeline, indent: number): string[] {
  const lines: string[] = [];
  const attempts = plural(ingest.attempts, "attempt");
  if (ingest.onFailure) {
    lines.push(
      row(
        "ingest",
        `FAILED after ${attempts}: ${ingest.onFailure.responsePayload.errorMessage}`,
        indent,
      ),
    );
  }
  const summary = summarizeReport(ingest.report);
  if (summary) {
    lines.push(
      row(
        "rows",
        `${summary.rows} read: ${summary.synced} synced, ${summary.skipped} skipped, ${plural(summary.errors, "error")}  (${attempts}, ${summary.durationMs} ms)`,
        indent,
      ),
    );
    if (summary.skippedByReason.length > 0) {
      lines.push(row("  skipped", formatReasons(summary.skippedByReason), indent));
    }
    if (summary.errorsByReason.length > 0) {
      lines.push(row("  errors", formatReasons(summary.errorsByReason), indent));
    }
    lines.push(row(summary.dryRun ? "would write" : "entries", summary.writes, indent));
    if (summary.fieldChanges.length > 0) {
      lines.push(row("  fields", formatReasons(summary.fieldChanges), indent));
    }
  }
  const reconciliation = describeReconciliation(ingest.report?.reconciliation);
  if (reconciliation) lines.push(row("reconciled", reconciliation, indent));
  lines.push(row("report", `s3://${pipeline.bucket}/${ingest.reportKey}`, indent));
  if (ingest.rejectsKey) {
    lines.push(
      row(
        "rejects",
        `s3://${pipeline.bucket}/${ingest.rejectsKey}  (${plural(ingest.rejectedRows ?? 0, "row")})`,
        indent,
      ),
    );
  }
  return lines;
}

/** Records read against Athena's OutputRows, and which function said so. */
function describeReconciliation(value: unknown): string | undefined {
  const verdict = value as Reconciliation | undefined;
  if (verdict === undefined) return undefined;
  switch (verdict.status) {
    case "not-reconciled":
      return `no: ${verdict.reason}`;
    case "pending":
      return `pending: ${verdict.read} records read, Athena's count not recorded yet`;
    default:
      return `${verdict.status}: ${verdict.read} records read, Athena returned ${verdict.expected} rows (recorded by ${verdict.recordedBy === "start" ? "start-query" : "the ingest"})`;
  }
}

/** A check that Athena's result was loaded whole (the nightly file's verdict). */
function reconciliationCheck(ingests: IngestOutcome[]): DemoCheck {
  const verdicts = ingests.map(
    (ingest) => ingest.report?.reconciliation as Reconciliation | undefined,
  );
  const [only] = verdicts;
  return {
    name: "every row Athena returned was read (reconciled with OutputRows)",
    ok: verdicts.length > 0 && verdicts.every((verdict) => verdict?.status === "complete"),
    detail:
      verdicts.length === 1
        ? (describeReconciliation(only) ?? "no verdict")
        : `${verdicts.filter((verdict) => verdict?.status === "complete").length} of ${verdicts.length} days complete`,
  };
}

function formatReasons(reasons: [string, number][]): string {
  return reasons.map(([reason, count]) => `${reason} ${count}`).join(" · ");
}

interface ReportSummary {
  rows: number;
  synced: number;
  skipped: number;
  errors: number;
  durationMs: number;
  dryRun: boolean;
  skippedByReason: [string, number][];
  errorsByReason: [string, number][];
  writes: string;
  fieldChanges: [string, number][];
}

/** The parts of the ingest's run report (`reports/<key>.json`) the demo shows. */
function summarizeReport(report: Record<string, unknown> | undefined): ReportSummary | undefined {
  if (!report) return undefined;
  const stats = (report.stats ?? {}) as Record<string, number>;
  const counts = (value: unknown): [string, number][] =>
    Object.entries((value ?? {}) as Record<string, number>).sort(
      (a, b) => b[1] - a[1] || a[0].localeCompare(b[0]),
    );
  const count = (name: string) => Number(report[name] ?? 0);
  return {
    rows: stats.rowsFromAthena ?? 0,
    synced: stats.synced ?? 0,
    skipped: stats.skipped ?? 0,
    errors: stats.errors ?? 0,
    durationMs: Number(report.duration ?? 0),
    dryRun: report.dryRun === true,
    skippedByReason: counts(report.skippedByReason),
    errorsByReason: counts(report.errorsByReason),
    writes: `${count("inserted")} inserted, ${count("updated")} updated, ${count("unchanged")} unchanged${
      count("moved") > 0
        ? `; ${count("moved")} moved from another entry, ${count("deleted")} deleted`
        : ""
    }`,
    fieldChanges: counts(report.fieldChanges),
  };
}

function describeEntries(entries: Record<string, unknown>[], indent: number): string[] {
  // The entries with the most creatives first: they show numbers being combined.
  const shown = [...entries]
    .sort(
      (a, b) =>
        contributionCount(b) - contributionCount(a) ||
        String(a.publicationName).localeCompare(String(b.publicationName)),
    )
    .slice(0, 3);
  if (shown.length === 0) return [];
  const lines = [row("documents", `${shown.length} of ${entries.length} in ${ENTRIES}:`, indent)];
  for (const entry of shown) {
    const metrics = (entry.metrics ?? {}) as Record<string, number>;
    const count = contributionCount(entry);
    lines.push(
      `${" ".repeat(indent + 2)}${entry.publicationName} · ${entry.campaignId} · ${entry.itemPath} · ${String(entry.dateStart).slice(0, 10)}`,
      `${" ".repeat(indent + 4)}impressions ${fmt(metrics.impressions)}  clicks ${fmt(metrics.clicks)}  ctr ${pct(metrics.ctr)}  viewability ${pct(metrics.viewability)}  reach ${fmt(metrics.reach)}${count > 1 ? `  (${count} creatives)` : ""}`,
    );
  }
  return lines;
}

/**
 * Entries whose stored values changed in the step: impressions before and after, and
 * which creatives' shares changed and which were kept as stored.
 */
function describeUpdates(
  before: Record<string, unknown>[],
  after: Record<string, unknown>[],
  indent: number,
): string[] {
  const old = new Map(before.map((entry) => [entryKey(entry), entry]));
  const pad = " ".repeat(indent + 4);
  const lines: string[] = [];
  for (const entry of after) {
    const previous = old.get(entryKey(entry));
    if (!previous || JSON.stringify(previous) === JSON.stringify(entry)) continue;
    const was = (previous.metrics ?? {}) as Record<string, number>;
    const now = (entry.metrics ?? {}) as Record<string, number>;
    const shares = new Map(contributionsOf(previous).map((c) => [c.key, JSON.stringify(c)]));
    const changed = contributionsOf(entry).filter((c) => shares.get(c.key) !== JSON.stringify(c));
    const kept = contributionsOf(entry).filter((c) => shares.get(c.key) === JSON.stringify(c));
    const held = new Set(contributionsOf(entry).map((c) => c.key));
    const left = contributionsOf(previous).filter((c) => !held.has(c.key));
    const what = [
      ...(changed.length > 0 ? [`changed ${creativeNames(changed)}`] : []),
      ...(left.length > 0 ? [`moved out ${creativeNames(left)}`] : []),
      ...(kept.length > 0 ? [`kept ${creativeNames(kept)}`] : []),
    ];
    lines.push(
      `${" ".repeat(indent + 2)}${entry.publicationName} · ${entry.campaignId} · ${entry.itemPath} · ${String(entry.dateStart).slice(0, 10)}`,
      `${pad}impressions ${fmt(was.impressions)} → ${fmt(now.impressions)}  clicks ${fmt(was.clicks)} → ${fmt(now.clicks)}`,
      `${pad}${what.join("; ")}`,
    );
  }
  const count = lines.length / 3;
  return [row("updated", `${count} ${count === 1 ? "entry" : "entries"}:`, indent), ...lines];
}

interface ContributionView {
  key: string;
  creativeId?: string;
}

function contributionsOf(entry: Record<string, unknown>): ContributionView[] {
  return Array.isArray(entry.contributions) ? (entry.contributions as ContributionView[]) : [];
}

function creativeNames(contributions: ContributionView[]): string {
  return contributions.map((c) => c.creativeId ?? c.key).join(", ") || "-";
}

function contributionCount(entry: Record<string, unknown>): number {
  return Array.isArray(entry.contributions) ? entry.contributions.length : 1;
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

function fmt(value: number | undefined): string {
  return value === undefined ? "-" : value.toLocaleString("en-US");
}

function pct(value: number | undefined): string {
  return value === undefined ? "-" : `${value.toFixed(2)} %`;
}

function describeChecks(result: DemoResult): string {
  const lines = ["Checks"];
  const width = Math.max(...result.checks.map((check) => check.name.length));
  for (const check of result.checks) {
    lines.push(`   ${check.ok ? "✓" : "✗"} ${check.name.padEnd(width)}  ${check.detail}`);
  }
  const namespaces = new Set(result.metrics.map((m) => m.namespace));
  lines.push(
    "",
    row(
      "CloudWatch",
      result.metrics.length === 0
        ? "no data points received"
        : `${plural(result.metrics.length, "data point")} received in ${[...namespaces].join(", ")}`,
    ),
    row(
      "On-failure",
      result.onFailure.length === 0 ? "empty" : plural(result.onFailure.length, "record"),
    ),
    "",
  );
  return lines.join("\n");
}

// ---------------------------------------------------------------------------
// Command line

const USAGE = `usage: npm run demo -- [options]

  --date YYYY-MM-DD     sync this day (a manual SyncEvent instead of the schedule event)
  --days N              sync N days ending on --date (default: yesterday)
  --publication CODE    only this publication (e.g. chireader)
  --dry-run             ask for a dry run: resolve everything, write nothing
  --reprocess FILE      drop FILE into reprocess/ instead of the generated CSV
  --tag KEY=VALUE       tag that drop (repeatable), e.g. --tag dryRun=true
  --seed N              another set of sample numbers
  --json                print the results as one JSON document, nothing else on stdout
  --verbose             show the handlers' JSON log lines (on stderr)
  -h, --help`;

export function parseDemoArgs(
  argv: string[],
): DemoOptions & { json: boolean; verbose: boolean; help: boolean } {
  const { values } = parseArgs({
    args: argv,
    options: {
      date: { type: "string" },
      days: { type: "string" },
      publication: { type: "string" },
      "dry-run": { type: "boolean" },
      reprocess: { type: "string" },
      tag: { type: "string", multiple: true },
      seed: { type: "string" },
      json: { type: "boolean", default: false },
      verbose: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const integer = (name: string, raw: string | undefined): number | undefined => {
    if (raw === undefined) return undefined;
    if (!/^\d+$/.test(raw)) throw new DemoError(`--${name} must be a whole number, got "${raw}"`);
    return Number(raw);
  };
  let tags: Record<string, string> | undefined;
  for (const tag of values.tag ?? []) {
    const [key, ...rest] = tag.split("=");
    if (!key || rest.length === 0) throw new DemoError(`--tag must be KEY=VALUE, got "${tag}"`);
    tags = { ...tags, [key]: rest.join("=") };
  }
  if (tags && !values.reprocess) throw new DemoError("--tag goes with --reprocess FILE");
  const days = integer("days", values.days);
  const seed = integer("seed", values.seed);
  return {
    ...(values.date !== undefined ? { date: values.date } : {}),
    ...(days !== undefined ? { days } : {}),
    ...(values.publication !== undefined ? { publication: values.publication } : {}),
    ...(values["dry-run"] ? { dryRun: true } : {}),
    ...(values.reprocess !== undefined ? { reprocessFile: values.reprocess } : {}),
    ...(tags ? { tags } : {}),
    ...(seed !== undefined ? { seed } : {}),
    json: values.json,
    verbose: values.verbose,
    help: values.help,
  };
}

async function main(argv: string[]): Promise<number> {
  let args: ReturnType<typeof parseDemoArgs>;
  try {
    args = parseDemoArgs(argv);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const { json, verbose, help: _help, ...options } = args;
  // Handler logs: live on stderr with --verbose, otherwise kept (the tail is shown on failure).
  const logTail: string[] = [];
  const logWriter = verbose
    ? (line: string) => process.stderr.write(`${line}\n`)
    : (line: string) => {
        logTail.push(line);
        if (logTail.length > 40) logTail.shift();
      };
  try {
    const result = await runDemo({
      ...options,
      logWriter,
      ...(json ? {} : { print: (text: string) => process.stdout.write(`${text}\n`) }),
    });
    if (json) await writeOut(`${JSON.stringify(result, null, 2)}\n`);
    else process.stdout.write("Stopped every stand-in; temporary files removed.\n");
    return result.success ? 0 : 1;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (json) await writeOut(`${JSON.stringify({ success: false, error: message }, null, 2)}\n`);
    process.stderr.write(`demo failed: ${message}\n`);
    if (!verbose && logTail.length > 0) {
      process.stderr.write(`last handler log lines:\n${logTail.join("\n")}\n`);
    }
    return 1;
  }
}

// A large write to a pipe may still be queued; exiting before it drains would cut the JSON.
function writeOut(text: string): Promise<void> {
  return new Promise((resolve, reject) =>
    process.stdout.write(text, (error) => (error ? reject(error) : resolve())),
  );
}

function exitAfterFlush(code: number): void {
  process.stdout.write("", () => process.stderr.write("", () => process.exit(code)));
}

// Run as a script (not when imported by the tests). Exit explicitly once the output is
// flushed: a client socket still closing must not hold the process.
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  main(process.argv.slice(2)).then(exitAfterFlush);
}
