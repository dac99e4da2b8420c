import { describe, expect, it } from "vitest";
import { checkpointKey, rejectsPartKey } from "../../../handlers/shared/bucket-layout";

describe("continuation keys", () => {
  it("names rejects parts under state/checkpoints/ (an earlier version's beside the rejects object), never under an ingest prefix", () => {
    const chain = "0b6f1a2c-3d4e-4f50-8a6b-7c8d9e0f1a2b";
    expect(rejectsPartKey("reprocess/big.csv", `${chain}-2-0a1b`)).toBe(
      `state/checkpoints/reprocess/big.csv.rejects-${chain}-2-0a1b`,
    );
    // As an earlier version numbered and stored it.
    expect(rejectsPartKey("reprocess/big.csv", `${chain}-2`)).toBe(
      `rejects/reprocess/big.csv.part-${chain}-2`,
    );
  });

  it("keeps a continued file's checkpoint under state/", () => {
    expect(checkpointKey("reprocess/big.csv")).toBe("state/checkpoints/reprocess/big.csv.json");
  });
});
