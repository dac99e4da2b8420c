#!/usr/bin/env node
// The package registry this project's machines reach serves only some platform builds
// of packages that ship native binaries (e.g. no darwin/win32 builds of @biomejs/cli-*
// or @duckdb/node-bindings-*). `npm install` then leaves those optional dependencies out
// of package-lock.json, and `npm ci` refuses a lockfile that lacks them. This adds an
// entry per missing platform package, with its os/cpu/libc, so `npm ci` accepts the
// lockfile and skips them on every other platform, exactly as it would with a complete
// lockfile. Run it after `npm install` changes dependencies: `node .ci/complete-lockfile.mjs`.
// On a complete lockfile it changes nothing.
import { readFileSync, writeFileSync } from "node:fs";

const PLATFORM =
  /^(?:cli|node-bindings)-(android|darwin|linux|win32|freebsd)-(x64|arm64|ia32|arm)(?:-(musl|gnu))?$/;
const lockPath = process.argv[2] ?? "package-lock.json";
const lock = JSON.parse(readFileSync(lockPath, "utf8"));
const added = [];

for (const entry of Object.values(lock.packages)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const key = `node_modules/${name}`;
    const platform = PLATFORM.exec(name.split("/")[1] ?? "");
    if (lock.packages[key] || !platform) continue;
    const [, os, cpu, libc] = platform;
    lock.packages[key] = {
      version,
      ...(entry.dev ? { dev: true } : {}),
      optional: true,
      os: [os],
      cpu: [cpu],
      ...(os === "linux" ? { libc: [libc === "musl" ? "musl" : "glibc"] } : {}),
    };
    added.push(`${name}@${version}`);
  }
}

const [root, ...rest] = Object.entries(lock.packages);
rest.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
lock.packages = Object.fromEntries([root, ...rest]);
writeFileSync(lockPath, `${JSON.stringify(lock, null, 2)}\n`);
console.log(added.length ? `added ${added.length}: ${added.join(", ")}` : "lockfile complete");
