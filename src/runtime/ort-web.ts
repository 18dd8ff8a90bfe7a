/**
 * onnxruntime-web in the browser: pick WebGPU when the browser has a usable hardware adapter, WASM otherwise,
 * say why in one sentence, and point ort at the .wasm file the site ships.
 *
 * A software adapter (SwiftShader, llvmpipe, a "fallback adapter") runs every kernel on the CPU, one shader
 * invocation at a time: gives the right answers many times slower than ort's own WASM kernels, so "auto" never
 * picks it; `allowSoftwareAdapter` (the pages' `?backend=webgpu`) takes it anyway, as the tests do. A hardware
 * adapter is not always faster either (an integrated GPU against a many-core CPU): with `probe` (the pages' worker
 * asks for it) a short timed run on both settles it on first load, and the answer is kept (runtime/probe.ts).
 *
 * Three builds of onnxruntime-web, each loaded only where it runs: WASM runs on `onnxruntime-web/wasm`, the CPU
 * kernels alone (a 15 MB module against the JSEP build's 30 MB: V8 compiles half as much, and a tab holds less —
 * docs/performance.md, "The WASM build"); WebGPU runs on `onnxruntime-web/webgpu`, the C++ WebGPU execution provider
 * (JSEP is deprecated since onnxruntime 1.29, and only the native provider writes the lean decoder's key/value cache
 * in place: runtime/decode.ts); `webgpuBuild: "jsep"` runs it on the default export, the JSEP build (kernels in
 * TypeScript).
 *
 * The .wasm paths come from `import.meta.resolve("onnxruntime-web/ort-wasm-simd-threaded.wasm")` (and `….jsep.wasm`,
 * `….asyncify.wasm`): Observable Framework rewrites those literals into the built files' URLs and copies the files
 * into the site (`_node/onnxruntime-web@<version>/`), in preview and in build alike. Elsewhere pass `wasmPaths`,
 * `jsepWasmPaths` and `nativeWasmPaths`. The JS glue (`.mjs`) is inside ort's bundles, so only the .wasm is fetched.
 */
import * as wasmOrt from "onnxruntime-web/wasm";
import type {GPUAdapterLike, GPULike} from "./webgpu-types.js";
import {cacheStore, timeBackends, type ProbeStore, type ProbeTimes} from "./probe.js";

/** onnxruntime-web, whichever build: they share one API. */
export type Ort = typeof wasmOrt;

export type WebBackend = "webgpu" | "wasm";

/**
 * Which onnxruntime-web build runs WebGPU: "native", the C++ WebGPU execution provider (`onnxruntime-web/webgpu`,
 * the default), or "jsep", the default export's kernels in TypeScript.
 */
export type WebGPUBuild = "jsep" | "native";

export interface WebRuntime {
  /** The build that runs `backend`: create its sessions with it. */
  ort: Ort;
  backend: WebBackend;
  /** One sentence: which backend and why ("WebGPU: adapter …", "WASM: navigator.gpu is missing"). */
  reason: string;
  /** WASM threads: navigator.hardwareConcurrency when cross-origin isolated, else 1. */
  threads: number;
  /** The build `ort` is, where the backend is WebGPU: the native provider's writes its cache in place. */
  webgpuBuild?: WebGPUBuild;
}

export interface WebRuntimeOptions {
  /** Try WebGPU first (default true). False forces WASM. */
  preferWebGPU?: boolean;
  /** Take a software WebGPU adapter too (default false: WASM is the faster path there). */
  allowSoftwareAdapter?: boolean;
  /** Where the WASM build finds its .wasm (`ort-wasm-simd-threaded.wasm`): a folder URL ending in "/", or {wasm, mjs}. */
  wasmPaths?: WasmPaths;
  /** Another build of onnxruntime-web to configure and run both backends on, as it is (Node's WebGPU path passes its own; see webgpu-node.ts). */
  ort?: Ort;
  /** Which build runs WebGPU where no `ort` is given (default "native"). */
  webgpuBuild?: WebGPUBuild;
  /** Where the native build finds its .wasm (`ort-wasm-simd-threaded.asyncify.wasm`), as `wasmPaths`. */
  nativeWasmPaths?: WasmPaths;
  /** Where the JSEP build finds its .wasm (`ort-wasm-simd-threaded.jsep.wasm`), as `wasmPaths`. */
  jsepWasmPaths?: WasmPaths;
  /** At most this many WASM threads (the model's worker leaves a core to the page it serves). */
  maxThreads?: number;
  /**
   * On a hardware adapter, time WebGPU against WASM once (runtime/probe.ts) and take the faster (default false;
   * never with `allowSoftwareAdapter`, which is the reader asking for WebGPU). A function stands in for the timing.
   */
  probe?: boolean | ((ort: Ort) => Promise<ProbeTimes>);
  /** Where the probe's answer is kept between loads (default: the browser's Cache Storage). */
  probeStore?: ProbeStore;
}

/** Where a build finds its .wasm: a folder URL ending in "/", or {wasm, mjs} file URLs. */
export type WasmPaths = string | {wasm?: string; mjs?: string};

const MiB = 1 << 20;

/**
 * Configures `ort.env` and chooses the backend. Call it before the first InferenceSession is created
 * (ort reads `env.wasm` and `env.webgpu` once); create sessions with
 * `{executionProviders: [runtime.backend]}`.
 */
export async function createWebRuntime(opts: WebRuntimeOptions = {}): Promise<WebRuntime> {
  const {preferWebGPU = true, allowSoftwareAdapter = false} = opts;
  const isolated = globalThis.crossOriginIsolated === true;
  const threads = isolated
    ? Math.max(1, Math.min(opts.maxThreads ?? Infinity, globalThis.navigator?.hardwareConcurrency ?? 1))
    : 1;
  // WASM runs on the build given, else on the WASM build; it also keeps the adapter asked for (below).
  const ort = configure(opts.ort ?? wasmOrt, threads, opts.wasmPaths ?? defaultWasmPaths());

  const threading = isolated
    ? `${threads} thread${threads === 1 ? "" : "s"}`
    : "single-threaded: the page is not cross-origin isolated";
  const wasm = (why: string): WebRuntime => ({
    ort,
    backend: "wasm",
    threads,
    reason: isolated ? `WASM (${threading}): ${why}` : `WASM ${threading}; ${why}`
  });

  if (!preferWebGPU) return wasm("WebGPU was not asked for");
  const gpu = (globalThis.navigator as unknown as {gpu?: GPULike} | undefined)?.gpu;
  if (!gpu) return wasm("navigator.gpu is missing");
  // ort fixes its WebGPU device at the first WebGPU session and env.webgpu.adapter turns read-only: a later
  // load (another model on the same page) reuses that adapter.
  const existing = ort.env.webgpu.adapter as unknown as GPUAdapterLike | undefined;
  let adapter: GPUAdapterLike | null = existing ?? null;
  if (!adapter) {
    try {
      adapter = await gpu.requestAdapter({powerPreference: "high-performance"});
    } catch (error) {
      return wasm(`navigator.gpu.requestAdapter() failed (${(error as Error).message})`);
    }
    if (!adapter) return wasm("navigator.gpu.requestAdapter() gave no adapter");
    // Kept for later loads. The JSEP backend (a build given here, or `webgpuBuild: "jsep"`) creates its device
    // from this adapter with requiredLimits set to the adapter's own maxStorageBufferBindingSize and
    // maxBufferSize, not the 128 MiB defaults, which gpt2's 147 MiB fp32 embedding would exceed.
    ort.env.webgpu.adapter = adapter as unknown as typeof ort.env.webgpu.adapter;
    ort.env.webgpu.powerPreference = "high-performance";
  }
  const {maxStorageBufferBindingSize, maxBufferSize} = adapter.limits;
  const name = adapterName(adapter);
  if (!allowSoftwareAdapter && isSoftwareAdapter(adapter)) {
    return wasm(`the WebGPU adapter is software (${name}), slower than WASM; ?backend=webgpu takes it anyway`);
  }
  // The build that runs WebGPU: the one given, else the native provider's unless JSEP is asked for.
  const build = opts.ort ? undefined : (opts.webgpuBuild ?? "native");
  let loaded: Promise<Ort> | undefined;
  const webgpuOrt = () => (!build ? Promise.resolve(ort) : (loaded ??= webgpuBuild(build, threads, adapter!, opts)));
  const webgpu = async (measured?: string): Promise<WebRuntime> => ({
    ort: await webgpuOrt(),
    backend: "webgpu",
    threads,
    ...(build ? {webgpuBuild: build} : {}),
    reason:
      `WebGPU${build ? ` (${build === "native" ? "native provider" : "JSEP"})` : ""}: adapter ${name} ` +
      `(storage binding up to ${Math.floor(maxStorageBufferBindingSize / MiB)} MiB, ` +
      `buffers up to ${Math.floor(maxBufferSize / MiB)} MiB)${measured ? `; ${measured}` : ""}; ` +
      `ops without a WebGPU kernel run on WASM, ${threading}`
  });
  if (!opts.probe || allowSoftwareAdapter) return webgpu();

  // The adapter is hardware: time both, once per adapter, thread count and build (WebGPU timed on the build that
  // would run it, WASM on this one).
  const store = opts.probeStore ?? cacheStore;
  const key = `${name} | ${threads} thread${threads === 1 ? "" : "s"}${build === "native" ? " | native provider" : ""}`;
  let times = await store.get(key);
  const kept = times !== undefined;
  if (!times) {
    try {
      times = await (typeof opts.probe === "function"
        ? opts.probe(ort)
        : timeBackends(ort as never, (await webgpuOrt()) as never));
    } catch (error) {
      return webgpu(`the timed probe failed (${(error as Error).message}), so the adapter decides`);
    }
    await store.set(key, times);
  }
  const ms = (t: number) => `${t.toFixed(1)} ms`;
  const measured =
    `a timed probe${kept ? " (kept from an earlier load)" : ""} ran WebGPU in ${ms(times.webgpu)} ` +
    `and WASM in ${ms(times.wasm)}`;
  if (times.wasm < times.webgpu)
    return wasm(`${measured}: on this machine WASM is faster than adapter ${name}; ?backend=webgpu takes it anyway`);
  return webgpu(measured);
}

/**
 * Whether an adapter runs on the CPU: the spec's fallback flag (on the adapter's info, or on the adapter in
 * older browsers), else the software drivers' own names.
 */
export function isSoftwareAdapter(adapter: GPUAdapterLike): boolean {
  const flagged = adapter.info?.isFallbackAdapter ?? (adapter as {isFallbackAdapter?: boolean}).isFallbackAdapter;
  if (flagged) return true;
  const info = adapter.info ?? {};
  return /swiftshader|llvmpipe|lavapipe|softpipe|software|microsoft basic render|\bwarp\b/i.test(
    [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(" ")
  );
}

function adapterName(adapter: GPUAdapterLike): string {
  const info = adapter.info ?? {};
  const words = [info.vendor, info.architecture, info.device, info.description].filter((w) => w);
  return words.length ? [...new Set(words)].join(" ") : "(unnamed)";
}

/** `ort.env` as every build here is run: quiet but for errors, `threads` WASM threads, no proxy worker. */
function configure(ort: Ort, threads: number, wasmPaths: WasmPaths): Ort {
  // ort logs its warnings (e.g. "some nodes were not assigned to the preferred execution providers", which
  // is by design for shape ops) through console.error; keep the console for real errors.
  ort.env.logLevel = "error";
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.proxy = false;
  if (!ort.env.wasm.wasmBinary) ort.env.wasm.wasmPaths = wasmPaths;
  return ort;
}

/** The shipped .wasm of each build, found by module resolution (rewritten by Framework at build time). */
function defaultWasmPaths(): {wasm: string} {
  return {wasm: import.meta.resolve("onnxruntime-web/ort-wasm-simd-threaded.wasm")};
}

/**
 * The build that runs WebGPU, loaded when WebGPU is chosen (its own `env`, its own WebAssembly, started by its first
 * session). The native provider makes its device itself, from `env.webgpu.powerPreference`; JSEP is handed the
 * adapter, whose own limits its device asks for.
 */
async function webgpuBuild(build: WebGPUBuild, threads: number, adapter: GPUAdapterLike, opts: WebRuntimeOptions) {
  if (build === "jsep") {
    const jsep = configure(
      (await import("onnxruntime-web")) as unknown as Ort,
      threads,
      opts.jsepWasmPaths ?? {wasm: import.meta.resolve("onnxruntime-web/ort-wasm-simd-threaded.jsep.wasm")}
    );
    // Fixed at its first WebGPU session: a later load keeps the first adapter.
    jsep.env.webgpu.adapter ??= adapter as unknown as typeof jsep.env.webgpu.adapter;
    return jsep;
  }
  const ort = configure(
    (await import("onnxruntime-web/webgpu")) as unknown as Ort,
    threads,
    opts.nativeWasmPaths ?? {wasm: import.meta.resolve("onnxruntime-web/ort-wasm-simd-threaded.asyncify.wasm")}
  );
  ort.env.webgpu.powerPreference = "high-performance";
  return ort;
}
