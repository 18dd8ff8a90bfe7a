import {configDefaults, defineConfig} from "vitest/config";

/**
 * The files that run onnxruntime-web's WebGPU builds in Node, on Dawn over SwiftShader. They run one after another
 * in one process, without isolation: there onnxruntime keeps the shaders it compiled (per device, and the native
 * provider's device is held by `holdNativeWebGPU`), so a file finds those its predecessors compiled for the same
 * fixtures. Compiling shaders is most of what SwiftShader spends on the small fixtures: webgpu-node.test.ts took
 * 155 s alone and 37 s after lean-decode.test.ts, interventions-webgpu.test.ts 64 s and 26 s. What each file checks
 * is unchanged. Not webgpu-counts.test.ts: it reads onnxruntime's verbose log, which only a runtime that starts
 * verbose writes.
 */
const DAWN_FILES = ["test/lean-decode.test.ts", "test/webgpu-node.test.ts", "test/interventions-webgpu.test.ts"];

/**
 * The files that drive Chromium, and the SwiftShader counts: one at a time, each keeps the two cores busy (a browser's
 * renderer, GPU process and worker threads; SwiftShader's threads), and two at a time ran 2.5–3× slower with waits
 * timing out. A new test file that launches a browser (helpers/browser.ts) belongs here.
 */
const ONE_AT_A_TIME = [
  "test/browser.test.ts",
  "test/e2e.test.ts",
  "test/e2e-families.test.ts",
  "test/embed.test.ts",
  "test/hub-browser.test.ts",
  "test/inside-e2e.test.ts",
  "test/lecture-e2e.test.ts",
  "test/webgpu.test.ts",
  "test/webgpu-counts.test.ts"
];

export default defineConfig({
  test: {
    testTimeout: 120_000,
    // The first test file to serve the site builds it (every data loader, on full-size models): minutes here.
    hookTimeout: 900_000,
    pool: "forks",
    // V8's baseline WebAssembly compiler only, as in the browser tests (test/helpers/browser.ts, LIFTOFF_ONLY): each
    // test process starts onnxruntime-web afresh, and TurboFan recompiling its hot functions on background threads
    // cost more than the tiny fixtures' runs gain (two lean-decode tests on Dawn: 51 s → 22 s). Numbers do not
    // depend on the compiler; the bench runs outside vitest, optimized.
    execArgv: ["--liftoff-only"],
    // Brings the loopback interface up in a fresh network namespace (`unshare -rn npm test`); makes the run's
    // folder, where the site is built once for every test file that serves it.
    globalSetup: ["test/helpers/loopback.ts", "test/helpers/run-folder.ts"],
    env: {LMW_MODELS: "test/fixtures"},
    projects: [
      // First, two files at a time: the engine in Node, the CLI, the Hub, the relay, and the site's data, whose first
      // file builds the site (every data loader, on full-size gpt2 and SmolLM2: a minute). These leave a core idle
      // much of the time (a CLI's child process starting, a Python interpreter, one onnxruntime thread): 188 → 149 s.
      {
        extends: true,
        test: {
          name: "node",
          include: ["test/**/*.test.ts"],
          exclude: [...configDefaults.exclude, ...ONE_AT_A_TIME, ...DAWN_FILES],
          maxWorkers: 2
        }
      },
      // Then the browser files and the counts, one at a time (sequence.groupOrder), on the site built above.
      {
        extends: true,
        test: {name: "browser", include: ONE_AT_A_TIME, maxWorkers: 1, sequence: {groupOrder: 1}}
      },
      // Last under `npx vitest run`. `npm test` (test/run.ts) runs this project in a process of its own beside the
      // browser project, at the lowest CPU priority, in the cores the browser files leave idle.
      {
        extends: true,
        test: {name: "dawn", include: DAWN_FILES, isolate: false, maxWorkers: 1, sequence: {groupOrder: 2}}
      }
    ]
  }
});
