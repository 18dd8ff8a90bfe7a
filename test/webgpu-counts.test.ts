/**
 * What a WebGPU run asks of the GPU, counted (not timed) on Dawn in Node over SwiftShader: the counts are the
 * same on a real GPU. They keep the WebGPU path from creeping back: one readback per traced forward pass however
 * many hook points it fetches, one readback per decode step, and no more kernels per layer than today.
 */
// First: points Dawn at a Vulkan driver before anything starts it.
import {available} from "./helpers/swiftshader.js";
import {rmSync} from "node:fs";
import {describe, expect, it} from "vitest";
import {variant} from "./helpers/fixtures.js";
import {cpuNodesFromLog} from "../src/runtime/gpu-counts.js";

describe("reading onnxruntime's node placements", () => {
  it("counts the CPU provider's nodes, or none where every node went elsewhere", () => {
    const log = (lines: string[]) =>
      ["[V:onnxruntime:, session_state.cc:1377 VerifyEachNodeIsAssignedToAnEp] Node placements", ...lines].join("\n");
    expect(
      cpuNodesFromLog(
        log([
          " Node(s) placed on [CPUExecutionProvider]. Number of nodes: 8",
          " Node(s) placed on [JsExecutionProvider]. Number of nodes: 271"
        ])
      )
    ).toBe(8);
    expect(cpuNodesFromLog(log([" All nodes placed on [JsExecutionProvider]. Number of nodes: 279"]))).toBe(0);
    expect(() => cpuNodesFromLog("nothing verbose")).toThrow(/logSeverityLevel 0/);
  });
});

describe.skipIf(!available)("WebGPU work per run (Dawn in Node on SwiftShader)", () => {
  it("stories260K: one readback per all-hooks trace and per decode step; kernels per layer bounded", async () => {
    const {loadModel} = await import("../src/node.js");
    const {measureWebGPUCounts} = await import("../bench/webgpu-counts.js");
    const counts = await measureWebGPUCounts(
      (sessionOptions) => loadModel("stories260K", {runtime: "webgpu", sessionOptions}),
      // Sampling is counted by the bench (`--webgpu-counts`), not checked here.
      {decodeSteps: 2, sample: false}
    );
    expect(counts.traceReadbacksPerRun).toBe(1);
    expect(counts.decodeReadbacksPerStep).toBe(1);
    // The logits of one position, and nothing else: 512 floats.
    expect(counts.decodeReadbackBytesPerStep).toBeLessThanOrEqual(4 * 512 * 2);
    // The traced graph decodes with 45 kernels a layer (norms unfused, rotary as four ops, eager attention), plus
    // 8 once a pass (the rotary tables' angle sums, the head): a ceiling, to be lowered as the decode path gets
    // leaner, never raised. Likewise the shape arithmetic onnxruntime keeps on its CPU provider.
    expect(counts.decodeKernelsPerStep).toBeLessThanOrEqual(45 * counts.layers + 8);
    expect(counts.decodeCpuNodes).toBeLessThanOrEqual(10);
  }, 300_000);

  // The native WebGPU provider generates on the lean decode graph (src/runtime/decode.ts). SmolLM2-135M's config
  // and tokenizer with random weights (no checkpoint here): the counts do not depend on the weights. Nor on the
  // depth, whose layers are alike: they are counted per layer, on 2 of its 30 layers — its widths, heads, grouped
  // keys and 49,152-token head unchanged. On SwiftShader each layer costs ~0.5 s a decode step (onnxruntime's
  // MatMul computes a one-row product in tiles of 8 rows): the full depth took 70 s here, for the same counts a
  // layer.
  // `npm run bench -- --webgpu-counts` counts the whole model.
  it("SmolLM2-135M's layers, lean decode: 12 kernels a layer + 5, no CPU-provider node, one readback of ≤ 64 bytes a step", async () => {
    const {loadModel} = await import("../src/node.js");
    const {measureWebGPUCounts} = await import("../bench/webgpu-counts.js");
    const {nodeWebGPU} = await import("../src/runtime/webgpu-node.js");
    (await nodeWebGPU("native")).ort.env.logLevel = "verbose";
    let layers: unknown;
    const dir = variant(
      "SmolLM2-135M",
      (config) => ((layers = config.num_hidden_layers), {...config, num_hidden_layers: 2}),
      "data/models/HuggingFaceTB/SmolLM2-135M"
    );
    expect(layers).toBe(30);
    const counts = await measureWebGPUCounts(
      (sessionOptions) => loadModel(dir, {runtime: "webgpu-native", init: "random", sessionOptions}),
      // Sampling is counted by the bench (`--webgpu-counts`), not checked here. One decode step after the prompt's
      // pass: the lean graph is one session whose step is the same from the first on (~4 s a step here, most of it
      // the 49,152-row head).
      {decodeSteps: 1, sample: false}
    ).finally(() => rmSync(dir, {recursive: true, force: true}));
    expect(counts.decodePath).toBe("lean");
    // Per layer: 2 fused norms, 5 MatMuls, GroupQueryAttention's 3 (split, rotary and the in-place cache write in
    // one; scores; values), QuickGelu, Mul = 12; plus 5 a step (embedding, final norm, last position, head,
    // argmax). A ceiling: lower it as the step gets leaner.
    expect(counts.decodeKernelsPerStep).toBeLessThanOrEqual(12 * counts.layers + 5);
    expect(counts.decodeCpuNodes).toBe(0);
    expect(counts.decodeReadbacksPerStep).toBe(1);
    expect(counts.decodeReadbackBytesPerStep).toBeLessThanOrEqual(64);
    expect(counts.traceReadbacksPerRun).toBe(1);
  }, 600_000);
});
