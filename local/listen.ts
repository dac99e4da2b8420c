import type { Server } from "node:net";

export interface ListenOptions {
  /** 0 (the default) picks a free port. */
  port?: number;
  /** Loopback by default: the stand-ins are for this machine only. */
  host?: string;
}

/**
 * Starts `server` listening and resolves with the port it got. A failure to bind
 * (EADDRINUSE, EACCES) rejects instead of surfacing as an unhandled `error` event.
 */
export async function listen(server: Server, options: ListenOptions = {}): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("server has no TCP address");
  return address.port;
}
