/**
 * What the benchmark measures, shared by the parent (`bench.ts`), the per-model child (`one.ts`) and the
 * Chromium bench page (so nothing here loads a Node-only module):
 * medians, the machine's limits (a large fp32 MatMul on onnxruntime, a large memory copy) and the cost of a
 * forward pass in FLOPs and weight bytes, from which its floor follows.
 */
import {GraphBuilder, FLOAT, INT64} from "../src/graph/onnx.js";
import type {ModelConfig, Parameter} from "../src/arch/index.js";
import type {Runtime} from "../src/node.js";
import type {Ort} from "../src/runtime/ort.js";
import {BUFFER_USAGE, type GPUDeviceLike} from "../src/runtime/webgpu-types.js";

export type RuntimeName =
  | "onnxruntime-node"
  | "onnxruntime-web (wasm, node)"
  | "onnxruntime-web (webgpu, node)"
  | "onnxruntime-web (webgpu native EP, node)"
  | "chromium (wasm)"
  | "chromium (webgpu)";
export type NodeRuntime = Runtime;

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

/** The graph that measures matrix-product throughput: `c = a · b`, `[n, n]` each, `b` a weight. */
export function matmulModel(n: number) {
  const g = new GraphBuilder();
  const a = g.input("a", FLOAT, [n, n]);
  const b = new Float32Array(n * n).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  g.output("c", g.op("MatMul", [a, g.weight("b", b, [n, n])]));
  return g.build("matmul");
}

/**
 * The same product on a GPU, where moving `[n, n]` matrices to and from the host would be timed too: both
 * sides are weights (resident on the device), the input is one number added to the left side, and the output
 * the product's row sums (`[n]`), whose download waits for the product to finish.
 */
export function gpuMatmulModel(n: number) {
  const g = new GraphBuilder();
  const x = g.input("a", FLOAT, [1]);
  const values = (seed: number) => new Float32Array(n * n).map((_, i) => ((i * seed) % 1000) / 1000 - 0.5);
  const left = g.op("Add", [g.weight("left", values(7919), [n, n]), x]);
  const product = g.op("MatMul", [left, g.weight("b", values(104729), [n, n])]);
  g.output("c", g.op("ReduceSum", [product, g.constant([1], [1], INT64)], {keepdims: 0}));
  return g.build("matmul");
}

/**
 * onnxruntime's fp32 matrix-product throughput, FLOP/s, on `ort` with those execution providers: one MatMul
 * `[n, n] · [n, n]`, the right side a weight (`matmulModel`); with `gpu`, both sides weights resident on the
 * device (`gpuMatmulModel`).
 */
export async function matmulRate(
  ort: Ort,
  executionProviders: string[],
  n: number,
  reps: number,
  gpu = false
): Promise<number> {
  const encoded = gpu ? gpuMatmulModel(n) : matmulModel(n);
  const session = await ort.InferenceSession.create(encoded.model, {
    externalData: encoded.externalData,
    executionProviders,
    graphOptimizationLevel: "all"
  });
  const feed = {
    a: gpu
      ? new ort.Tensor("float32", new Float32Array([0.5]), [1])
      : new ort.Tensor("float32", new Float32Array(n * n).fill(0.5), [n, n])
  };
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

/**
 * The GPU's memory bandwidth, bytes/s, counted as `copyBandwidth` counts it: `copyBufferToBuffer` of a
 * 256 MiB buffer, ten to a submission, timed until the queue reports the work done. `device` is a WebGPU
 * device (Dawn's in Node).
 */
export async function gpuCopyBandwidth(device: GPUDeviceLike, bytes: number, reps: number): Promise<number> {
  const usage = BUFFER_USAGE.COPY_SRC | BUFFER_USAGE.COPY_DST | BUFFER_USAGE.STORAGE;
  const src = device.createBuffer({size: bytes, usage});
  const dst = device.createBuffer({size: bytes, usage});
  const perSubmit = 10;
  const ms = await timeMedian(
    async () => {
      const encoder = device.createCommandEncoder();
      for (let i = 0; i < perSubmit; i++) encoder.copyBufferToBuffer(src, 0, dst, 0, bytes);
      device.queue.submit([encoder.finish()]);
      await device.queue.onSubmittedWorkDone();
    },
    reps,
    2
  );
  src.destroy();
  dst.destroy();
  return (2 * bytes * perSubmit) / (ms / 1000);
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
