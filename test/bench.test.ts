/**
 * The correctness the benchmark relies on (no timings here): KV-cache and full-recompute generation choose
 * the same tokens, the cost model counts a pass's FLOPs and bytes right, random weights are N(0, std²), and
 * Linear weights reach the graph transposed correctly.
 */
import {describe, expect, it} from "vitest";
import {readFileSync} from "node:fs";
import {architectureFor, normalizeConfig} from "../src/arch/index.js";
import {loadModel} from "../src/node.js";
import {randomWeights} from "../src/runtime/weights.js";
import {median, passCost} from "../bench/measure.js";

const promptIds = (length: number, vocab: number) => Array.from({length}, (_, i) => (1 + i * 7919) % vocab);

describe("bench: generation with and without the KV cache", () => {
  for (const id of ["mini-gpt2", "mini-llama", "stories260K"]) {
    it(`${id}: the same greedy tokens from a long context`, async () => {
      const model = await loadModel(id);
      const prompt = promptIds(Math.min(100, model.config.maxPositions - 12), model.config.vocabSize);
      const kv = await model.generate(prompt, {maxNewTokens: 12, useCache: true, stopAtEos: false});
      const full = await model.generate(prompt, {maxNewTokens: 12, useCache: false, stopAtEos: false});
      expect(kv.new_ids).toHaveLength(12);
      expect(kv.new_ids).toEqual(full.new_ids);
      await model.dispose();
    });
  }

  it("onnxruntime-web (wasm): the same tokens as onnxruntime-node", async () => {
    const prompt = promptIds(40, 512);
    const node = await loadModel("stories260K");
    const web = await loadModel("stories260K", {runtime: "web"});
    const a = await node.generate(prompt, {maxNewTokens: 10, useCache: true, stopAtEos: false});
    const b = await web.generate(prompt, {maxNewTokens: 10, useCache: false, stopAtEos: false});
    expect(b.new_ids).toEqual(a.new_ids);
  });
});

describe("bench: the cost model", () => {
  const smol = normalizeConfig(JSON.parse(readFileSync("data/models/HuggingFaceTB/SmolLM2-135M/config.json", "utf8")));
  const gpt2 = normalizeConfig(JSON.parse(readFileSync("data/models/gpt2/config.json", "utf8")));

  it("one token costs about two FLOPs per parameter and reads every weight once (SmolLM2-135M, tied head)", () => {
    const arch = architectureFor(smol);
    const params = arch.parameters().reduce((s, p) => s + p.numel, 0);
    const cost = passCost(smol, arch.parameters(), 1);
    expect(cost.flops / (2 * params)).toBeGreaterThan(0.99);
    expect(cost.flops / (2 * params)).toBeLessThan(1.01);
    expect(cost.weightBytes / (4 * params)).toBeGreaterThan(0.99);
    expect(cost.weightBytes / (4 * params)).toBeLessThan(1.01);
  });

  it("FLOPs grow linearly in tokens, plus the quadratic attention term (gpt2)", () => {
    const arch = architectureFor(gpt2);
    const one = passCost(gpt2, arch.parameters(), 1).flops;
    const t = 128;
    const attention = gpt2.numLayers * 4 * gpt2.numHeads * t * t * gpt2.headDim;
    const attention1 = gpt2.numLayers * 4 * gpt2.numHeads * gpt2.headDim;
    expect(passCost(gpt2, arch.parameters(), t).flops).toBeCloseTo(t * (one - attention1) + attention, -3);
  });

  it("median", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });
});

describe("bench: the faster load path", () => {
  it("random weights are N(0, initializer_range²), reproducible by (seed, name)", async () => {
    const arch = architectureFor(
      normalizeConfig(JSON.parse(readFileSync("data/models/HuggingFaceTB/SmolLM2-135M/config.json", "utf8")))
    );
    const sigma = Number(arch.config.raw.initializer_range); // 0.0417
    const weights = randomWeights(arch, 7);
    const w = await weights.load("model.layers.3.mlp.gate_proj.weight");
    expect(w).toHaveLength(1536 * 576);
    let sum = 0,
      sq = 0,
      beyond3 = 0;
    for (const x of w) {
      sum += x;
      sq += x * x;
      if (Math.abs(x) > 3 * sigma) beyond3++;
    }
    const mean = sum / w.length;
    const std = Math.sqrt(sq / w.length - mean * mean);
    expect(Math.abs(mean)).toBeLessThan(1e-4);
    expect(std / sigma).toBeGreaterThan(0.995);
    expect(std / sigma).toBeLessThan(1.005);
    expect(beyond3 / w.length).toBeGreaterThan(0.0022); // 0.27% of a normal lies beyond 3σ
    expect(beyond3 / w.length).toBeLessThan(0.0032);
    expect(await weights.load("model.layers.3.mlp.gate_proj.weight")).toEqual(w);
    expect(await randomWeights(arch, 8).load("model.layers.3.mlp.gate_proj.weight")).not.toEqual(w);
    expect(await weights.load("model.layers.3.input_layernorm.weight")).toEqual(new Float32Array(576).fill(1));
  });

  it("Linear weights are transposed into the graph: k_proj and gate_proj outputs are x · Wᵀ (mini-llama)", async () => {
    const model = await loadModel("mini-llama");
    const l = "model.layers.1";
    const out = await model.trace(
      [5, 17, 300, 2],
      [
        `${l}.input_layernorm.output`,
        `${l}.self_attn.k_proj.output`,
        `${l}.post_attention_layernorm.output`,
        `${l}.mlp.gate_proj.output`
      ]
    );
    const check = async (input: string, output: string, weight: string) => {
      const x = (out as any)[input] as {shape: number[]; data: Float32Array};
      const y = (out as any)[output] as {shape: number[]; data: Float32Array};
      const w = await model.weight(weight);
      const [rows, cols] = w.shape; // [out, in]
      expect(rows).not.toBe(cols);
      const T = x.shape[1];
      for (let t = 0; t < T; t++) {
        for (let o = 0; o < rows; o++) {
          let s = 0;
          for (let i = 0; i < cols; i++) s += x.data[t * cols + i] * w.data[o * cols + i];
          expect(Math.abs(y.data[t * rows + o] - s)).toBeLessThan(1e-4 * (1 + Math.abs(s)));
        }
      }
    };
    await check(`${l}.input_layernorm.output`, `${l}.self_attn.k_proj.output`, `${l}.self_attn.k_proj.weight`);
    await check(`${l}.post_attention_layernorm.output`, `${l}.mlp.gate_proj.output`, `${l}.mlp.gate_proj.weight`);
  });
});
