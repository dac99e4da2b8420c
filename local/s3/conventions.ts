/** How S3 writes keys, ETags and dates, shared by the operations that answer with them. */

import { element } from "./xml";

export const OWNER_ID = "75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a";

export function stripQuotes(etag: string): string {
  return etag.trim().replace(/^W\//, "").replace(/^"|"$/g, "");
}

export function wholeSeconds(date: Date): Date {
  // HTTP dates carry whole seconds; keep listings and headers in agreement.
  return new Date(Math.floor(date.getTime() / 1000) * 1000);
}

/** S3 lists keys (and buckets) in UTF-8 byte order, not UTF-16 code unit order. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

/** `encoding-type=url` in listings: percent-encoding as S3 does, keeping "/". */
export function encodeListKey(key: string): string {
  return key
    .split("/")
    .map((segment) =>
      encodeURIComponent(segment).replace(
        /[!'()*]/g,
        (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
      ),
    )
    .join("/");
}

export function ownerXml(): string {
  return `<Owner>${element("ID", OWNER_ID)}${element("DisplayName", "local")}</Owner>`;
}
