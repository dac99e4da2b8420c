import { ApiError } from "./errors";

/** Readers for the fields of a request body, answering Athena's InvalidRequestException. */

export function requireString(
  input: Record<string, unknown>,
  name: string,
  min: number,
  max: number,
): string {
  const value = input[name];
  if (typeof value !== "string" || value.length < min || value.length > max) {
    throw new ApiError(
      "InvalidRequestException",
      `${name} is required and must be a string of ${min} to ${max} characters.`,
    );
  }
  return value;
}

export function optionalString(input: Record<string, unknown>, name: string): string | undefined {
  const value = input[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string")
    throw new ApiError("InvalidRequestException", `${name} must be a string.`);
  return value;
}

export function optionalStringArray(
  input: Record<string, unknown>,
  name: string,
): string[] | undefined {
  const value = input[name];
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.some((item) => typeof item !== "string")) {
    throw new ApiError("InvalidRequestException", `${name} must be a list of strings.`);
  }
  return value as string[];
}

export function optionalObject(
  input: Record<string, unknown>,
  name: string,
): Record<string, unknown> | undefined {
  const value = input[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new ApiError("InvalidRequestException", `${name} must be an object.`);
  }
  return value as Record<string, unknown>;
}

/** Pages are numbered by offset, sent base64url-encoded as NextToken. */
export function pageOffsetOf(token: string | undefined): number {
  return token === undefined ? 0 : Number(Buffer.from(token, "base64url").toString("utf8"));
}

export function nextTokenOf(offset: number): string {
  return Buffer.from(String(offset)).toString("base64url");
}

export function parseS3Location(
  location: string,
  workGroup: string,
): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([^/]+)\/?(.*)$/.exec(location);
  if (!match?.[1]) {
    throw new Error(
      `Work group ${workGroup}: output location must be s3://bucket/prefix/, got ${location}`,
    );
  }
  const path = match[2] ?? "";
  return { bucket: match[1], prefix: path === "" || path.endsWith("/") ? path : `${path}/` };
}
