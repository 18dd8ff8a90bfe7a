import {defineConfig} from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    // The first test file to serve the site builds it (every data loader, on full-size models): minutes here.
    hookTimeout: 900_000,
    pool: "forks",
    // Brings the loopback interface up in a fresh network namespace (`unshare -rn npm test`); makes the run's
    // folder, where the site is built once for every test file that serves it.
    globalSetup: ["test/helpers/loopback.ts", "test/helpers/run-folder.ts"],
    env: {LMW_MODELS: "test/fixtures"}
  }
});
