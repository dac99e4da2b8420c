import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { TSX_IMPORT } from "./processes";

/**
 * Others edit the ingest and the Mongo stand-in in this working tree while a bench runs
 * for many minutes. So by default the bench measures a commit, not the working tree:
 * HEAD's handlers/, local/, bench/ (and infra/ingest-memory.ts) are extracted under .bench/ (inside the repo, so
 * node_modules resolve) and the bench runs from there. The report names that commit.
 */
export const SNAPSHOT_ENV = "TRACKING_SYNC_BENCH_SNAPSHOT";
export const REPO_ENV = "TRACKING_SYNC_BENCH_REPO";

export interface Snapshot {
  commit: string;
  dir: string;
}

function git(repo: string, args: string[]): string {
  return execFileSync("git", args, { cwd: repo, encoding: "utf8" }).trim();
}

export function extractSnapshot(repo: string, revision = "HEAD"): Snapshot {
  const commit = git(repo, ["rev-parse", "--short=12", revision]);
  const dir = join(repo, ".bench", `snapshot-${commit}-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  execFileSync(
    "sh",
    [
      "-c",
      `git archive ${commit} handlers local bench infra/ingest-memory.ts | tar -x -C "${dir}"`,
    ],
    {
      cwd: repo,
    },
  );
  if (!existsSync(join(dir, "bench", "bench.ts"))) {
    throw new Error(`commit ${commit} has no bench/bench.ts to run`);
  }
  return { commit, dir };
}

/**
 * Runs the snapshot's bench with the same arguments and exits with its status. Ctrl-C
 * reaches the child through the terminal's process group; the child cleans up its own
 * servers and files, then this removes the snapshot.
 */
export function runInSnapshot(repo: string, args: string[]): void {
  const snapshot = extractSnapshot(repo);
  process.stderr.write(
    `[bench] measuring commit ${snapshot.commit} (use --working-tree for uncommitted code)\n`,
  );
  const child = spawn(
    process.execPath,
    [...TSX_IMPORT, join(snapshot.dir, "bench", "bench.ts"), ...args],
    {
      stdio: "inherit",
      env: { ...process.env, [SNAPSHOT_ENV]: snapshot.commit, [REPO_ENV]: repo },
    },
  );
  const forward = (signal: NodeJS.Signals) => () => {
    if (signal !== "SIGINT") child.kill(signal);
  };
  const handlers = (["SIGINT", "SIGTERM", "SIGHUP"] as const).map((signal) => {
    const handler = forward(signal);
    process.on(signal, handler);
    return handler;
  });
  child.once("exit", (code, signal) => {
    void handlers;
    rmSync(snapshot.dir, { recursive: true, force: true });
    process.exit(code ?? (signal ? 130 : 1));
  });
}
