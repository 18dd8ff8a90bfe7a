/**
 * The benchmark in chromium: bundled by bench/browser.ts (esbuild, onnxruntime-web through the import map),
 * served cross-origin isolated so that WASM runs multi-threaded. Everything is timed here, in the page, with
 * performance.now(); bench/browser.ts calls `window.bench.*` and turns the answers into rows.
 */
import * as ort from "onnxruntime-web/wasm";
import {loadModel, type BrowserLoadOptions} from "../../src/browser.js";
import {copyBandwidth, matmulRate} from "../measure.js";
import {measureModel, promptIds, weightMb} from "../procedure.js";
import type {Model} from "../../src/runtime/model.js";
import {runAnalyses} from "../interventions.js";

const wasmPaths = {wasm: new URL("./ort/ort-wasm-simd-threaded.wasm", location.href).href};
const jsepWasmPaths = {wasm: new URL("./ort/ort-wasm-simd-threaded.jsep.wasm", location.href).href};
const nativeWasmPaths = {wasm: new URL("./ort/ort-wasm-simd-threaded.asyncify.wasm", location.href).href};

/** The model the steps below run on (`bench.load`). */
let loaded: Model | undefined;
const held = (): Model => {
  if (!loaded) throw new Error("bench.load first");
  return loaded;
};

const bench = {
  /** The WebGPU adapter's info, or null where there is none. */
  async adapter(): Promise<Record<string, string> | null> {
    const gpu = (
      navigator as unknown as {gpu?: {requestAdapter(o?: unknown): Promise<{info?: Record<string, string>} | null>}}
    ).gpu;
    const adapter = await gpu?.requestAdapter({powerPreference: "high-performance"}).catch(() => null);
    if (!adapter) return null;
    const info = adapter.info ?? {};
    return {
      vendor: info.vendor ?? "",
      architecture: info.architecture ?? "",
      device: info.device ?? "",
      description: info.description ?? ""
    };
  },

  /**
   * Loads `id` from the Hub at `endpoint` and keeps it for the steps below; the backend sentence says which backend
   * runs. bench/browser.ts reads the renderer's peak memory between the steps.
   */
  async load(
    id: string,
    endpoint: string,
    init: "checkpoint" | "random",
    preferWebGPU: boolean,
    extra: BrowserLoadOptions = {}
  ) {
    const stamps = new Map<string, number>();
    const m = await loadModel(id, {
      ...extra,
      endpoint,
      preferWebGPU,
      wasmPaths,
      jsepWasmPaths,
      nativeWasmPaths,
      init,
      seed: 0,
      onProgress: (p) => stamps.set(p.stage, performance.now())
    });
    loaded = m;
    document.querySelector("#status")!.textContent = m.backend;
    return {
      backend: m.backend,
      graphBuildMs: stamps.get("session")! - stamps.get("graph")!,
      sessionCreateMs: stamps.get("ready")! - stamps.get("session")!,
      weightMb: weightMb(m)
    };
  },

  /** A trace of every hook point, 10 tokens (bench/one.ts's memory stage). */
  async traceAll() {
    await held().forward(
      promptIds(Math.min(10, held().config.maxPositions), held().config.vocabSize),
      held().hookPoints()
    );
  },

  /**
   * The logit lens, a patching sweep and a steered generation on the same model, so that the tab's peak memory
   * covers what a reader who uses every page asks of one model (issue 21's target).
   */
  async analyses() {
    await runAnalyses(held());
  },

  /** The timed passes and generations (bench/procedure.ts). */
  async measure(quick: boolean) {
    return measureModel(held(), quick);
  },

  async dispose() {
    await loaded?.dispose();
    loaded = undefined;
  },

  /**
   * The page's limits, as bench/measure.ts measures Node's: a fp32 MatMul [n, n]·[n, n] on ort's WASM
   * backend (set up by an earlier `model` call: same threads), and a large copy (bytes read + written).
   */
  async floor(n: number, reps: number, copyBytes: number) {
    const flopRate = await matmulRate(ort, ["wasm"], n, reps);
    return {flopRate, bandwidth: await copyBandwidth(copyBytes, reps), threads: ort.env.wasm.numThreads};
  }
};

Object.assign(window, {bench});
document.querySelector("#status")!.textContent = "ready";
