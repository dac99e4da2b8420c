import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { listen } from "./listen";
import type { S3Faults } from "./s3/faults";
import {
  addNotification,
  type DeliveryFailure,
  type NotificationRule,
  notifyCreated,
  waitForDeliveries,
} from "./s3/notifications";
import { parseTarget, type S3Request } from "./s3/request";
import { sendError } from "./s3/response";
import { routeRequest } from "./s3/routes";
import { createS3State, ensureBucket, type S3State } from "./s3/state";
import { createHostId, createRequestId } from "./s3-events";

export type { CutDownloadSpec, S3Faults } from "./s3/faults";
export type { DeliveryFailure, NotificationRule };

/**
 * An in-process S3 stand-in speaking enough of the S3 REST API (path-style) for the real
 * SDK v3 S3Client, with S3-shaped event notifications delivered asynchronously to
 * in-process callbacks (as S3 invokes a Lambda asynchronously). Object bytes are kept in
 * files, metadata in memory. Signatures are not checked.
 *
 * Where it knowingly differs from S3:
 * - Path-style addressing only; one region; any credentials.
 * - Events: ObjectCreated (Put, Copy, CompleteMultipartUpload) only, each delivered exactly
 *   once (S3 promises at least once). Rule prefix/suffix match the plain key; S3 matches
 *   filter values against the URL-encoded key (a space must be written "+").
 * - `versioning: true` gives objects a versionId but keeps only the latest version, and
 *   DeleteObject removes it (no delete markers).
 * - CRC32, SHA-1, SHA-256 and Content-MD5 are verified; CRC32C/CRC64NVME are accepted
 *   unverified; checksums are not stored or returned on GET.
 * - Not served (NotImplemented): ListObjects v1, ListParts, ListMultipartUploads,
 *   UploadPartCopy, ACLs, policies and other bucket configuration, SSE, object lock.
 * - Last-Modified has whole seconds, in listings too.
 */

export interface S3ServerOptions {
  /** 0 (the default) picks a free port. */
  port?: number;
  /** Where object bytes are stored; a fresh temp dir (removed on stop) when omitted. */
  dir?: string;
  region?: string;
  notifications?: NotificationRule[];
  /** Give every object a versionId (only the latest version is kept). */
  versioning?: boolean;
  /** Called for every `deliver` that throws or rejects (they are also kept in `deliveryErrors`). */
  onDeliveryError?: (failure: DeliveryFailure) => void;
}

export interface S3Server {
  /** `http://127.0.0.1:<port>`: use with `forcePathStyle: true`. */
  endpoint: string;
  port: number;
  region: string;
  /** Where object bytes live. */
  dir: string;
  addNotification(rule: NotificationRule): void;
  /** Resolves when no notification deliveries are in flight (including ones they caused). */
  idle(): Promise<void>;
  /** Every failed delivery so far. */
  readonly deliveryErrors: DeliveryFailure[];
  /** Failures injected on purpose: downloads cut after some bytes. */
  faults: S3Faults;
  /** Creates a bucket without going through HTTP (no-op when it exists). */
  createBucket(name: string): void;
  /** Waits for deliveries in flight, closes every socket, removes the temp dir it made. */
  stop(): Promise<void>;
}

export async function startS3Server(options: S3ServerOptions = {}): Promise<S3Server> {
  const state = await createS3State(options);
  for (const rule of options.notifications ?? []) addNotification(state, rule);

  const server = createServer((req, res) => {
    void handleRequest(state, req, res);
  });
  // Multi-GB uploads on a slow disk may take longer than Node's default 5 minutes.
  server.requestTimeout = 0;
  server.on("clientError", (_error, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    else socket.destroy();
  });
  const port = await listen(server, { port: options.port });
  state.endpoint = `http://127.0.0.1:${port}`;

  const idle = () => waitForDeliveries(state.notifications);
  let stopped: Promise<void> | undefined;
  return {
    endpoint: state.endpoint,
    port,
    region: state.region,
    dir: state.store.dir,
    addNotification: (rule) => addNotification(state, rule),
    idle,
    deliveryErrors: state.notifications.deliveryErrors,
    faults: {
      cutDownloads: (spec) => state.faults.cutDownloads(spec),
      reset: () => state.faults.reset(),
    },
    createBucket: (name) => {
      ensureBucket(state, name);
    },
    stop() {
      stopped ??= (async () => {
        await idle();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        if (state.ownsDir) await state.store.removeAll();
      })();
      return stopped;
    },
  };
}

async function handleRequest(
  state: S3State,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const ids = { method: req.method ?? "GET", requestId: createRequestId(), hostId: createHostId() };
  res.setHeader("x-amz-request-id", ids.requestId);
  res.setHeader("x-amz-id-2", ids.hostId);
  res.setHeader("Server", "AmazonS3");
  let request: S3Request | undefined;
  try {
    request = { req, res, ...ids, ...parseTarget(req.url ?? "/") };
    const created = await routeRequest(state, request);
    if (created) notifyCreated(state, created);
  } catch (error) {
    sendError(res, ids, request, error);
  } finally {
    // Unread request bodies (errors before the body was consumed) must not stall the socket.
    if (!req.complete) req.resume();
  }
}
