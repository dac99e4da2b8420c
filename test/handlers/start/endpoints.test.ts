import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

// No client mocks here: the real SDK clients talk HTTP to two tiny stand-ins,
// which proves the endpoint variables and path-style addressing are honoured.

interface Seen {
  method: string;
  url: string;
  target?: string;
  body: string;
}

async function listen(handle: (request: Seen) => { status: number; body: string; type: string }) {
  const seen: Seen[] = [];
  const server = createServer(async (request: IncomingMessage, response) => {
    let body = "";
    for await (const chunk of request) body += chunk;
    const entry: Seen = {
      method: request.method ?? "",
      url: request.url ?? "",
      body,
      ...(typeof request.headers["x-amz-target"] === "string"
        ? { target: request.headers["x-amz-target"] }
        : {}),
    };
    seen.push(entry);
    const reply = handle(entry);
    response.writeHead(reply.status, { "content-type": reply.type });
    response.end(reply.body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { server, seen, endpoint: `http://127.0.0.1:${port}` };
}

let athenaServer: { server: Server; seen: Seen[]; endpoint: string };
let s3Server: { server: Server; seen: Seen[]; endpoint: string };
const saved = { ...process.env };

beforeAll(async () => {
  athenaServer = await listen(() => ({
    status: 200,
    type: "application/x-amz-json-1.1",
    body: JSON.stringify({ QueryExecutionId: "dddddddd-0000-4000-8000-00000000000d" }),
  }));
  s3Server = await listen((request) =>
    request.method === "GET"
      ? {
          status: 404,
          type: "application/xml",
          body: '<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>missing</Message></Error>',
        }
      : { status: 200, type: "application/xml", body: "" },
  );
});

afterAll(async () => {
  process.env = saved;
  await new Promise((resolve) => athenaServer.server.close(resolve));
  await new Promise((resolve) => s3Server.server.close(resolve));
});

describe("the start Lambda against local stand-ins", () => {
  it("honours AWS_ENDPOINT_URL_ATHENA, AWS_ENDPOINT_URL_S3 and S3_FORCE_PATH_STYLE", async () => {
    Object.assign(process.env, {
      ATHENA_WORKGROUP: "local",
      RESULTS_BUCKET: "local-results",
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: "test",
      AWS_SECRET_ACCESS_KEY: "test",
      AWS_ENDPOINT_URL_ATHENA: athenaServer.endpoint,
      AWS_ENDPOINT_URL_S3: s3Server.endpoint,
      S3_FORCE_PATH_STYLE: "true",
      LOG_LEVEL: "error",
    });
    vi.resetModules();
    const { handler } = await import("../../../handlers/start-query");

    const result = await handler({ date: "2025-12-10" }, {
      awsRequestId: "req-local",
    } as Parameters<typeof handler>[1]);

    expect(result).toMatchObject({
      success: true,
      queryExecutionId: "dddddddd-0000-4000-8000-00000000000d",
    });
    expect(athenaServer.seen[0]?.target).toBe("AmazonAthena.StartQueryExecution");
    expect(JSON.parse(athenaServer.seen[0]?.body ?? "{}")).toMatchObject({
      WorkGroup: "local",
      ExecutionParameters: ["DATE '2025-12-10'", "DATE '2025-12-10'"],
    });
    const put = s3Server.seen.find((request) => request.method === "PUT");
    expect(put?.url.split("?")[0]).toBe(
      "/local-results/runs/dddddddd-0000-4000-8000-00000000000d.json",
    );
    expect(JSON.parse(put?.body ?? "{}")).toMatchObject({
      queryExecutionId: "dddddddd-0000-4000-8000-00000000000d",
    });
  });
});
