import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import type { RejectsProgress } from "../../../handlers/ingest/continuation";
import { ObjectReplacedError } from "../../../handlers/ingest/errors";
import { FileRejects, type RejectedRow, RejectsFile } from "../../../handlers/ingest/rejects";
import { rejectsKey, rejectsPartKey } from "../../../handlers/shared/bucket-layout";
import { createLogger } from "../../../handlers/shared/logger";
import { BUCKET, FakeArtifactStore, objectRef } from "./fakes";

const SOURCE_KEY = "reprocess/big.csv";
const CHAIN = "0b6f1a2c-3d4e-4f50-8a6b-7c8d9e0f1a2b";
const HEADER = ["report_date", "creative_id", "impressions"];
const HEADER_LINE =
  '"report_date","creative_id","impressions","line","last_line","reject_reason","raw_record"\n';
const NOTHING_EARLIER: RejectsProgress = { rows: 0, parts: [] };
/** The names two hand-overs give their parts (`<chain>-<invocation>-<nonce>`). */
const FIRST = `${CHAIN}-1-0a0a0a`;
const SECOND = `${CHAIN}-2-0b0b0b`;

function row(line: number, reason = "invalid-impressions"): RejectedRow {
  return { line, lastLine: line, fields: ["2025-12-10", `cr_${line}`, "-5"], reason };
}
const rowLine = (line: number, reason = "invalid-impressions") =>
  `"2025-12-10","cr_${line}","-5",${line},${line},"${reason}",\n`;

function setup() {
  const store = new FakeArtifactStore();
  const object = objectRef(SOURCE_KEY);
  const artifacts = store.store(object);
  const rejectsOf = (earlier: RejectsProgress) =>
    new FileRejects(artifacts, HEADER, earlier, SOURCE_KEY);
  const partText = (name: string) => store.text(BUCKET, rejectsPartKey(SOURCE_KEY, name));
  return { store, object, rejectsOf, partText };
}

/** Two invocations that each handed over their rows as a part: 2 rows, then 1. */
async function twoPartsHandedOver(rejectsOf: ReturnType<typeof setup>["rejectsOf"]) {
  const first = rejectsOf(NOTHING_EARLIER);
  await first.add([row(3), row(4)]);
  const afterFirst = await first.handOver(CHAIN, FIRST);
  const second = rejectsOf(afterFirst);
  await second.add([row(9)]);
  return second.handOver(CHAIN, SECOND);
}

describe("RejectsFile", () => {
  it("writes the original columns, then line and reason, keeping NULL apart from the empty string", async () => {
    const file = new RejectsFile(["a", "b", "c"]);

    await file.add([
      { line: 2, lastLine: 2, fields: ["x", null, ""], reason: "missing-creative-id" },
    ]);
    const closed = await file.close();
    const text = closed ? await readFile(closed.path, "utf8") : undefined;
    await file.discard();

    expect(text).toBe(
      '"a","b","c","line","last_line","reject_reason","raw_record"\n"x",,"",2,2,"missing-creative-id",\n',
    );
    expect(closed?.size).toBe(Buffer.byteLength(text ?? ""));
    expect(file.count).toBe(1);
  });

  it("drops an input's own line and reject_reason columns, so a re-rejected row keeps one of each", async () => {
    const file = new RejectsFile(["a", "LINE", "reject_reason"]);

    await file.add([
      { line: 7, lastLine: 7, fields: ["x", "3", "old"], reason: "order-not-found" },
    ]);
    const closed = await file.close();
    const text = closed ? await readFile(closed.path, "utf8") : undefined;
    await file.discard();

    expect(text).toBe(
      '"a","line","last_line","reject_reason","raw_record"\n"x",7,7,"order-not-found",\n',
    );
  });

  it("drops an input's own last_line and raw_record columns too", async () => {
    const file = new RejectsFile(["a", "line", "Last_Line", "reject_reason", "raw_record"]);

    await file.add([
      { line: 7, lastLine: 7, fields: ["x", "3", "3", "old", null], reason: "order-not-found" },
    ]);
    const closed = await file.close();
    const text = closed ? await readFile(closed.path, "utf8") : undefined;
    await file.discard();

    expect(text).toBe(
      '"a","line","last_line","reject_reason","raw_record"\n"x",7,7,"order-not-found",\n',
    );
  });

  it("keeps a record's whole text, line breaks and quotes included, beside its cut fields", async () => {
    const file = new RejectsFile(["a", "b", "c"]);
    const raw = '"1","2","3\n"4","5","6"';

    await file.add([
      {
        line: 2,
        lastLine: 3,
        fields: ["1", "2", '"3\n"4"', "5", "6"],
        reason: "wrong-field-count",
        raw,
      },
    ]);
    const closed = await file.close();
    const text = closed ? await readFile(closed.path, "utf8") : undefined;
    await file.discard();

    expect(text).toBe(
      '"a","b","c","line","last_line","reject_reason","raw_record"\n' +
        '"1","2","""3\n""4""",2,3,"wrong-field-count","""1"",""2"",""3\n""4"",""5"",""6"""\n',
    );
  });

  it("closes to nothing when no row was added", async () => {
    const file = new RejectsFile(HEADER);

    const closed = await file.close();

    expect(closed).toBeUndefined();
  });
});

describe("FileRejects.finish", () => {
  it("removes a stale rejects object and returns undefined when no row was rejected", async () => {
    const { store, object, rejectsOf } = setup();
    store.put(BUCKET, rejectsKey(SOURCE_KEY), "an earlier run's rejects");

    const rows = await rejectsOf(NOTHING_EARLIER).finish(undefined);

    expect(rows).toBeUndefined();
    expect(store.rejects(object)).toBeUndefined();
    expect(store.count("writeRejects")).toBe(0);
  });

  it("writes one object with the header and every rejected row, in the order added", async () => {
    const { store, object, rejectsOf } = setup();
    const rejects = rejectsOf(NOTHING_EARLIER);
    await rejects.add([row(2), row(5, "order-not-found")]);

    const rows = await rejects.finish(undefined);

    expect(rows).toBe(2);
    expect(store.rejects(object)).toBe(HEADER_LINE + rowLine(2) + rowLine(5, "order-not-found"));
    expect(store.keys(BUCKET)).toEqual([rejectsKey(SOURCE_KEY)]);
  });

  it("joins the earlier parts in order, then its own rows, under one header", async () => {
    const { store, object, rejectsOf } = setup();
    const progress = await twoPartsHandedOver(rejectsOf);
    const last = rejectsOf(progress);
    await last.add([row(12)]);

    const rows = await last.finish(CHAIN);

    expect(rows).toBe(4);
    expect(store.rejects(object)).toBe(
      HEADER_LINE + rowLine(3) + rowLine(4) + rowLine(9) + rowLine(12),
    );
  });

  it("writes the earlier parts alone when the last invocation rejected nothing", async () => {
    const { store, object, rejectsOf } = setup();
    const progress = await twoPartsHandedOver(rejectsOf);

    const rows = await rejectsOf(progress).finish(CHAIN);

    expect(rows).toBe(3);
    expect(store.rejects(object)).toBe(HEADER_LINE + rowLine(3) + rowLine(4) + rowLine(9));
  });

  it("fails with ObjectReplacedError when a part is not the size the hand-over recorded", async () => {
    const { store, object, rejectsOf } = setup();
    const progress = await twoPartsHandedOver(rejectsOf);
    store.put(BUCKET, rejectsPartKey(SOURCE_KEY, FIRST), `${HEADER_LINE}${rowLine(3)}`);

    const finishing = rejectsOf(progress).finish(CHAIN);

    await expect(finishing).rejects.toBeInstanceOf(ObjectReplacedError);
    await expect(finishing).rejects.toThrow(
      /rejects-0b6f1a2c-3d4e-4f50-8a6b-7c8d9e0f1a2b-1-0a0a0a has/,
    );
    expect(store.rejects(object)).toBeUndefined();
  });
});

describe("FileRejects.handOver", () => {
  it("uploads this invocation's rows, with the header, as the chain's first part, under the hand-over's name", async () => {
    const { store, rejectsOf, partText } = setup();
    const rejects = rejectsOf(NOTHING_EARLIER);
    await rejects.add([row(3), row(4)]);

    const progress = await rejects.handOver(CHAIN, FIRST);

    const expected = HEADER_LINE + rowLine(3) + rowLine(4);
    expect(progress).toEqual({ rows: 2, parts: [Buffer.byteLength(expected)], names: [FIRST] });
    expect(partText(FIRST)).toBe(expected);
    expect(store.count("writeRejects")).toBe(0);
  });

  it("numbers the next part from the handed-over progress, without a second header", async () => {
    const { rejectsOf, partText } = setup();

    const progress = await twoPartsHandedOver(rejectsOf);

    expect(progress.rows).toBe(3);
    expect(progress.parts).toHaveLength(2);
    expect(progress.names).toEqual([FIRST, SECOND]);
    expect(partText(SECOND)).toBe(rowLine(9));
    expect(progress.parts[1]).toBe(Buffer.byteLength(rowLine(9)));
  });

  it("names the parts of a progress handed over by an earlier version as it numbered them", async () => {
    const { store, object, rejectsOf } = setup();
    // An earlier version's state: sizes only, part n stored as `<chain>-<n>`.
    const text = HEADER_LINE + rowLine(3);
    store.put(BUCKET, rejectsPartKey(SOURCE_KEY, `${CHAIN}-1`), text);
    const legacy: RejectsProgress = { rows: 1, parts: [Buffer.byteLength(text)] };
    const rejects = rejectsOf(legacy);
    await rejects.add([row(9)]);

    const progress = await rejects.handOver(CHAIN, SECOND);
    expect(progress.names).toEqual([`${CHAIN}-1`, SECOND]);
    expect(await rejectsOf(progress).finish(CHAIN)).toBe(2);
    expect(store.rejects(object)).toBe(text + rowLine(9));
  });

  it("uploads nothing and hands over the same progress when no row was rejected", async () => {
    const { store, rejectsOf } = setup();
    const earlier = { rows: 2, parts: [80], names: [FIRST] };

    const progress = await rejectsOf(earlier).handOver(CHAIN, SECOND);

    expect(progress).toEqual(earlier);
    expect(store.count("writeRejectsPart")).toBe(0);
  });
});

describe("FileRejects.removeParts", () => {
  /** Two parts as an earlier version handed them over: `rejects/<key>.part-<chain>-<n>`. */
  function earlierVersionsParts(store: FakeArtifactStore): RejectsProgress {
    const first = HEADER_LINE + rowLine(3);
    const second = rowLine(9);
    store.put(BUCKET, rejectsPartKey(SOURCE_KEY, `${CHAIN}-1`), first);
    store.put(BUCKET, rejectsPartKey(SOURCE_KEY, `${CHAIN}-2`), second);
    return { rows: 2, parts: [Buffer.byteLength(first), Buffer.byteLength(second)] };
  }

  it("leaves this version's parts to expire under state/checkpoints/: another line of the file may still join them", async () => {
    const { store, rejectsOf, partText } = setup();
    const progress = await twoPartsHandedOver(rejectsOf);
    const logger = createLogger({}, { write: () => {} });

    await rejectsOf(progress).removeParts(CHAIN, logger);

    expect(partText(FIRST)).toBeDefined();
    expect(partText(SECOND)).toBeDefined();
    expect(store.count("removeRejectsPart")).toBe(0);
    expect(store.keys(BUCKET).every((key) => key.startsWith("state/checkpoints/"))).toBe(true);
  });

  it("removes the parts an earlier version left under rejects/", async () => {
    const { store, rejectsOf } = setup();
    const progress = earlierVersionsParts(store);
    const logger = createLogger({}, { write: () => {} });

    await rejectsOf(progress).removeParts(CHAIN, logger);

    expect(store.keys(BUCKET)).toEqual([]);
  });

  it("is best effort: a failed removal is logged and the other parts still go", async () => {
    const { store, rejectsOf, partText } = setup();
    const progress = earlierVersionsParts(store);
    store.failNext("removeRejectsPart", new Error("SlowDown"));
    const lines: string[] = [];
    const logger = createLogger({}, { write: (line) => lines.push(line) });

    await rejectsOf(progress).removeParts(CHAIN, logger);

    expect(partText(`${CHAIN}-1`)).toBeDefined();
    expect(partText(`${CHAIN}-2`)).toBeUndefined();
    expect(lines.map((line) => JSON.parse(line))).toEqual([
      expect.objectContaining({
        level: "warn",
        message: "Could not remove a continuation leftover",
        leftover: rejectsPartKey(SOURCE_KEY, `${CHAIN}-1`),
        error: { name: "Error", message: "SlowDown" },
      }),
    ]);
  });
});

describe("FileRejects.discard", () => {
  it("uploads nothing of the rows it held", async () => {
    const { store, rejectsOf } = setup();
    const rejects = rejectsOf(NOTHING_EARLIER);
    await rejects.add([row(2)]);

    await rejects.discard();

    expect(store.writes).toEqual([]);
    expect(rejects.count).toBe(1);
  });
});
