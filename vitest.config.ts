import {defineConfig} from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    pool: "forks",
    // Brings the loopback interface up in a fresh network namespace (`unshare -rn npm test`).
    globalSetup: ["test/helpers/loopback.ts"],
    env: {LMW_MODELS: "test/fixtures"}
  }
});
