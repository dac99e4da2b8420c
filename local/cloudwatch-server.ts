import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { listen } from "./listen";

/**
 * Just enough of CloudWatch for the local pipeline: PutMetricData over the AWS JSON
 * 1.0 protocol the SDK v3 client speaks (`X-Amz-Target: GraniteServiceVersion20100801.*`).
 * Without it the handlers' metric calls would try to reach AWS; with it the demo can
 * show what they published. Reached through `AWS_ENDPOINT_URL_CLOUDWATCH`.
 */

export interface PublishedMetric {
  namespace: string;
  name: string;
  value: number | undefined;
  unit: string | undefined;
  dimensions: Record<string, string>;
}

export interface CloudWatchServer {
  endpoint: string;
  port: number;
  /** Every datum received, in arrival order. */
  readonly metrics: PublishedMetric[];
  stop(): Promise<void>;
}

const TARGET_PREFIX = "GraniteServiceVersion20100801.";
const MAX_BODY = 1024 * 1024;

interface MetricDatum {
  MetricName?: string;
  Value?: number;
  Values?: number[];
  Unit?: string;
  Dimensions?: { Name?: string; Value?: string }[];
}

export async function startCloudWatchServer(
  options: { port?: number } = {},
): Promise<CloudWatchServer> {
  const metrics: PublishedMetric[] = [];
  const server = createServer((req, res) => {
    handle(req, res, metrics).catch((error: unknown) => {
      reply(res, 500, { __type: "InternalFailure", message: String(error) });
    });
  });
  const port = await listen(server, { port: options.port });
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    metrics,
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  metrics: PublishedMetric[],
): Promise<void> {
  const target = String(req.headers["x-amz-target"] ?? "");
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) return reply(res, 413, { __type: "RequestEntityTooLarge" });
    chunks.push(chunk as Buffer);
  }
  if (req.method !== "POST" || !target.startsWith(TARGET_PREFIX)) {
    return reply(res, 400, { __type: "UnknownOperationException", message: target });
  }
  const operation = target.slice(TARGET_PREFIX.length);
  if (operation !== "PutMetricData") {
    return reply(res, 400, {
      __type: "UnknownOperationException",
      message: `${operation} is not supported by the local CloudWatch stand-in`,
    });
  }
  const body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as {
    Namespace?: string;
    MetricData?: MetricDatum[];
  };
  for (const datum of body.MetricData ?? []) {
    metrics.push({
      namespace: body.Namespace ?? "",
      name: datum.MetricName ?? "",
      value: datum.Value ?? datum.Values?.[0],
      unit: datum.Unit,
      dimensions: Object.fromEntries(
        (datum.Dimensions ?? []).map((d) => [d.Name ?? "", d.Value ?? ""]),
      ),
    });
  }
  reply(res, 200, {});
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  res.writeHead(status, { "content-type": "application/x-amz-json-1.0" });
  res.end(JSON.stringify(body));
}
