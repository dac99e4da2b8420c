import { compareKeys, encodeListKey, ownerXml } from "../conventions";
import { s3Errors } from "../errors";
import type { S3Request } from "../request";
import { sendXml } from "../response";
import type { S3State } from "../state";
import type { Bucket, StoredObject } from "../store";
import { document, element } from "../xml";

interface ListParams {
  prefix: string;
  delimiter: string;
  encodingType: string | undefined;
  maxKeys: number;
  continuationToken: string | undefined;
  startAfter: string | undefined;
  /** The key (or common prefix) the page starts after. */
  marker: string;
  fetchOwner: boolean;
}

interface ListPage {
  contents: StoredObject[];
  commonPrefixes: string[];
  truncated: boolean;
  lastReturned: string;
}

export function listObjectsV2(state: S3State, request: S3Request): undefined {
  const bucket = state.store.bucket(request.bucket);
  const params = parseListParams(request.query);
  const page = collectPage(bucket, params);
  sendXml(
    request.res,
    200,
    document("ListBucketResult", listBucketResultXml(bucket, params, page)),
  );
  return undefined;
}

function parseListParams(query: URLSearchParams): ListParams {
  const encodingType = query.get("encoding-type") ?? undefined;
  if (encodingType !== undefined && encodingType !== "url") {
    throw s3Errors.invalidArgument(
      "Invalid Encoding Method specified in Request",
      "encoding-type",
      encodingType,
    );
  }
  const maxKeysText = query.get("max-keys");
  const maxKeys = maxKeysText === null ? 1000 : Number(maxKeysText);
  if (!Number.isInteger(maxKeys) || maxKeys < 0) {
    throw s3Errors.invalidArgument(
      "Provided max-keys not an integer or within integer range",
      "max-keys",
      maxKeysText ?? "",
    );
  }
  const continuationToken = query.get("continuation-token") ?? undefined;
  const startAfter = query.get("start-after") ?? undefined;
  let marker = startAfter ?? "";
  if (continuationToken !== undefined) {
    const decoded = decodeContinuationToken(continuationToken);
    if (decoded === undefined) {
      throw s3Errors.invalidArgument(
        "The continuation token provided is incorrect",
        "continuation-token",
        continuationToken,
      );
    }
    marker = decoded;
  }
  return {
    prefix: query.get("prefix") ?? "",
    delimiter: query.get("delimiter") ?? "",
    encodingType,
    maxKeys,
    continuationToken,
    startAfter,
    marker,
    fetchOwner: query.get("fetch-owner") === "true",
  };
}

function collectPage(bucket: Bucket, params: ListParams): ListPage {
  const { prefix, delimiter, marker, maxKeys } = params;
  const keys = [...bucket.objects.keys()]
    .filter((key) => key.startsWith(prefix) && key > marker)
    .sort(compareKeys);
  const page: ListPage = { contents: [], commonPrefixes: [], truncated: false, lastReturned: "" };
  for (const key of keys) {
    let commonPrefix: string | undefined;
    if (delimiter !== "") {
      const at = key.indexOf(delimiter, prefix.length);
      if (at >= 0) commonPrefix = key.slice(0, at + delimiter.length);
    }
    if (commonPrefix !== undefined) {
      // Keys under the prefix the previous page ended on, or the one just added.
      if (commonPrefix === marker || commonPrefix === page.commonPrefixes.at(-1)) continue;
    }
    if (page.contents.length + page.commonPrefixes.length >= maxKeys) {
      page.truncated = true;
      break;
    }
    if (commonPrefix !== undefined) {
      page.commonPrefixes.push(commonPrefix);
      page.lastReturned = commonPrefix;
    } else {
      const object = bucket.objects.get(key);
      if (object) page.contents.push(object);
      page.lastReturned = key;
    }
  }
  return page;
}

function listBucketResultXml(bucket: Bucket, params: ListParams, page: ListPage): string {
  const { contents, commonPrefixes, truncated } = page;
  const encode = (value: string) => (params.encodingType === "url" ? encodeListKey(value) : value);
  const owner = ownerXml();
  return [
    element("Name", bucket.name),
    element("Prefix", encode(params.prefix)),
    params.delimiter === "" ? "" : element("Delimiter", encode(params.delimiter)),
    element("MaxKeys", params.maxKeys),
    element("KeyCount", contents.length + commonPrefixes.length),
    element("IsTruncated", truncated),
    element("EncodingType", params.encodingType),
    element("ContinuationToken", params.continuationToken),
    truncated ? element("NextContinuationToken", encodeContinuationToken(page.lastReturned)) : "",
    element("StartAfter", params.startAfter === undefined ? undefined : encode(params.startAfter)),
    ...contents.map(
      (object) =>
        `<Contents>${element("Key", encode(object.key))}${element("LastModified", object.lastModified.toISOString())}${element("ETag", object.etag)}${element("Size", object.size)}${params.fetchOwner ? owner : ""}${element("StorageClass", "STANDARD")}</Contents>`,
    ),
    ...commonPrefixes.map(
      (value) => `<CommonPrefixes>${element("Prefix", encode(value))}</CommonPrefixes>`,
    ),
  ].join("");
}

function encodeContinuationToken(lastKey: string): string {
  return Buffer.from(JSON.stringify({ after: lastKey }), "utf8").toString("base64url");
}

function decodeContinuationToken(token: string): string | undefined {
  try {
    const parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as {
      after?: unknown;
    };
    return typeof parsed.after === "string" ? parsed.after : undefined;
  } catch {
    return undefined;
  }
}
