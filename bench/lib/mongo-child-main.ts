/**
 * Child-process entry: the embedded MongoDB server, with a count of the commands it
 * executes, answering the parent over IPC. The server's own file offers no counter, so
 * the count wraps `MongoEngine.prototype.execute` here rather than editing the server.
 *
 * Argv: `--latency-ms L`. Messages in: `counts`, `reset-counts`, `stop`.
 * Messages out: `ready {uri}`, `counts {counts, updateStatements, insertedDocuments,
 * requestBytes, cpuSeconds}` (since the last reset).
 */
import { syncBuiltinESMExports } from "node:module";
import net, { type Socket } from "node:net";
import type { Document } from "mongodb";
import { commandName, MongoEngine } from "../../local/mongo/engine";
import { startMongoServer } from "../../local/mongo-server";

const latencyArg = process.argv.indexOf("--latency-ms");
const latencyMs = latencyArg >= 0 ? Number(process.argv[latencyArg + 1]) : 0;

let counts: Record<string, number> = {};
let updateStatements = 0;
let insertedDocuments = 0;
let cpuSince = process.cpuUsage();
const execute = MongoEngine.prototype.execute;
MongoEngine.prototype.execute = function countedExecute(
  this: MongoEngine,
  command: Document,
  context: Parameters<MongoEngine["execute"]>[1],
) {
  const name = commandName(command) ?? "";
  counts[name] = (counts[name] ?? 0) + 1;
  if (name === "update" && Array.isArray(command.updates))
    updateStatements += command.updates.length;
  if (name === "insert" && Array.isArray(command.documents)) {
    insertedDocuments += command.documents.length;
  }
  return execute.call(this, command, context);
};

// Bytes the clients sent, counted per socket: what the driver had to serialize. Same
// reason as above: the server's file has no hook, so its net.createServer is wrapped
// (before startMongoServer calls it; syncBuiltinESMExports updates the named import).
const sockets = new Set<Socket>();
let closedBytes = 0;
let bytesAtReset = 0;
const createServer = net.createServer;
net.createServer = ((...args: Parameters<typeof createServer>) => {
  const server = createServer(...args);
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => {
      sockets.delete(socket);
      closedBytes += socket.bytesRead;
    });
  });
  return server;
}) as typeof createServer;
syncBuiltinESMExports();
const bytesRead = () => {
  let total = closedBytes;
  for (const socket of sockets) total += socket.bytesRead;
  return total;
};

const send = (message: unknown) => process.send?.(message);

const server = await startMongoServer({ latencyMs });
process.on("message", (message: { type: string }) => {
  if (message.type === "counts") {
    const cpu = process.cpuUsage(cpuSince);
    send({
      type: "counts",
      counts,
      updateStatements,
      insertedDocuments,
      requestBytes: bytesRead() - bytesAtReset,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
    });
  } else if (message.type === "reset-counts") {
    counts = {};
    updateStatements = 0;
    insertedDocuments = 0;
    bytesAtReset = bytesRead();
    cpuSince = process.cpuUsage();
    send({ type: "reset-counts" });
  } else if (message.type === "stop") {
    void server.stop().then(() => process.exit(0));
  }
});
process.once("SIGTERM", () => void server.stop().then(() => process.exit(0)));
// The parent going away (even by SIGKILL) must not leave a server running.
process.once("disconnect", () => process.exit(0));
send({ type: "ready", uri: server.uri });
