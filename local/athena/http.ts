import type { IncomingMessage, ServerResponse } from "node:http";
import { ApiError } from "./errors";

const MAX_BODY = 1024 * 1024;

export async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new ApiError("InvalidRequestException", "Request body too large.");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** The body as the JSON object every Athena request is. */
export function parseInput(body: string): Record<string, unknown> {
  let input: unknown;
  try {
    input = body.length === 0 ? {} : JSON.parse(body);
  } catch {
    throw new ApiError("SerializationException", "Request body is not valid JSON.");
  }
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw new ApiError("SerializationException", "Request body must be a JSON object.");
  }
  return input as Record<string, unknown>;
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  requestId: string,
): void {
  const payload = Buffer.from(JSON.stringify(body), "utf8");
  res.statusCode = status;
  res.setHeader("Content-Type", "application/x-amz-json-1.1");
  res.setHeader("Content-Length", String(payload.length));
  res.setHeader("x-amzn-RequestId", requestId);
  res.end(payload);
}

/** Anything but an ApiError is the stand-in's own fault: a 500 InternalServerException. */
export function sendApiError(res: ServerResponse, error: unknown, requestId: string): void {
  const apiError =
    error instanceof ApiError
      ? error
      : new ApiError(
          "InternalServerException",
          error instanceof Error ? error.message : String(error),
          500,
        );
  res.setHeader("x-amzn-ErrorType", apiError.type);
  sendJson(
    res,
    apiError.status,
    {
      __type: apiError.type,
      Message: apiError.message,
      ...(apiError.type === "InvalidRequestException"
        ? { AthenaErrorCode: apiError.athenaErrorCode }
        : {}),
    },
    requestId,
  );
}
