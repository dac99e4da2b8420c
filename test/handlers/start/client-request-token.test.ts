import { describe, expect, it } from "vitest";
import { clientRequestToken, type TokenInput } from "../../../handlers/start/client-request-token";

const base: TokenInput = {
  trigger: { kind: "retry", id: "aaaaaaaa-0000-4000-8000-000000000001" },
  dateRange: { start: "2025-12-09", end: "2025-12-10" },
  publicationCode: "wbez",
  dryRun: false,
  attempt: 2,
};

describe("clientRequestToken", () => {
  it("is stable for the same input", () => {
    expect(clientRequestToken(base)).toBe(
      clientRequestToken({ ...base, trigger: { ...base.trigger } }),
    );
  });

  it("changes with each part of the input", () => {
    const variants: TokenInput[] = [
      { ...base, trigger: { kind: "manual", id: base.trigger.id } },
      { ...base, trigger: { kind: "retry", id: "aaaaaaaa-0000-4000-8000-000000000002" } },
      { ...base, dateRange: { start: "2025-12-08", end: "2025-12-10" } },
      { ...base, dateRange: { start: "2025-12-09", end: "2025-12-11" } },
      { ...base, publicationCode: undefined },
      { ...base, dryRun: true },
      { ...base, attempt: 3 },
    ];
    const tokens = new Set([base, ...variants].map(clientRequestToken));
    expect(tokens.size).toBe(variants.length + 1);
  });

  it("treats publication codes case-insensitively, as the query does", () => {
    expect(clientRequestToken({ ...base, publicationCode: "WBEZ" })).toBe(clientRequestToken(base));
  });

  it("fits Athena's 32-128 character limit", () => {
    expect(clientRequestToken(base)).toMatch(/^[0-9a-f]{64}$/);
  });
});
