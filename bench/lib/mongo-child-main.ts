/**
 * Child-process entry: the embedded MongoDB server, with a count of the commands it
 * executes, answering the parent over IPC. The server's own file offers no counter, so
 * the count wraps `MongoEngine.prototype.execute` here rather than editing the server.
 *
 * Argv: `--latency-ms L`. Messages in: `counts`, `reset-counts`, `stop`.
 * Messages out: `ready {uri}`, `counts {counts, updateStatements, insertedDocuments, cpuSeconds}` (since the
 * last reset).
 */
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
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
    });
  } else if (message.type === "reset-counts") {
    counts = {};
    updateStatements = 0;
    insertedDocuments = 0;
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
