import { type Document, Long } from "mongodb";

/** A plain object as stored: keys in insertion order, BSON wrapper classes as leaves. */
export type StoredDocument = Record<string, unknown>;

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== "object") return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Deep copy of plain objects and arrays. BSON value classes (ObjectId, Long, Decimal128,
 * Binary...) are immutable and shared; Dates are copied because they are mutable.
 */
export function cloneValue<T>(value: T): T {
  if (Array.isArray(value)) return value.map((item) => cloneValue(item)) as T;
  if (value instanceof Date) return new Date(value.getTime()) as T;
  if (isPlainObject(value)) {
    const copy: Record<string, unknown> = {};
    for (const key of Object.keys(value)) copy[key] = cloneValue(value[key]);
    return copy as T;
  }
  return value;
}

/** Reads a dotted path without traversing arrays (index keys, upsert shapes). */
export function getPath(doc: unknown, path: string): unknown {
  let current: unknown = doc;
  for (const part of path.split(".")) {
    if (Array.isArray(current) && /^\d+$/.test(part)) {
      current = current[Number(part)];
    } else if (current !== null && typeof current === "object" && !Array.isArray(current)) {
      current = (current as Record<string, unknown>)[part];
    } else {
      return undefined;
    }
  }
  return current;
}

/** Writes a dotted path, creating intermediate objects. */
export function setPath(doc: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split(".");
  let current: Record<string, unknown> = doc;
  for (let i = 0; i < parts.length - 1; i++) {
    const part = parts[i] as string;
    const next = current[part];
    if (next === null || typeof next !== "object") {
      const created: Record<string, unknown> = {};
      current[part] = created;
      current = created;
    } else {
      current = next as Record<string, unknown>;
    }
  }
  current[parts[parts.length - 1] as string] = value;
}

/** Numbers arrive as JS numbers (Int32/Double promoted) or Long; anything else is not a number. */
export function toNumber(value: unknown): number | undefined {
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  if (value instanceof Long) return value.toNumber();
  if (value !== null && typeof value === "object" && "_bsontype" in value) {
    const bsonType = (value as { _bsontype: string })._bsontype;
    if (bsonType === "Int32" || bsonType === "Double" || bsonType === "Decimal128") {
      return Number((value as { valueOf(): unknown }).valueOf?.() ?? String(value));
    }
  }
  return undefined;
}

export function bsonTypeOf(value: unknown): string | undefined {
  if (value !== null && typeof value === "object" && "_bsontype" in value) {
    return (value as { _bsontype: string })._bsontype;
  }
  return undefined;
}

/**
 * Canonical, injective encoding of a value for index keys: a type tag, then the payload;
 * strings and field names are length-prefixed so no two values share an encoding. All
 * numeric types share one tag because MongoDB's indexes treat 1, 1.0 and NumberLong(1)
 * as the same key; Dates, strings and ObjectIds get distinct tags so they never collide.
 * Missing is null, as in MongoDB's indexes.
 */
function encodeKeyPart(value: unknown): string {
  if (value === undefined || value === null) return "n";
  switch (typeof value) {
    case "string":
      return `s${value.length}:${value}`;
    case "number":
      return `d${Object.is(value, -0) ? 0 : value};`;
    case "boolean":
      return value ? "b1" : "b0";
  }
  if (value instanceof Date) return `t${value.getTime()};`;
  if (Array.isArray(value)) return `a${value.length}[${value.map(encodeKeyPart).join("")}]`;
  if (isPlainObject(value)) {
    let encoded = `o${Object.keys(value).length}{`;
    for (const key of Object.keys(value)) {
      encoded += `${key.length}:${key}${encodeKeyPart(value[key])}`;
    }
    return `${encoded}}`;
  }
  const bsonType = bsonTypeOf(value);
  if (bsonType === "ObjectId") return `i${(value as { toHexString(): string }).toHexString()}`;
  if (bsonType === "Long") {
    const long = value as Long;
    const asNumber = long.toNumber();
    return Number.isSafeInteger(asNumber) ? `d${asNumber};` : `l${long.toString()};`;
  }
  if (value instanceof RegExp) return `r${value.source.length}:${value.source}/${value.flags};`;
  const text = String(value);
  return `x${bsonType ?? typeof value}:${text.length}:${text}`;
}

export function encodeKey(values: readonly unknown[]): string {
  let encoded = "";
  for (const value of values) encoded += encodeKeyPart(value);
  return encoded;
}

/** Renders a key value the way MongoDB's E11000 messages do: `{ a: "x", b: 1 }`. */
export function formatKeyValue(keyValue: Document): string {
  const parts = Object.keys(keyValue).map((key) => `${key}: ${formatValue(keyValue[key])}`);
  return parts.length === 0 ? "{}" : `{ ${parts.join(", ")} }`;
}

function formatValue(value: unknown): string {
  if (value === undefined || value === null) return "null";
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (value instanceof Date) return `new Date(${value.getTime()})`;
  if (Array.isArray(value)) return `[ ${value.map(formatValue).join(", ")} ]`;
  if (isPlainObject(value)) return formatKeyValue(value);
  const bsonType = bsonTypeOf(value);
  if (bsonType === "ObjectId") return `ObjectId('${String(value)}')`;
  if (bsonType === "Long") return String(value);
  return String(value);
}
