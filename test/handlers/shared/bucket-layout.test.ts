import { describe, expect, it } from "vitest";
import { checkpointKey, rejectsPartKey } from "../../../handlers/shared/bucket-layout";

describe("continuation keys", () => {
  it("names rejects parts beside the rejects object, never under an ingest prefix", () => {
    expect(rejectsPartKey("reprocess/big.csv", "c", 2)).toBe("rejects/reprocess/big.csv.part-c-2");
  });

  it("keeps a continued file's checkpoint under state/", () => {
    expect(checkpointKey("reprocess/big.csv")).toBe("state/checkpoints/reprocess/big.csv.json");
  });
});
