import { s3Errors } from "../errors";
import { drain, readSmallBody, type S3Request } from "../request";
import { send, sendXml } from "../response";
import type { S3State } from "../state";
import type { Tag } from "../store";
import { childBlocks, childText, document, element } from "../xml";

export function getObjectTagging(state: S3State, request: S3Request): undefined {
  const object = state.store.object(request.bucket, request.key);
  if (object.versionId) request.res.setHeader("x-amz-version-id", object.versionId);
  sendXml(request.res, 200, document("Tagging", `<TagSet>${tagsXml(object.tags)}</TagSet>`));
  return undefined;
}

/** Replaces the tag set. Like S3, this fires no ObjectCreated notification. */
export async function putObjectTagging(state: S3State, request: S3Request): Promise<undefined> {
  const object = state.store.object(request.bucket, request.key);
  const xml = await readSmallBody(request.req);
  const tagSet = childBlocks(xml, "TagSet")[0];
  if (tagSet === undefined) throw s3Errors.malformedXml();
  const tags = childBlocks(tagSet, "Tag").map((block) => {
    const Key = childText(block, "Key");
    const Value = childText(block, "Value");
    if (Key === undefined || Value === undefined) throw s3Errors.malformedXml();
    return { Key, Value };
  });
  validateTags(tags);
  object.tags = tags;
  if (object.versionId) request.res.setHeader("x-amz-version-id", object.versionId);
  send(request.res, 200);
  return undefined;
}

export async function deleteObjectTagging(state: S3State, request: S3Request): Promise<undefined> {
  await drain(request.req);
  const object = state.store.object(request.bucket, request.key);
  object.tags = [];
  if (object.versionId) request.res.setHeader("x-amz-version-id", object.versionId);
  send(request.res, 204);
  return undefined;
}

/** `x-amz-tagging`: URL query syntax, `k1=v1&k2=v2`. */
export function parseTaggingHeader(value: string | undefined): Tag[] {
  if (value === undefined || value === "") return [];
  const tags = [...new URLSearchParams(value)].map(([Key, Value]) => ({ Key, Value }));
  validateTags(tags);
  return tags;
}

function validateTags(tags: Tag[]): void {
  if (tags.length > 10) throw s3Errors.invalidTag("Object tags cannot be greater than 10");
  const seen = new Set<string>();
  for (const tag of tags) {
    if (tag.Key.length === 0 || tag.Key.length > 128) {
      throw s3Errors.invalidTag("The TagKey you have provided is invalid");
    }
    if (tag.Value.length > 256)
      throw s3Errors.invalidTag("The TagValue you have provided is invalid");
    if (seen.has(tag.Key))
      throw s3Errors.invalidTag("Cannot provide multiple Tags with the same key");
    seen.add(tag.Key);
  }
}

function tagsXml(tags: Tag[]): string {
  return tags
    .map((tag) => `<Tag>${element("Key", tag.Key)}${element("Value", tag.Value)}</Tag>`)
    .join("");
}
