/**
 * What a WebGPU run costs in work rather than time: kernels dispatched per decode step, nodes onnxruntime
 * left on its CPU provider, readbacks per decode step and their bytes, readbacks per traced forward pass with
 * every hook point fetched. The same on SwiftShader as on a real GPU (src/runtime/gpu-counts.ts), so
 * `npm run bench -- --webgpu-counts` runs on this machine, and test/webgpu-counts.test.ts guards them.
 */
import type {Model} from "../src/runtime/model.js";
import {countGPUWork, cpuNodesFromLog, type GPUCounts} from "../src/runtime/gpu-counts.js";

export interface WebGPUCounts {
  model: string;
  layers: number;
  /** Which graph generation ran on: the lean decode graph (runtime/decode.ts), captured and replayed, or the traced one. */
  decodePath: "lean" | "captured" | "traced";
  decodeKernelsPerStep: number;
  decodeCpuNodes: number;
  decodeReadbacksPerStep: number;
  decodeReadbackBytesPerStep: number;
  /** `queue.writeBuffer` calls a decode step: every kernel's uniforms, or (replayed) only the step's inputs. */
  decodeUploadsPerStep: number;
  traceReadbacksPerRun: number;
  traceKernelsPerRun: number;
  /** A sampling step (top-k 50): its candidates come from the GPU (runtime/decode.ts). */
  sampleKernelsPerStep: number;
  sampleReadbacksPerStep: number;
  sampleReadbackBytesPerStep: number;
}

/**
 * Load a model on WebGPU in Node with onnxruntime's verbose log captured (it is the only place that says which
 * nodes went to the CPU provider), then count a few greedy decode steps and one all-hooks trace.
 */
export async function measureWebGPUCounts(
  load: (sessionOptions: Record<string, unknown>) => Promise<Model>,
  {
    prompt = "Once upon a time",
    decodeSteps = 2,
    sample = true
  }: {
    prompt?: string;
    decodeSteps?: number;
    /** Count a sampling generation too (false: its three counts are 0; on SwiftShader a full-size one takes ~45 s). */
    sample?: boolean;
  } = {}
): Promise<WebGPUCounts> {
  // The session logs verbosely from its creation on: keep all of it off the terminal while counting.
  return capturingLog(async (log) => {
    const model = await load({logSeverityLevel: 0, logVerbosityLevel: 0});
    // Generation runs on the lean decode graph where the model has one: its own session, with its own placements.
    const before = log().length;
    const lean = await model.leanDecoder();
    const cpuNodes = cpuNodesFromLog(lean ? log().slice(before) : log());
    const counter = countGPUWork();
    try {
      // One generation, counted token by token: the first token costs the prompt's pass, each later one a
      // decode step; the last step is the steady state (the first steps may still read shapes back).
      const steps: GPUCounts[] = [];
      counter.take();
      await model.generate(prompt, {
        maxNewTokens: 1 + decodeSteps,
        stopAtEos: false,
        onToken: () => void steps.push(counter.take())
      });
      const step = steps.at(-1)!;
      const sampled: GPUCounts[] = [{kernels: 0, submits: 0, uploads: 0, readbacks: 0, readbackBytes: 0}];
      counter.take();
      if (sample)
        await model.generate(prompt, {
          maxNewTokens: 1 + decodeSteps,
          doSample: true,
          topK: 50,
          stopAtEos: false,
          onToken: () => void sampled.push(counter.take())
        });
      const sampleStep = sampled.at(-1)!;
      counter.take();
      await model.trace(prompt, model.hookPoints());
      const trace = counter.take();
      return {
        model: model.id,
        layers: model.config.numLayers,
        decodePath: lean?.captured ? "captured" : lean ? "lean" : "traced",
        decodeKernelsPerStep: step.kernels,
        decodeCpuNodes: cpuNodes,
        decodeReadbacksPerStep: step.readbacks,
        decodeReadbackBytesPerStep: step.readbackBytes,
        decodeUploadsPerStep: step.uploads,
        traceReadbacksPerRun: trace.readbacks,
        traceKernelsPerRun: trace.kernels,
        sampleKernelsPerStep: sampleStep.kernels,
        sampleReadbacksPerStep: sampleStep.readbacks,
        sampleReadbackBytesPerStep: sampleStep.readbackBytes
      };
    } finally {
      counter.stop();
      await model.dispose();
    }
  });
}

/**
 * Run `use` with console output and stdout/stderr writes collected (and kept off the terminal); `log()` reads
 * them. The console is redirected once, through a sink that each call replaces: onnxruntime-web binds
 * `console.log` when its module starts, so a function swapped in and out per call would keep receiving its
 * log after the call has ended.
 */
async function capturingLog<T>(use: (log: () => string) => Promise<T>): Promise<T> {
  redirectConsole();
  const lines: string[] = [];
  sink = (text) => lines.push(text);
  try {
    return await use(() => lines.join("\n"));
  } finally {
    sink = undefined;
  }
}

let sink: ((text: string) => void) | undefined;
let redirected = false;
function redirectConsole(): void {
  if (redirected) return;
  redirected = true;
  for (const m of ["log", "info", "warn", "error", "debug"] as const) {
    const original = console[m].bind(console);
    console[m] = (...args: unknown[]) => (sink ? sink(args.map(String).join(" ")) : original(...args));
  }
  for (const stream of [process.stdout, process.stderr]) {
    const original = stream.write.bind(stream) as (...args: unknown[]) => boolean;
    stream.write = ((...args: unknown[]) =>
      sink ? (sink(String(args[0])), true) : original(...args)) as typeof stream.write;
  }
}

/**
 * The models `--webgpu-counts` measures: row name, what loadModel takes (random weights: no checkpoints here), and
 * whether the decode step is captured and replayed (a runtime of its own in the rows).
 */
const COUNTED = [
  ["SmolLM2-135M", "HuggingFaceTB/SmolLM2-135M", false],
  ["gpt2", "gpt2", false],
  ["SmolLM2-135M", "HuggingFaceTB/SmolLM2-135M", true]
] as const;

/**
 * `npm run bench -- --webgpu-counts`: the counts as rows of `bench/results.json` (replacing earlier counts of
 * the same model and runtime, keeping every other row), printed as they come.
 */
export async function runWebGPUCounts(root: string): Promise<void> {
  const {readFileSync, writeFileSync, existsSync} = await import("node:fs");
  const {join} = await import("node:path");
  const {loadModel} = await import("../src/node.js");
  const {RUNTIME_NAMES} = await import("./report.js");
  // The native WebGPU provider: the one that generates on the lean decode graph (src/runtime/decode.ts).
  const runtime = RUNTIME_NAMES["webgpu-native"];
  // Verbose from onnxruntime's first session on: it sets its logger up once, and only a verbose one reports
  // where each session's nodes were placed.
  const {nodeWebGPU} = await import("../src/runtime/webgpu-node.js");
  (await nodeWebGPU("native")).ort.env.logLevel = "verbose";
  const rows: {
    model: string;
    runtime: string;
    metric: string;
    tokens: number | null;
    value: number;
    unit: string;
    floor_ratio: null;
  }[] = [];
  for (const [name, id, graphCapture] of COUNTED) {
    const started = performance.now();
    const c = await measureWebGPUCounts((sessionOptions) =>
      loadModel(id, {runtime: "webgpu-native", init: "random", sessionOptions, graphCapture})
    );
    const where = graphCapture ? runtime.replace("native EP", "native EP, graph capture") : runtime;
    const row = (metric: string, value: number, unit: string) =>
      rows.push({model: name, runtime: where, metric, tokens: null, value, unit, floor_ratio: null});
    row("decode_kernels_per_step", c.decodeKernelsPerStep, "kernels");
    row("decode_kernels_per_layer_step", c.decodeKernelsPerStep / c.layers, "kernels");
    row("decode_cpu_nodes", c.decodeCpuNodes, "nodes");
    row("decode_readbacks_per_step", c.decodeReadbacksPerStep, "readbacks");
    row("decode_readback_bytes_per_step", c.decodeReadbackBytesPerStep, "B");
    row("decode_uploads_per_step", c.decodeUploadsPerStep, "uploads");
    row("trace_readbacks_per_run", c.traceReadbacksPerRun, "readbacks");
    row("trace_kernels_per_run", c.traceKernelsPerRun, "kernels");
    row("sample_kernels_per_step", c.sampleKernelsPerStep, "kernels");
    row("sample_readbacks_per_step", c.sampleReadbacksPerStep, "readbacks");
    row("sample_readback_bytes_per_step", c.sampleReadbackBytesPerStep, "B");
    console.log(
      `${name} on ${where}: decode (${c.decodePath} graph) ${c.decodeKernelsPerStep} kernels a step (${(c.decodeKernelsPerStep / c.layers).toFixed(1)} a layer; target ≤ 12), ` +
        `${c.decodeCpuNodes} CPU-provider nodes (target 0), ${c.decodeReadbacksPerStep} readback of ${c.decodeReadbackBytesPerStep} B a step ` +
        `(target one of ≤ 64 B), ${c.decodeUploadsPerStep} uploads a step; sampling (top-k 50) ${c.sampleKernelsPerStep} kernels and ${c.sampleReadbacksPerStep} readback of ${c.sampleReadbackBytesPerStep} B a step; ` +
        `every hook point: ${c.traceReadbacksPerRun} readback a run (${((performance.now() - started) / 1000).toFixed(0)} s)`
    );
  }
  const path = join(root, "bench", "results.json");
  const counted = new Set(rows.map((r) => `${r.model}|${r.runtime}|${r.metric}`));
  const kept = existsSync(path)
    ? (JSON.parse(readFileSync(path, "utf8")) as typeof rows).filter(
        (r) => !counted.has(`${r.model}|${r.runtime}|${r.metric}`)
      )
    : [];
  writeFileSync(path, JSON.stringify([...kept, ...rows], null, 1) + "\n");
  console.log("wrote bench/results.json");
}
