/**
 * What the benchmark measures, shared by the parent (`bench.ts`) and the per-model child (`one.ts`):
 * medians, the machine's limits (a large fp32 MatMul on onnxruntime, a large memory copy) and the cost of a
 * forward pass in FLOPs and weight bytes, from which its floor follows.
 */
import {GraphBuilder, FLOAT} from "../src/graph/onnx.js";
import type {ModelConfig, Parameter} from "../src/arch/index.js";
import type {OrtModule} from "../src/runtime/model.js";

export type RuntimeName = "onnxruntime-node" | "onnxruntime-web (wasm, node)" | "chromium (wasm)" | "chromium (webgpu)";

export interface Row {
  model: string;
  runtime: RuntimeName | string;
  metric: string;
  tokens: number | null;
  value: number;
  unit: string;
  floor_ratio: number | null;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Run `f` `warmup` times unmeasured, then `reps` times; the median wall time in ms. */
export async function timeMedian(f: () => Promise<unknown> | unknown, reps: number, warmup = 1): Promise<number> {
  for (let i = 0; i < warmup; i++) await f();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await f();
    times.push(performance.now() - t);
  }
  return median(times);
}

/** onnxruntime for a runtime name, set up as `src/node.ts` sets it up (so the floor sees the same threads). */
export async function ortFor(runtime: "node" | "web"): Promise<{ort: OrtModule; executionProviders: string[]}> {
  if (runtime === "web") {
    const ort = await import("onnxruntime-web");
    ort.env.wasm.numThreads = 1;
    return {ort: ort as unknown as OrtModule, executionProviders: ["wasm"]};
  }
  return {ort: (await import("onnxruntime-node")) as unknown as OrtModule, executionProviders: ["cpu"]};
}

/** The graph that measures matrix-product throughput: `c = a · b`, `[n, n]` each, `b` a weight. */
export function matmulModel(n: number) {
  const g = new GraphBuilder();
  const a = g.input("a", FLOAT, [n, n]);
  const b = new Float32Array(n * n).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  g.output("c", g.op("MatMul", [a, g.weight("b", b, [n, n])]));
  return g.build("matmul");
}

/** onnxruntime's fp32 matrix-product throughput, FLOP/s: one MatMul `[n, n] · [n, n]`, the right side a weight. */
export async function matmulRate(runtime: "node" | "web", n: number, reps: number): Promise<number> {
  const {ort, executionProviders} = await ortFor(runtime);
  const encoded = matmulModel(n);
  const session = await ort.InferenceSession.create(encoded.model, {
    externalData: encoded.externalData,
    executionProviders,
    graphOptimizationLevel: "all"
  });
  const feed = {a: new ort.Tensor("float32", new Float32Array(n * n).fill(0.5), [n, n])};
  const ms = await timeMedian(() => session.run(feed), reps, 2);
  await session.release();
  return (2 * n * n * n) / (ms / 1000);
}

/**
 * Memory bandwidth, bytes/s, as STREAM's "copy" counts it: a copy of N bytes moves 2N (N read, N written).
 * The buffers (256 MiB each by default) are far larger than any cache.
 */
export async function copyBandwidth(bytes: number, reps: number): Promise<number> {
  const src = new Float32Array(bytes / 4).fill(1);
  const dst = new Float32Array(bytes / 4);
  const ms = await timeMedian(() => dst.set(src), reps, 2);
  return (2 * bytes) / (ms / 1000);
}

export interface PassCost {
  flops: number;
  /** The weight bytes the pass must read at least once (fp32). */
  weightBytes: number;
}

/**
 * The cost of one forward pass over `T` new tokens after `P` cached ones: every Linear (and the tied or
 * separate head) is a `2·T·in·out` matrix product whose weight is read once; attention adds `QKᵀ` and
 * `AV`, `2·2·H·T·S·D` with `S = P + T`. Norms, activations and softmax are counted in bytes, not FLOPs.
 */
export function passCost(config: ModelConfig, parameters: Parameter[], T: number, P = 0): PassCost {
  const S = P + T;
  let flops = 0;
  let weightElements = 0;
  for (const p of parameters) {
    if (p.component === "attention" || p.component === "mlp" || p.component === "head") {
      if (p.shape.length === 2) flops += 2 * T * p.numel;
      weightElements += p.numel;
    } else if (p.component === "norm") {
      weightElements += p.numel;
    } else if (p.component === "embedding") {
      weightElements += T * p.shape[1]; // the rows gathered
    }
  }
  const {hiddenSize: d, vocabSize: V, numLayers: L, numHeads: H, headDim: D} = config;
  if (config.tieWordEmbeddings) {
    flops += 2 * T * V * d;
    weightElements += V * d;
  }
  flops += L * 2 * 2 * H * T * S * D;
  return {flops, weightBytes: 4 * weightElements};
}

/** The floor of a pass, ms: whichever limit binds, compute or reading the weights. */
export function floorMs(cost: PassCost, flopRate: number, bandwidth: number): number {
  return 1000 * Math.max(cost.flops / flopRate, cost.weightBytes / bandwidth);
}
