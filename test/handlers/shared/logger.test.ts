import { describe, expect, it } from "vitest";
import { createLogger } from "../../../handlers/shared/logger";

function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ bucket: "b" }, { write: (line) => lines.push(JSON.parse(line)) });
  return { lines, logger };
}

describe("createLogger", () => {
  it("writes one JSON line carrying the bound context and the call's fields", () => {
    const { lines, logger } = capture();

    logger.child({ key: "athena-results/x.csv" }).info("object done", { rows: 3 });

    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: "info",
      message: "object done",
      bucket: "b",
      key: "athena-results/x.csv",
      rows: 3,
    });
  });

  it("never prints a MongoDB connection string, even inside an error", () => {
    const { lines, logger } = capture();

    logger.error("connect failed", {
      error: new Error("bad uri mongodb+srv://user:hunter2@cluster0.example.net/db"),
    });

    const text = JSON.stringify(lines);
    expect(text).not.toContain("hunter2");
    expect(text).toContain("mongodb://[redacted]");
  });
});
