import type { Readable } from "node:stream";
import {
  DeleteObjectCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  GetObjectTaggingCommand,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import {
  checkpointKey,
  dryRunMemoryKey,
  rejectsKey,
  rejectsPartKey,
  reportKey,
  runManifestKey,
} from "../shared/bucket-layout";
import { getJsonObject, putJsonObject, replaceIfUnchanged } from "../shared/s3";
import {
  type ArtifactStore,
  type ByteContent,
  SourceChangedError,
  type SourceStore,
} from "./ports";

/** The S3 adapter of the source port: the object, its tags, the start function's manifest. */
export function createS3SourceStore(s3: S3Client): SourceStore {
  return {
    async open(object, from) {
      let response: GetObjectCommandOutput;
      try {
        response = await s3.send(
          new GetObjectCommand({
            Bucket: object.bucket,
            Key: object.key,
            ...(from ? { Range: `bytes=${from.byteOffset}-`, IfMatch: from.eTag } : {}),
          }),
        );
      } catch (error) {
        const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata
          ?.httpStatusCode;
        if (from && status === 412) throw new SourceChangedError((error as Error).message);
        throw error;
      }
      if (!response.Body) throw new Error("empty response body");
      return {
        body: response.Body as Readable,
        eTag: response.ETag ?? "",
        size: response.ContentLength ?? Number.POSITIVE_INFINITY,
      };
    },
    async readTags(object) {
      const response = await s3.send(
        new GetObjectTaggingCommand({ Bucket: object.bucket, Key: object.key }),
      );
      return response.TagSet ?? [];
    },
    readManifest: (bucket, queryExecutionId) =>
      getJsonObject(s3, bucket, runManifestKey(queryExecutionId)),
  };
}

/** The S3 adapter of the artifacts port: everything lands beside the source, in its bucket. */
export function createS3ArtifactStore(s3: S3Client): ArtifactStore {
  return (object) => {
    const { bucket } = object;
    const put = (key: string, content: ByteContent, contentType = "text/csv") =>
      s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: content.body as Readable,
          ContentLength: content.size,
          ContentType: contentType,
        }),
        content.abortSignal ? { abortSignal: content.abortSignal } : {},
      );
    const remove = async (key: string) => {
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    };
    return {
      async writeReport(report) {
        return (await putJsonObject(s3, bucket, reportKey(object.key), report)).ETag;
      },
      async replaceReport(report, eTag) {
        return replaceIfUnchanged(() =>
          putJsonObject(s3, bucket, reportKey(object.key), report, eTag),
        );
      },
      async writeCheckpoint(state) {
        await putJsonObject(s3, bucket, checkpointKey(object.key), state);
      },
      removeCheckpoint: () => remove(checkpointKey(object.key)),
      async writeRejects(content) {
        await put(rejectsKey(object.key), content);
      },
      removeRejects: () => remove(rejectsKey(object.key)),
      async writeRejectsPart(name, content) {
        await put(rejectsPartKey(object.key, name), content);
      },
      async readRejectsPart(name) {
        const response = await s3.send(
          new GetObjectCommand({ Bucket: bucket, Key: rejectsPartKey(object.key, name) }),
        );
        return { body: response.Body as Readable, size: response.ContentLength };
      },
      removeRejectsPart: (name) => remove(rejectsPartKey(object.key, name)),
      async writeDryRunMemory(name, content) {
        await put(dryRunMemoryKey(object.key, name), content, "application/octet-stream");
      },
      async readDryRunMemory(name) {
        const response = await s3.send(
          new GetObjectCommand({ Bucket: bucket, Key: dryRunMemoryKey(object.key, name) }),
        );
        return { body: response.Body as Readable, size: response.ContentLength };
      },
      removeDryRunMemory: (name) => remove(dryRunMemoryKey(object.key, name)),
    };
  };
}
