import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  PutObjectTaggingCommand,
  S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import type { S3Event } from "aws-lambda";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createS3Client, getJsonObject, putJsonObject } from "../../handlers/shared/s3";
import { startS3Server } from "../../local/s3-server";
import { startTestS3, type TestS3 } from "../helpers/s3";

const BUCKET = "results";
const MiB = 1024 * 1024;

async function bodyBytes(
  body: { transformToByteArray(): Promise<Uint8Array> } | undefined,
): Promise<Buffer> {
  if (!body) throw new Error("response has no body");
  return Buffer.from(await body.transformToByteArray());
}

function md5(data: string | Buffer): string {
  return createHash("md5").update(data).digest("hex");
}

async function errorOf(
  promise: Promise<unknown>,
): Promise<Error & { $metadata?: { httpStatusCode?: number } }> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected the call to fail");
}

/** Records the headers the SDK actually sent, after its checksum middleware ran. */
function captureRequestHeaders(client: S3Client): Record<string, string>[] {
  const seen: Record<string, string>[] = [];
  client.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { headers?: Record<string, string> };
      if (request.headers) seen.push({ ...request.headers });
      return next(args);
    },
    { step: "finalizeRequest", name: "captureRequestHeaders", priority: "low" },
  );
  return seen;
}

describe("S3 stand-in through the real S3Client", () => {
  let s3: TestS3;
  let events: S3Event[];

  beforeEach(async () => {
    events = [];
    s3 = await startTestS3({
      buckets: [BUCKET],
      notifications: [
        {
          id: "ingest",
          bucket: BUCKET,
          suffix: ".csv",
          deliver: (event) => {
            events.push(event);
          },
        },
      ],
    });
  });

  afterEach(async () => {
    await s3.stop();
  });

  describe("objects", () => {
    it("stores a string body and returns it with type, length, MD5 ETag and Last-Modified", async () => {
      const body = "report_date,creative_id\n2025-12-10,abc\n";
      const put = await s3.client.send(
        new PutObjectCommand({
          Bucket: BUCKET,
          Key: "a/b.csv",
          Body: body,
          ContentType: "text/csv",
        }),
      );
      const got = await s3.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: "a/b.csv" }));

      expect(put.ETag).toBe(`"${md5(body)}"`);
      expect(await got.Body?.transformToString()).toBe(body);
      expect(got.ContentType).toBe("text/csv");
      expect(got.ContentLength).toBe(Buffer.byteLength(body));
      expect(got.ETag).toBe(`"${md5(body)}"`);
      expect(got.LastModified).toBeInstanceOf(Date);
    });

    it("decodes aws-chunked stream uploads with a checksum trailer", async () => {
      const sent = captureRequestHeaders(s3.client);
      const chunks = Array.from({ length: 40 }, (_, i) => Buffer.alloc(10_000, 65 + (i % 26)));
      const expected = Buffer.concat(chunks);

      const put = await s3.client.send(
        new PutObjectCommand({
          Bucket: BUCKET,
          Key: "streamed.bin",
          Body: Readable.from(chunks),
          ContentLength: expected.length,
        }),
      );
      const got = await s3.client.send(
        new GetObjectCommand({ Bucket: BUCKET, Key: "streamed.bin" }),
      );

      expect(sent.at(-2)?.["content-encoding"]).toContain("aws-chunked");
      expect(sent.at(-2)?.["x-amz-decoded-content-length"]).toBe(String(expected.length));
      expect(put.ETag).toBe(`"${md5(expected)}"`);
      expect((await bodyBytes(got.Body)).equals(expected)).toBe(true);
    });

    it("verifies checksum and Content-MD5 headers and keeps nothing that does not match", async () => {
      const wrongCrc = await fetch(`${s3.endpoint}/${BUCKET}/crc.txt`, {
        method: "PUT",
        headers: { "x-amz-checksum-crc32": "AAAAAA==", "x-amz-sdk-checksum-algorithm": "CRC32" },
        body: "hello",
      });
      const wrongMd5 = await fetch(`${s3.endpoint}/${BUCKET}/md5.txt`, {
        method: "PUT",
        headers: { "content-md5": createHash("md5").update("other").digest("base64") },
        body: "hello",
      });
      const rightMd5 = await fetch(`${s3.endpoint}/${BUCKET}/md5.txt`, {
        method: "PUT",
        headers: { "content-md5": createHash("md5").update("hello").digest("base64") },
        body: "hello",
      });
      const sent = captureRequestHeaders(s3.client);
      await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "sdk.txt", Body: "hello" }));

      expect(wrongCrc.status).toBe(400);
      expect(await wrongCrc.text()).toContain("<Code>BadDigest</Code>");
      expect(wrongMd5.status).toBe(400);
      expect(rightMd5.status).toBe(200);
      // The SDK's own CRC32 header is what the stand-in verified for its upload.
      expect(sent[0]?.["x-amz-checksum-crc32"]).toBeDefined();
      expect(
        await errorOf(s3.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "crc.txt" }))),
      ).toHaveProperty("name", "NotFound");
    });

    it("rejects an aws-chunked body whose trailing CRC32 does not match with BadDigest", async () => {
      const payload = "hello world";
      const body = `${payload.length.toString(16)}\r\n${payload}\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n`;

      const response = await fetch(`${s3.endpoint}/${BUCKET}/bad.txt`, {
        method: "PUT",
        headers: {
          "content-encoding": "aws-chunked",
          "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
          "x-amz-decoded-content-length": String(payload.length),
          "x-amz-trailer": "x-amz-checksum-crc32",
        },
        body,
      });

      expect(response.status).toBe(400);
      expect(await response.text()).toContain("<Code>BadDigest</Code>");
      expect(
        await errorOf(s3.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "bad.txt" }))),
      ).toHaveProperty("name", "NotFound");
    });

    it("accepts signed aws-chunked bodies split across chunk boundaries", async () => {
      const parts = ["first-", "second"];
      const body = [
        ...parts.map((part) => `${part.length.toString(16)};chunk-signature=abc\r\n${part}\r\n`),
        "0;chunk-signature=def\r\n\r\n",
      ].join("");

      const response = await fetch(`${s3.endpoint}/${BUCKET}/signed.txt`, {
        method: "PUT",
        headers: {
          "content-encoding": "aws-chunked",
          "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
          "x-amz-decoded-content-length": "12",
        },
        body: Readable.toWeb(
          Readable.from([...Buffer.from(body)].map((byte) => Buffer.from([byte]))),
        ) as ReadableStream,
        duplex: "half",
      } as RequestInit);
      const got = await s3.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: "signed.txt" }));

      expect(response.status).toBe(200);
      expect(await got.Body?.transformToString()).toBe("first-second");
    });

    it("serves byte ranges with 206 and Content-Range, and refuses a range past the end", async () => {
      await s3.client.send(
        new PutObjectCommand({ Bucket: BUCKET, Key: "r.txt", Body: "0123456789" }),
      );

      const middle = await s3.client.send(
        new GetObjectCommand({ Bucket: BUCKET, Key: "r.txt", Range: "bytes=2-5" }),
      );
      const tail = await s3.client.send(
        new GetObjectCommand({ Bucket: BUCKET, Key: "r.txt", Range: "bytes=7-" }),
      );
      const beyond = await errorOf(
        s3.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: "r.txt", Range: "bytes=10-" })),
      );

      expect(middle.$metadata.httpStatusCode).toBe(206);
      expect(middle.ContentRange).toBe("bytes 2-5/10");
      expect(middle.ContentLength).toBe(4);
      expect(await middle.Body?.transformToString()).toBe("2345");
      expect(tail.ContentRange).toBe("bytes 7-9/10");
      expect(await tail.Body?.transformToString()).toBe("789");
      expect(beyond.name).toBe("InvalidRange");
      expect(beyond.$metadata?.httpStatusCode).toBe(416);
    });

    it("answers HeadObject with size and ETag, and NotFound for a missing key", async () => {
      await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "h.txt", Body: "abc" }));

      const head = await s3.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "h.txt" }));
      const missing = await errorOf(
        s3.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "nope.txt" })),
      );

      expect(head.ContentLength).toBe(3);
      expect(head.ETag).toBe(`"${md5("abc")}"`);
      expect(missing.name).toBe("NotFound");
      expect(missing.$metadata?.httpStatusCode).toBe(404);
    });

    it("maps missing keys and buckets to NoSuchKey and NoSuchBucket", async () => {
      const noKey = await errorOf(
        s3.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: "missing.csv" })),
      );
      const noBucket = await errorOf(
        s3.client.send(new PutObjectCommand({ Bucket: "no-such-bucket", Key: "k", Body: "x" })),
      );
      const noBucketHead = await errorOf(
        s3.client.send(new HeadBucketCommand({ Bucket: "nope-bucket" })),
      );

      expect(noKey.name).toBe("NoSuchKey");
      expect(noBucket.name).toBe("NoSuchBucket");
      expect(noBucketHead.name).toBe("NotFound");
    });

    it("lists buckets", async () => {
      const listed = await s3.client.send(new ListBucketsCommand({}));
      expect(listed.Buckets?.map((bucket) => bucket.Name)).toEqual([BUCKET]);
    });

    it("deletes objects, answering 204 also for keys that do not exist", async () => {
      await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "d.txt", Body: "x" }));

      await s3.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: "d.txt" }));
      const again = await s3.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: "d.txt" }));

      expect(again.$metadata.httpStatusCode).toBe(204);
      expect(
        (await errorOf(s3.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: "d.txt" }))))
          .name,
      ).toBe("NoSuchKey");
    });

    it("stores binary/octet-stream when no Content-Type is given, as S3 does", async () => {
      // A byte body: fetch adds no Content-Type for it (it would for a string).
      await fetch(`${s3.endpoint}/${BUCKET}/untyped`, {
        method: "PUT",
        body: new Uint8Array([120]),
      });

      const head = await s3.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "untyped" }));

      expect(head.ContentType).toBe("binary/octet-stream");
    });

    it("deletes several keys in one DeleteObjects call", async () => {
      for (const key of ["m/1", "m/2", "m/3"]) {
        await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: key }));
      }

      const deleted = await s3.client.send(
        new DeleteObjectsCommand({
          Bucket: BUCKET,
          Delete: { Objects: [{ Key: "m/1" }, { Key: "m/3" }, { Key: "m/none" }] },
        }),
      );
      const left = await s3.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "m/" }));

      expect(deleted.Deleted?.map((entry) => entry.Key)).toEqual(["m/1", "m/3", "m/none"]);
      expect(left.Contents?.map((object) => object.Key)).toEqual(["m/2"]);
    });

    it("copies an object with its type and tags", async () => {
      await s3.client.send(
        new PutObjectCommand({
          Bucket: BUCKET,
          Key: "src/a b.csv",
          Body: "x,y\n",
          ContentType: "text/csv",
          Tagging: "dryRun=true",
        }),
      );

      const copied = await s3.client.send(
        new CopyObjectCommand({
          Bucket: BUCKET,
          Key: "dst/a b.csv",
          CopySource: `${BUCKET}/src/a%20b.csv`,
        }),
      );
      const got = await s3.client.send(
        new GetObjectCommand({ Bucket: BUCKET, Key: "dst/a b.csv" }),
      );
      const tags = await s3.client.send(
        new GetObjectTaggingCommand({ Bucket: BUCKET, Key: "dst/a b.csv" }),
      );

      expect(copied.CopyObjectResult?.ETag).toBe(`"${md5("x,y\n")}"`);
      expect(await got.Body?.transformToString()).toBe("x,y\n");
      expect(got.ContentType).toBe("text/csv");
      expect(tags.TagSet).toEqual([{ Key: "dryRun", Value: "true" }]);
    });

    it("finishes a download in progress with the old bytes when the key is overwritten meanwhile", async () => {
      const before = Buffer.alloc(2 * MiB, "a");
      const after = Buffer.alloc(2 * MiB, "b");
      await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "swap.bin", Body: before }));

      const download = await s3.client.send(
        new GetObjectCommand({ Bucket: BUCKET, Key: "swap.bin" }),
      );
      await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "swap.bin", Body: after }));
      const downloaded = await bodyBytes(download.Body);
      const fresh = await s3.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: "swap.bin" }));

      expect(downloaded.equals(before)).toBe(true);
      expect((await bodyBytes(fresh.Body)).equals(after)).toBe(true);
    });

    it("keeps object bytes in files under its directory and removes a temp dir it made on stop", async () => {
      const server = await startS3Server();
      const client = createClientFor(server.endpoint);
      server.createBucket("files");
      await client.send(
        new PutObjectCommand({ Bucket: "files", Key: "big.bin", Body: Buffer.alloc(MiB, 1) }),
      );

      const stored = await readdir(join(server.dir, "objects"));
      client.destroy();
      await server.stop();

      expect(stored).toHaveLength(1);
      expect(existsSync(server.dir)).toBe(false);
    });
  });

  describe("tagging", () => {
    it("keeps the tags given at upload and replaces them with PutObjectTagging", async () => {
      await s3.client.send(
        new PutObjectCommand({
          Bucket: BUCKET,
          Key: "reprocess/x.csv",
          Body: "a",
          Tagging: "dryRun=true&by=me%20too",
        }),
      );
      const atUpload = await s3.client.send(
        new GetObjectTaggingCommand({ Bucket: BUCKET, Key: "reprocess/x.csv" }),
      );
      const head = await s3.client.send(
        new GetObjectCommand({ Bucket: BUCKET, Key: "reprocess/x.csv" }),
      );

      await s3.client.send(
        new PutObjectTaggingCommand({
          Bucket: BUCKET,
          Key: "reprocess/x.csv",
          Tagging: { TagSet: [{ Key: "reviewed", Value: "<yes & no>" }] },
        }),
      );
      const replaced = await s3.client.send(
        new GetObjectTaggingCommand({ Bucket: BUCKET, Key: "reprocess/x.csv" }),
      );

      expect(atUpload.TagSet).toEqual([
        { Key: "dryRun", Value: "true" },
        { Key: "by", Value: "me too" },
      ]);
      expect(head.TagCount).toBe(2);
      expect(replaced.TagSet).toEqual([{ Key: "reviewed", Value: "<yes & no>" }]);
    });
  });

  describe("listing", () => {
    it("pages through keys with max-keys and continuation tokens, in key order", async () => {
      const keys = ["p/e.csv", "p/a.csv", "p/c.csv", "p/b.csv", "p/d.csv", "q/z.csv"];
      for (const key of keys) {
        await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: key }));
      }

      const pages: string[][] = [];
      let token: string | undefined;
      do {
        const page = await s3.client.send(
          new ListObjectsV2Command({
            Bucket: BUCKET,
            Prefix: "p/",
            MaxKeys: 2,
            ContinuationToken: token,
          }),
        );
        pages.push((page.Contents ?? []).map((object) => object.Key ?? ""));
        token = page.NextContinuationToken;
        expect(page.IsTruncated).toBe(token !== undefined);
      } while (token);

      expect(pages).toEqual([["p/a.csv", "p/b.csv"], ["p/c.csv", "p/d.csv"], ["p/e.csv"]]);
    });

    it("groups keys under common prefixes with a delimiter", async () => {
      for (const key of [
        "reports/a/1.json",
        "reports/a/2.json",
        "reports/b/1.json",
        "reports/top.json",
      ]) {
        await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: "{}" }));
      }

      const listed = await s3.client.send(
        new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "reports/", Delimiter: "/" }),
      );

      expect(listed.CommonPrefixes?.map((prefix) => prefix.Prefix)).toEqual([
        "reports/a/",
        "reports/b/",
      ]);
      expect(listed.Contents?.map((object) => object.Key)).toEqual(["reports/top.json"]);
      expect(listed.Contents?.[0]?.Size).toBe(2);
      expect(listed.KeyCount).toBe(3);
    });
  });

  describe("multipart upload", () => {
    async function uploadParts(key: string, parts: Buffer[]) {
      const created = await s3.client.send(
        new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key, ContentType: "text/csv" }),
      );
      const uploaded = [];
      for (const [index, body] of parts.entries()) {
        const part = await s3.client.send(
          new UploadPartCommand({
            Bucket: BUCKET,
            Key: key,
            UploadId: created.UploadId,
            PartNumber: index + 1,
            Body: body,
          }),
        );
        uploaded.push({ ETag: part.ETag, PartNumber: index + 1 });
      }
      return { uploadId: created.UploadId, uploaded };
    }

    it("assembles the parts in order with an ETag of the part MD5s and fires CompleteMultipartUpload", async () => {
      const parts = [Buffer.alloc(5 * MiB, "a"), Buffer.from("tail")];
      const { uploadId, uploaded } = await uploadParts("athena-results/q.csv", parts);

      const completed = await s3.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: BUCKET,
          Key: "athena-results/q.csv",
          UploadId: uploadId,
          MultipartUpload: { Parts: uploaded },
        }),
      );
      const got = await s3.client.send(
        new GetObjectCommand({ Bucket: BUCKET, Key: "athena-results/q.csv" }),
      );
      const bytes = await bodyBytes(got.Body);
      await s3.server.idle();

      const expectedEtag = `${md5(Buffer.concat(parts.map((part) => Buffer.from(md5(part), "hex"))))}-2`;
      expect(completed.ETag).toBe(`"${expectedEtag}"`);
      expect(bytes.equals(Buffer.concat(parts))).toBe(true);
      expect(got.ContentType).toBe("text/csv");
      expect(events).toHaveLength(1);
      expect(events[0]?.Records[0]?.eventName).toBe("ObjectCreated:CompleteMultipartUpload");
      expect(events[0]?.Records[0]?.s3.object).toMatchObject({
        size: 5 * MiB + 4,
        eTag: expectedEtag,
      });
    });

    it("refuses parts under 5 MiB that are not the last with EntityTooSmall", async () => {
      const { uploadId, uploaded } = await uploadParts("small.csv", [
        Buffer.from("a"),
        Buffer.from("b"),
      ]);

      const error = await errorOf(
        s3.client.send(
          new CompleteMultipartUploadCommand({
            Bucket: BUCKET,
            Key: "small.csv",
            UploadId: uploadId,
            MultipartUpload: { Parts: uploaded },
          }),
        ),
      );

      expect(error.name).toBe("EntityTooSmall");
    });

    it("aborts an upload so later parts fail with NoSuchUpload and no object appears", async () => {
      const { uploadId } = await uploadParts("aborted.csv", [Buffer.from("a")]);

      await s3.client.send(
        new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: "aborted.csv", UploadId: uploadId }),
      );
      const error = await errorOf(
        s3.client.send(
          new UploadPartCommand({
            Bucket: BUCKET,
            Key: "aborted.csv",
            UploadId: uploadId,
            PartNumber: 2,
            Body: "b",
          }),
        ),
      );
      await s3.server.idle();

      expect(error.name).toBe("NoSuchUpload");
      expect(events).toEqual([]);
    });
  });

  describe("notifications", () => {
    it("delivers one event per created object, shaped like S3's with the key URL-encoded", async () => {
      const key = "reprocess/red flower+(1).csv";
      const body = "report_date\n2025-12-10\n";

      const put = await s3.client.send(
        new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }),
      );
      await s3.server.idle();

      expect(events).toHaveLength(1);
      expect(events[0]).toEqual({
        Records: [
          {
            eventVersion: "2.1",
            eventSource: "aws:s3",
            awsRegion: "us-east-1",
            eventTime: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
            eventName: "ObjectCreated:Put",
            userIdentity: { principalId: expect.any(String) },
            requestParameters: { sourceIPAddress: "127.0.0.1" },
            responseElements: {
              "x-amz-request-id": put.$metadata.requestId,
              "x-amz-id-2": put.$metadata.extendedRequestId,
            },
            s3: {
              s3SchemaVersion: "1.0",
              configurationId: "ingest",
              bucket: {
                name: BUCKET,
                ownerIdentity: { principalId: expect.any(String) },
                arn: `arn:aws:s3:::${BUCKET}`,
              },
              object: {
                key: "reprocess/red+flower%2B%281%29.csv",
                size: Buffer.byteLength(body),
                eTag: md5(body),
                sequencer: expect.stringMatching(/^[0-9A-F]+$/),
              },
            },
          },
        ],
      });
    });

    it("gives a later write to the same key a larger sequencer", async () => {
      await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "k.csv", Body: "1" }));
      await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "k.csv", Body: "2" }));
      await s3.server.idle();

      const sequencers = events.map((event) =>
        BigInt(`0x${event.Records[0]?.s3.object.sequencer}`),
      );
      expect(sequencers).toHaveLength(2);
      expect(sequencers[1]).toBeGreaterThan(sequencers[0] ?? 0n);
    });

    it("fires ObjectCreated:Copy for a copy", async () => {
      await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "a.txt", Body: "x" }));
      await s3.client.send(
        new CopyObjectCommand({ Bucket: BUCKET, Key: "b.csv", CopySource: `${BUCKET}/a.txt` }),
      );
      await s3.server.idle();

      expect(
        events.map((event) => [event.Records[0]?.eventName, event.Records[0]?.s3.object.key]),
      ).toEqual([["ObjectCreated:Copy", "b.csv"]]);
    });

    it("fires nothing for tagging or deleting an existing object, or for keys the filter excludes", async () => {
      await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "x.csv", Body: "x" }));
      await s3.server.idle();
      events.length = 0;

      await s3.client.send(
        new PutObjectTaggingCommand({
          Bucket: BUCKET,
          Key: "x.csv",
          Tagging: { TagSet: [{ Key: "dryRun", Value: "true" }] },
        }),
      );
      await s3.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: "x.csv" }));
      await s3.client.send(
        new PutObjectCommand({ Bucket: BUCKET, Key: "q.csv.metadata", Body: "m" }),
      );
      await s3.server.idle();

      expect(events).toEqual([]);
    });

    it("honours prefix, bucket and event-name filters of added rules", async () => {
      const copies: string[] = [];
      s3.server.addNotification({
        bucket: BUCKET,
        prefix: "athena-results/",
        events: ["s3:ObjectCreated:Copy"],
        deliver: (event) => {
          copies.push(event.Records[0]?.s3.object.key ?? "");
        },
      });

      await s3.client.send(
        new PutObjectCommand({ Bucket: BUCKET, Key: "athena-results/put.csv", Body: "x" }),
      );
      await s3.client.send(
        new CopyObjectCommand({
          Bucket: BUCKET,
          Key: "athena-results/copy.csv",
          CopySource: `${BUCKET}/athena-results/put.csv`,
        }),
      );
      await s3.client.send(
        new CopyObjectCommand({
          Bucket: BUCKET,
          Key: "reprocess/copy.csv",
          CopySource: `${BUCKET}/athena-results/put.csv`,
        }),
      );
      await s3.server.idle();

      expect(copies).toEqual(["athena-results/copy.csv"]);
    });

    it("delivers after the response and waits, in idle(), for writes a delivery makes", async () => {
      const seen: string[] = [];
      s3.server.addNotification({
        prefix: "chain/",
        deliver: async (event) => {
          const key = decodeURIComponent(event.Records[0]?.s3.object.key ?? "");
          seen.push(key);
          if (key === "chain/1") {
            await s3.client.send(
              new PutObjectCommand({ Bucket: BUCKET, Key: "chain/2", Body: "2" }),
            );
          }
        },
      });

      await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "chain/1", Body: "1" }));
      await s3.server.idle();

      expect(seen).toEqual(["chain/1", "chain/2"]);
    });

    it("records a delivery that throws and keeps serving requests", async () => {
      const onDeliveryError = vi.fn();
      const server = await startS3Server({
        onDeliveryError,
        notifications: [
          {
            id: "broken",
            deliver: () => {
              throw new Error("handler exploded");
            },
          },
          {
            id: "rejecting",
            deliver: () => Promise.reject(new Error("async failure")),
          },
        ],
      });
      const client = createClientFor(server.endpoint);
      try {
        server.createBucket("b1");
        await client.send(new PutObjectCommand({ Bucket: "b1", Key: "one.csv", Body: "1" }));
        await server.idle();
        await client.send(new PutObjectCommand({ Bucket: "b1", Key: "two.csv", Body: "2" }));
        const got = await client.send(new GetObjectCommand({ Bucket: "b1", Key: "two.csv" }));
        await server.idle();

        expect(await got.Body?.transformToString()).toBe("2");
        expect(
          server.deliveryErrors.map((failure) => [
            failure.ruleId,
            (failure.error as Error).message,
          ]),
        ).toEqual([
          ["broken", "handler exploded"],
          ["rejecting", "async failure"],
          ["broken", "handler exploded"],
          ["rejecting", "async failure"],
        ]);
        expect(onDeliveryError).toHaveBeenCalledTimes(4);
      } finally {
        client.destroy();
        await server.stop();
      }
    });

    it("sends an s3:TestEvent when a rule asks for one, as S3 does when notifications are enabled", async () => {
      const received: unknown[] = [];
      s3.server.addNotification({
        bucket: BUCKET,
        sendTestEvent: true,
        deliver: (event) => received.push(event),
      });
      await s3.server.idle();

      expect(received).toEqual([
        expect.objectContaining({ Event: "s3:TestEvent", Bucket: BUCKET }),
      ]);
    });
  });

  describe("robustness", () => {
    it("answers malformed and unsupported requests with S3 errors and stays up", async () => {
      const badUri = await fetch(`${s3.endpoint}/${BUCKET}/%E0%A4%A`);
      const unsupported = await fetch(`${s3.endpoint}/${BUCKET}?versions`);
      const badTagging = await fetch(`${s3.endpoint}/${BUCKET}/t.csv`, {
        method: "PUT",
        headers: { "x-amz-tagging": "a=1&a=2" },
        body: "x",
      });
      const badComplete = await fetch(`${s3.endpoint}/${BUCKET}/k?uploadId=nope`, {
        method: "POST",
        body: "<not xml",
      });
      const bucketPolicy = await fetch(`${s3.endpoint}/${BUCKET}?policy`, {
        method: "PUT",
        body: "{}",
      });
      const stillUp = await s3.client.send(new ListBucketsCommand({}));

      expect(badUri.status).toBe(400);
      expect(await badUri.text()).toContain("<Code>InvalidURI</Code>");
      expect(unsupported.status).toBe(501);
      expect(await unsupported.text()).toContain("<Code>NotImplemented</Code>");
      expect(badTagging.status).toBe(400);
      expect(await badTagging.text()).toContain("<Code>InvalidTag</Code>");
      expect(badComplete.status).toBe(404);
      expect(await badComplete.text()).toContain("<Code>NoSuchUpload</Code>");
      expect(bucketPolicy.status).toBe(501);
      expect(stillUp.Buckets).toHaveLength(1);
    });

    it("refuses a second create with If-None-Match: * (conditional write)", async () => {
      await s3.client.send(
        new PutObjectCommand({ Bucket: BUCKET, Key: "once.json", Body: "1", IfNoneMatch: "*" }),
      );
      const error = await errorOf(
        s3.client.send(
          new PutObjectCommand({ Bucket: BUCKET, Key: "once.json", Body: "2", IfNoneMatch: "*" }),
        ),
      );

      expect(error.name).toBe("PreconditionFailed");
    });
  });

  describe("faults", () => {
    /** What a body delivered before it failed, and how it failed (undefined: it did not). */
    async function readUntilBroken(body: unknown): Promise<{ bytes: Buffer; error?: Error }> {
      const chunks: Buffer[] = [];
      try {
        for await (const chunk of body as AsyncIterable<Uint8Array>)
          chunks.push(Buffer.from(chunk));
        return { bytes: Buffer.concat(chunks) };
      } catch (error) {
        return { bytes: Buffer.concat(chunks), error: error as Error };
      }
    }
    const content = Buffer.from(Array.from({ length: 300_000 }, (_, i) => i % 251));

    it("cuts the next GETs of a key after the given bytes, with the full length announced, then serves it whole", async () => {
      await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "cut.bin", Body: content }));
      s3.server.faults.cutDownloads({ key: "cut.bin", afterBytes: 100_000, count: 2 });
      const get = () => s3.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: "cut.bin" }));

      const first = await get();
      const firstRead = await readUntilBroken(first.Body);
      const secondRead = await readUntilBroken((await get()).Body);
      const thirdRead = await readUntilBroken((await get()).Body);

      expect(first.ContentLength).toBe(content.length);
      expect(firstRead.error?.message).toMatch(/aborted|socket hang up|ECONNRESET/);
      expect(firstRead.bytes.equals(content.subarray(0, 100_000))).toBe(true);
      expect(secondRead.error).toBeDefined();
      expect(thirdRead.error).toBeUndefined();
      expect(thirdRead.bytes.equals(content)).toBe(true);
    });

    it("counts the cut from the start of a ranged GET, and cuts only the key it names", async () => {
      await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "cut.bin", Body: content }));
      await s3.client.send(
        new PutObjectCommand({ Bucket: BUCKET, Key: "whole.bin", Body: content }),
      );
      s3.server.faults.cutDownloads({ key: "cut.bin", afterBytes: 1_000 });

      const other = await readUntilBroken(
        (await s3.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: "whole.bin" }))).Body,
      );
      const ranged = await readUntilBroken(
        (
          await s3.client.send(
            new GetObjectCommand({ Bucket: BUCKET, Key: "cut.bin", Range: "bytes=5000-" }),
          )
        ).Body,
      );

      expect(other.error).toBeUndefined();
      expect(other.bytes.length).toBe(content.length);
      expect(ranged.error).toBeDefined();
      expect(ranged.bytes.equals(content.subarray(5_000, 6_000))).toBe(true);
    });

    it("runs beforeCut before the socket closes, so a change it makes is seen by the next GET", async () => {
      await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "cut.bin", Body: content }));
      s3.server.faults.cutDownloads({
        key: "cut.bin",
        afterBytes: 10,
        beforeCut: async () => {
          await s3.client.send(
            new PutObjectCommand({ Bucket: BUCKET, Key: "cut.bin", Body: "replaced" }),
          );
        },
      });
      const first = await s3.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: "cut.bin" }));

      const read = await readUntilBroken(first.Body);
      const resumed = await errorOf(
        s3.client.send(
          new GetObjectCommand({
            Bucket: BUCKET,
            Key: "cut.bin",
            Range: "bytes=10-",
            IfMatch: first.ETag,
          }),
        ),
      );

      expect(read.bytes.equals(content.subarray(0, 10))).toBe(true);
      expect(resumed.$metadata?.httpStatusCode).toBe(412);
    });

    it("drops pending cuts on reset and refuses a count that is not a positive integer", async () => {
      await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "cut.bin", Body: content }));
      s3.server.faults.cutDownloads({ key: "cut.bin", afterBytes: 0 });

      s3.server.faults.reset();
      const read = await readUntilBroken(
        (await s3.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: "cut.bin" }))).Body,
      );

      expect(read.error).toBeUndefined();
      expect(() =>
        s3.server.faults.cutDownloads({ key: "cut.bin", afterBytes: 1, count: 0 }),
      ).toThrow(RangeError);
    });
  });

  describe("test helper environment", () => {
    afterEach(() => {
      vi.unstubAllEnvs();
    });

    it("lets the handlers' own S3 client reach the stand-in through env alone", async () => {
      for (const [name, value] of Object.entries(s3.env)) vi.stubEnv(name, value);
      const handlerClient = createS3Client();

      await putJsonObject(handlerClient, BUCKET, "runs/abc.json", { dryRun: true });
      const read = await getJsonObject(handlerClient, BUCKET, "runs/abc.json");
      const missing = await getJsonObject(handlerClient, BUCKET, "runs/none.json");
      handlerClient.destroy();

      expect(read).toEqual({ dryRun: true });
      expect(missing).toBeUndefined();
    });
  });
});

function createClientFor(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    forcePathStyle: true,
    region: "us-east-1",
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
  });
}
