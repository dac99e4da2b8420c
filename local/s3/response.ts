import type { ServerResponse } from "node:http";
import { S3Error } from "./errors";
import type { S3Request } from "./request";
import { element } from "./xml";

export function send(res: ServerResponse, status: number): void {
  res.statusCode = status;
  if (status !== 204 && status !== 304) res.setHeader("Content-Length", "0");
  res.end();
}

export function sendXml(res: ServerResponse, status: number, xml: string): void {
  const body = Buffer.from(xml, "utf8");
  res.statusCode = status;
  res.setHeader("Content-Type", "application/xml");
  res.setHeader("Content-Length", String(body.length));
  res.end(body);
}

/** The error document S3 answers with; `request` is undefined when the target did not parse. */
export function sendError(
  res: ServerResponse,
  ids: { method: string; requestId: string; hostId: string },
  request: S3Request | undefined,
  error: unknown,
): void {
  if (res.headersSent) {
    // Mid-body failure: the only honest signal left is a broken connection.
    res.destroy();
    return;
  }
  const s3Error =
    error instanceof S3Error
      ? error
      : new S3Error(
          "InternalError",
          500,
          `We encountered an internal error. Please try again. (${error instanceof Error ? error.message : String(error)})`,
        );
  for (const [name, value] of Object.entries(s3Error.headers)) res.setHeader(name, value);
  if (s3Error.statusCode === 405) res.setHeader("Allow", "GET, PUT, HEAD, DELETE, POST");
  if (ids.method === "HEAD") {
    // HEAD errors carry no body; the SDK maps the status (404 → NotFound).
    send(res, s3Error.statusCode);
    return;
  }
  const details = Object.entries(s3Error.details)
    .map(([name, value]) => element(name, value))
    .join("");
  const resource = request
    ? `/${request.bucket}${request.key === "" ? "" : `/${request.key}`}`
    : undefined;
  const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<Error>${element("Code", s3Error.code)}${element("Message", s3Error.message)}${details}${element("Resource", resource)}${element("RequestId", ids.requestId)}${element("HostId", ids.hostId)}</Error>`;
  // Keep the connection usable when the request body was never read.
  if (request && !request.req.complete) res.setHeader("Connection", "close");
  sendXml(res, s3Error.statusCode, xml);
}
