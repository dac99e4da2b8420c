import { createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { listen } from "../../local/listen";

const servers: Server[] = [];

function newServer(): Server {
  const server = createServer((socket) => socket.end());
  servers.push(server);
  return server;
}

afterEach(async () => {
  for (const server of servers.splice(0)) {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

describe("listen", () => {
  it("resolves with the free port it was given when asked for port 0, on loopback", async () => {
    const server = newServer();

    const port = await listen(server);

    expect(port).toBeGreaterThan(0);
    expect(server.address()).toMatchObject({ address: "127.0.0.1", port });
  });

  it("listens on the port and host asked for", async () => {
    const first = newServer();
    const port = await listen(first);
    await new Promise<void>((resolve) => first.close(() => resolve()));
    servers.splice(servers.indexOf(first), 1);

    const server = newServer();
    const got = await listen(server, { port, host: "127.0.0.1" });

    expect(got).toBe(port);
  });

  it("rejects when the port is taken, and leaves no error listener behind", async () => {
    const taken = await listen(newServer());
    const server = newServer();

    await expect(listen(server, { port: taken })).rejects.toMatchObject({ code: "EADDRINUSE" });
    expect(server.listenerCount("error")).toBe(0);
  });
});
