import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Integration tests talk to real servers over TCP (embedded MongoDB, local S3);
    // give them room on a 2-core CI machine without hiding real hangs.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: "forks",
    setupFiles: ["test/helpers/setup.ts"],
    restoreMocks: true,
  },
});
