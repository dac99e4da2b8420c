import { describe, expect, it } from "vitest";
import { ObjectReplacedError, ObjectUnreadableError } from "../../../handlers/ingest/errors";
import {
  readResumably,
  type StreamResume,
  type StreamResumeConfig,
} from "../../../handlers/ingest/resumable-source";
import { BUCKET, FakeSourceStore, objectRef } from "./fakes";

const KEY = "reprocess/resumable.csv";
const OBJECT = objectRef(KEY);
/** Bytes that differ at every offset (mod 251), so a skipped or repeated byte shows. */
const CONTENT = Buffer.from(Array.from({ length: 10_000 }, (_, i) => i % 251));
const CONFIG: StreamResumeConfig = { attempts: 3, backoffMs: 0 };

/** A source of CONTENT in 256-byte chunks. */
function sourceOf(): { source: FakeSourceStore; eTag: string } {
  const source = new FakeSourceStore(256);
  return { source, eTag: source.put(BUCKET, KEY, CONTENT) };
}

/** Opens the object (from `startByte`, as a continued invocation does) and reads it resumably. */
async function readAll(
  source: FakeSourceStore,
  eTag: string,
  { startByte = 0, config = CONFIG }: { startByte?: number; config?: StreamResumeConfig } = {},
) {
  const resumes: StreamResume[] = [];
  const opened = await source.open(
    OBJECT,
    startByte > 0 ? { byteOffset: startByte, eTag } : undefined,
  );
  const chunks: Buffer[] = [];
  const body = readResumably({
    source,
    object: OBJECT,
    opened,
    startByte,
    eTag,
    config,
    onResume: (resume) => resumes.push(resume),
  });
  try {
    for await (const chunk of body) chunks.push(Buffer.from(chunk));
    return { bytes: Buffer.concat(chunks), resumes };
  } catch (error) {
    return { bytes: Buffer.concat(chunks), resumes, error };
  }
}

describe("readResumably", () => {
  it("yields every byte once when the body breaks mid-way, reopening from the bytes handed on", async () => {
    const { source, eTag } = sourceOf();
    source.breakBodies({ afterBytes: 4_000 });

    const { bytes, resumes, error } = await readAll(source, eTag);

    expect(error).toBeUndefined();
    expect(bytes.equals(CONTENT)).toBe(true);
    expect(source.opens.map((open) => open.from)).toEqual([undefined, { byteOffset: 4_000, eTag }]);
    expect(resumes).toEqual([
      { byteOffset: 4_000, attempt: 1, attempts: 3, error: expect.any(Error) },
    ]);
    expect(resumes[0]?.error.message).toBe("socket hang up");
  });

  it("reopens at the absolute offset when the invocation started mid-object", async () => {
    const { source, eTag } = sourceOf();
    source.breakBodies({ afterBytes: 1_000 });

    const { bytes, resumes } = await readAll(source, eTag, { startByte: 3_000 });

    expect(bytes.equals(CONTENT.subarray(3_000))).toBe(true);
    expect(source.opens.map((open) => open.from?.byteOffset)).toEqual([3_000, 4_000]);
    expect(resumes.map((resume) => resume.byteOffset)).toEqual([4_000]);
  });

  it("resumes each break of a body that breaks again after a reopen", async () => {
    const { source, eTag } = sourceOf();
    source.breakBodies({ afterBytes: 2_500, count: 3 });

    const { bytes, resumes } = await readAll(source, eTag);

    expect(bytes.equals(CONTENT)).toBe(true);
    expect(resumes.map(({ byteOffset, attempt }) => [byteOffset, attempt])).toEqual([
      [2_500, 1],
      [5_000, 2],
      [7_500, 3],
    ]);
  });

  it("counts a reopen that fails as an attempt and tries again", async () => {
    const { source, eTag } = sourceOf();
    source.breakBodies({ afterBytes: 4_000, beforeBreak: () => source.failNextOpen() });

    const { bytes, resumes } = await readAll(source, eTag);

    expect(bytes.equals(CONTENT)).toBe(true);
    expect(resumes.map(({ byteOffset, attempt }) => [byteOffset, attempt])).toEqual([
      [4_000, 1],
      [4_000, 2],
    ]);
    expect(resumes[1]?.error.message).toBe("Access Denied");
  });

  it("fails with ObjectUnreadableError, naming the byte and the resumes, once the attempts run out", async () => {
    const { source, eTag } = sourceOf();
    source.breakBodies({ afterBytes: 1_000, count: 4 });

    const { bytes, resumes, error } = await readAll(source, eTag);

    expect(error).toBeInstanceOf(ObjectUnreadableError);
    expect((error as Error).message).toBe(
      `Reading s3://${BUCKET}/${KEY} failed at byte 4000 after 3 resume(s) of 3: socket hang up`,
    );
    expect(resumes).toHaveLength(3);
    expect(bytes.equals(CONTENT.subarray(0, 4_000))).toBe(true);
  });

  it("fails on the first break when no attempts are allowed", async () => {
    const { source, eTag } = sourceOf();
    source.breakBodies({ afterBytes: 1_000 });

    const { resumes, error } = await readAll(source, eTag, {
      config: { attempts: 0, backoffMs: 0 },
    });

    expect(error).toBeInstanceOf(ObjectUnreadableError);
    expect(resumes).toEqual([]);
    expect(source.opens).toHaveLength(1);
  });

  it("fails with ObjectReplacedError when the object changed before the reopen", async () => {
    const { source, eTag } = sourceOf();
    source.breakBodies({
      afterBytes: 4_000,
      beforeBreak: () => {
        source.put(BUCKET, KEY, "another object");
      },
    });

    const { bytes, error } = await readAll(source, eTag);

    expect(error).toBeInstanceOf(ObjectReplacedError);
    expect((error as Error).message).toMatch(/changed while it was read .*from byte 4000 on/);
    expect(bytes.equals(CONTENT.subarray(0, 4_000))).toBe(true);
  });

  it("does not reopen when the body breaks after its last byte arrived", async () => {
    const { source, eTag } = sourceOf();
    source.breakBodies({ afterBytes: CONTENT.length });

    const { bytes, resumes, error } = await readAll(source, eTag);

    expect(error).toBeUndefined();
    expect(bytes.equals(CONTENT)).toBe(true);
    expect(resumes).toEqual([]);
    expect(source.opens).toHaveLength(1);
  });
});
