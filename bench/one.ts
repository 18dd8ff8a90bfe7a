/**
 * One benchmark run in its own process, so that its peak memory (`maxRSS`) is its own:
 *
 *   tsx bench/one.ts --model SmolLM2-135M --init random --runtime node|web|webgpu [--quick] --out file.json
 *   tsx bench/one.ts --floor --runtime node --out file.json        the machine's limits
 *
 * `--runtime webgpu` is onnxruntime-web's WebGPU backend on Dawn (src/runtime/webgpu-node.ts). Its floor says
 * `skipped` where the adapter is missing or a software one (SwiftShader: timings that mean nothing), unless
 * LMW_BENCH_SOFTWARE_GPU=1 (to try the path on a machine without a GPU).
 *
 * Writes a JSON object to `--out`; `bench.ts` turns it into rows.
 */
import {writeFileSync} from "node:fs";
import {parseArgs} from "node:util";
import {WorkbenchError} from "../src/errors.js";
import {RUNTIMES, isWebGPU, loadModel, ortRuntime} from "../src/node.js";
import type {GPULike} from "../src/runtime/webgpu-types.js";
import {copyBandwidth, gpuCopyBandwidth, matmulRate, type NodeRuntime} from "./measure.js";
import {measureCapturedDecode, measureModel, type Measured} from "./procedure.js";
import {measureInterventions, runAnalyses, type InterventionTimes} from "./interventions.js";
import {promptIds, weightMb} from "./procedure.js";

/** The full-size structures get the intervention rows (patching sweep, logit lens, steering), on onnxruntime-node. */
const INTERVENTION_MODELS = ["gpt2", "SmolLM2-135M"];

const {values: args} = parseArgs({
  options: {
    model: {type: "string"},
    runtime: {type: "string", default: "node"},
    floor: {type: "boolean", default: false},
    quick: {type: "boolean", default: false},
    init: {type: "string", default: "checkpoint"},
    out: {type: "string"}
  }
});
const runtime: NodeRuntime = (RUNTIMES as readonly string[]).includes(args.runtime!)
  ? (args.runtime as NodeRuntime)
  : "node";

export interface FloorResult {
  kind: "floor";
  runtime: NodeRuntime;
  matmulN: number;
  flopRate: number;
  bandwidth: number;
  /** WebGPU: the adapter, and why the runtime was skipped (no adapter, or a software one). */
  adapter?: string;
  skipped?: string;
}

/** Forward passes, generation and their repetitions as `bench/procedure.ts` measures them (shared with Chromium). */
export interface ModelResult extends Measured {
  kind: "model";
  model: string;
  runtime: NodeRuntime;
  /** What the model said it runs on (its backend sentence). */
  backend: string;
  graphBuildMs: number;
  sessionCreateMs: number;
  peakRssMb: number;
  /** Peak memory as the model is used (issue 21), before anything is timed. */
  memory: MemoryStages;
  /** Issue 13's rows, for the full-size structures on onnxruntime-node. */
  interventions?: InterventionTimes;
  /** The native WebGPU provider's KV-cache decoding with the step captured and replayed (`graphCapture`). */
  captured?: {kvTokensPerS: number; sameTokens: boolean; captured: boolean};
}

/** onnxruntime's fp32 matrix-product throughput for a runtime, set up as its models are (same threads). */
async function runtimeMatmulRate(runtime: NodeRuntime, n: number, reps: number): Promise<number> {
  const {ort, executionProviders} = await ortRuntime(runtime);
  return matmulRate(ort, executionProviders, n, reps, isWebGPU(runtime));
}

async function floor(): Promise<FloorResult> {
  if (isWebGPU(runtime)) return gpuFloor();
  // Large enough to be compute-bound on any backend, small enough for single-threaded WASM in seconds.
  const n = runtime === "web" ? 1024 : 2048;
  const flopRate = await runtimeMatmulRate(runtime, n, args.quick ? 3 : 7);
  const bandwidth = await copyBandwidth(256 * 2 ** 20, args.quick ? 3 : 7);
  return {kind: "floor", runtime, matmulN: n, flopRate, bandwidth};
}

async function gpuFloor(): Promise<FloorResult> {
  const none = {kind: "floor", runtime, matmulN: 0, flopRate: NaN, bandwidth: NaN} as const;
  let adapter: string;
  try {
    adapter = (await ortRuntime(runtime)).backend;
  } catch (error) {
    if (error instanceof WorkbenchError) return {...none, skipped: error.message}; // no adapter
    throw error;
  }
  if (/swiftshader/i.test(adapter) && process.env.LMW_BENCH_SOFTWARE_GPU !== "1") {
    return {...none, adapter, skipped: "software adapter (SwiftShader), timings not meaningful"};
  }
  const n = process.env.LMW_BENCH_SOFTWARE_GPU === "1" ? 512 : 4096;
  const flopRate = await runtimeMatmulRate(runtime, n, args.quick ? 5 : 15);
  // A device of our own on the same GPU (an adapter gives one device; ort's is taken).
  const gpu = (globalThis.navigator as unknown as {gpu: GPULike}).gpu;
  const device = await (await gpu.requestAdapter({powerPreference: "high-performance"}))!.requestDevice();
  const bandwidth = await gpuCopyBandwidth(device, 256 * 2 ** 20, args.quick ? 3 : 7);
  return {kind: "floor", runtime, matmulN: n, flopRate, bandwidth, adapter};
}

/**
 * The process's peak resident memory after each stage of one model's use, MB: loaded; a trace of every hook
 * point (10 tokens); then the logit lens, a patching sweep and a steered generation on the same model. Peaks, so
 * each includes the ones before. `weightMb`: the weights as the model holds them (float32, or 2 bytes where a
 * bf16/fp16 checkpoint's are kept), the unit of issue 21's targets.
 */
export interface MemoryStages {
  weightMb: number;
  afterLoadMb: number;
  afterTraceMb: number;
  afterAnalysesMb: number;
}

/** Linux reports maxRSS in KiB. */
const peakMb = () => (process.resourceUsage().maxRSS * 1024) / 1e6;

async function memoryStages(m: Awaited<ReturnType<typeof loadModel>>): Promise<MemoryStages> {
  const afterLoadMb = peakMb();
  await m.forward(promptIds(Math.min(10, m.config.maxPositions), m.config.vocabSize), m.hookPoints());
  const afterTraceMb = peakMb();
  await runAnalyses(m);
  const afterAnalysesMb = peakMb();
  return {weightMb: weightMb(m), afterLoadMb, afterTraceMb, afterAnalysesMb};
}

async function model(id: string): Promise<ModelResult> {
  const stamps = new Map<string, number>();
  // encodeTimeoutMs 0: texts are tokenized on this thread. The tokenizer's worker thread loads
  // @huggingface/tokenizers from node_modules, which the GPU bundle (bench/gpu/pack.sh) does not carry.
  const init = args.init === "random" ? "random" : "checkpoint";
  const m = await loadModel(id, {
    runtime,
    init,
    seed: 0,
    encodeTimeoutMs: 0,
    onProgress: (p) => stamps.set(p.stage, performance.now())
  });
  const graphBuildMs = stamps.get("session")! - stamps.get("graph")!;
  const sessionCreateMs = stamps.get("ready")! - stamps.get("session")!;
  const memory = await memoryStages(m);
  const measured = await measureModel(m, args.quick);
  // The native provider also decodes with its step captured and replayed: the same model loaded again.
  let captured: ModelResult["captured"];
  if (runtime === "webgpu-native") {
    const c = await loadModel(id, {runtime, init, seed: 0, encodeTimeoutMs: 0, graphCapture: true});
    captured = await measureCapturedDecode(c, measured.generate);
    await c.dispose();
  }
  const interventions =
    INTERVENTION_MODELS.includes(id) && runtime === "node" ? await measureInterventions(m, args.quick) : undefined;
  await m.dispose();
  return {
    kind: "model",
    model: id,
    runtime,
    backend: m.backend,
    graphBuildMs,
    sessionCreateMs,
    ...measured,
    captured,
    interventions,
    memory,
    peakRssMb: peakMb()
  };
}

const result = args.floor ? await floor() : await model(args.model ?? "stories260K");
const text = JSON.stringify(result);
if (args.out) writeFileSync(args.out, text);
else console.log(text);
