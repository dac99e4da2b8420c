import { completeThrough, findDay, markComplete } from "./fan-out";
import type { FanOutStore } from "./fan-out-store";
import { completesDays, type RunManifest } from "./run-manifest";
import type { WatermarkAdvance, WatermarkStore } from "./watermark-store";

export interface CompletionStores {
  watermark: WatermarkStore;
  fanOut: FanOutStore;
}

export type CompletionOutcome = WatermarkAdvance | { moved: false; reason: string };

/**
 * A real run's result was loaded whole (reconciled complete, or not reconcilable and
 * synced): moves the watermark to the run's last day. A day of a fanned-out request
 * moves it only to the last day D of its request such that every day up to D is
 * complete, so days finishing out of order never let catch-up skip one. Runs of one
 * publication and dry runs complete no days.
 */
export async function completeRun(
  stores: CompletionStores,
  manifest: RunManifest,
  sourceKey: string,
): Promise<CompletionOutcome> {
  if (manifest.dryRun) return { moved: false, reason: "dry run" };
  if (!completesDays(manifest)) {
    return { moved: false, reason: "the run synced one publication, not whole days" };
  }
  let lastCompleteDate = manifest.dateRange.end;
  const { planId } = manifest;
  if (planId !== undefined) {
    const ref = { planId, date: manifest.dateRange.start };
    const through = await stores.fanOut.update((state) => {
      if (!findDay(state, ref)) return { tracked: false as const };
      markComplete(state, ref);
      const plan = state.plans.find((candidate) => candidate.planId === planId);
      return { tracked: true as const, through: plan && completeThrough(plan) };
    });
    if (!through.tracked) {
      return { moved: false, reason: `day ${ref.date} of request ${planId} is no longer tracked` };
    }
    if (through.through === undefined) {
      return { moved: false, reason: "earlier days of the request are not complete yet" };
    }
    lastCompleteDate = through.through;
  }
  return stores.watermark.advance({
    lastCompleteDate,
    queryExecutionId: manifest.queryExecutionId,
    sourceKey,
  });
}
