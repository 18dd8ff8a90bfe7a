/**
 * `self_attn.source`: the attention block of a layer as its steps, taken from the architecture's own hook
 * points (gpt2 and SmolLM2 structures from their real configs, stories260K), with the shapes of one trace.
 */
import {readFileSync} from "node:fs";
import {join} from "node:path";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {
  ATTENTION_DEFAULTS,
  attentionSource,
  attentionSteps,
  attentionTrace,
  attentionTraceOf,
  shapeText,
  stepMatrix
} from "../src/analysis/attention.js";
import {architectureFor, normalizeConfig} from "../src/arch/index.js";
import {loadModel, type Model} from "../src/node.js";

const structure = (folder: string) => {
  const config = normalizeConfig(JSON.parse(readFileSync(join("data/models", folder, "config.json"), "utf8")));
  const arch = architectureFor(config);
  return {config, hookPoints: () => arch.hookPoints()};
};

describe("the attention block's steps come from the architecture's hook points, in forward order", () => {
  it("gpt2: c_attn, the weights, c_proj, the block's output", () => {
    const steps = attentionSteps(structure("gpt2"), 10);
    expect(steps).toEqual(
      ["c_attn.output", "attn_weights", "c_proj.input", "c_proj.output", "output"].map(
        (s) => `transformer.h.10.attn.${s}`
      )
    );
  });

  it("SmolLM2: q, k, v, the weights, o_proj, the block's output — the order the forward pass runs them", () => {
    const model = structure("HuggingFaceTB/SmolLM2-135M");
    const steps = attentionSteps(model, 10);
    const order = ["q_proj.output", "k_proj.output", "v_proj.output", "attn_weights", "o_proj.output", "output"].map(
      (s) => `model.layers.10.self_attn.${s}`
    );
    for (const s of order) expect(steps).toContain(s);
    expect(order.map((s) => steps.indexOf(s))).toEqual([...order.map((s) => steps.indexOf(s))].sort((a, b) => a - b));
    // Exactly the hook points under the block, nothing from layer 1 or 100.
    expect(steps).toEqual(model.hookPoints().filter((h) => h.startsWith("model.layers.10.self_attn.")));
  });
});

describe("one trace gives each step's shape and tensor", () => {
  let stories: Model;
  beforeAll(async () => {
    stories = await loadModel("stories260K");
  });
  afterAll(async () => {
    await stories?.dispose();
  });

  it("stories260K, the lecture's prompt: one forward pass for every layer, shapes from the tensors", async () => {
    const before = stories.runs;
    const source = await attentionSource(stories, ATTENTION_DEFAULTS.prompt);
    expect(stories.runs - before).toBe(1);
    expect(source.steps).toHaveLength(stories.config.numLayers);
    const T = source.pieces.length;
    const {numHeads, headDim, hiddenSize} = stories.config;
    const byName = Object.fromEntries(source.steps[4]!.map((s) => [s.name, s.shape]));
    expect(byName["attn_weights"]).toEqual([1, numHeads, T, T]);
    expect(byName["q_proj.output"]).toEqual([1, T, numHeads * headDim]);
    expect(byName["output"]).toEqual([1, T, hiddenSize]);
    expect(shapeText(byName["attn_weights"]!)).toBe(`[1, ${numHeads}, ${T}, ${T}]`);
    // A step's tensor as a matrix: a head's T × T pattern (rows sum to 1), or T rows of features.
    const pattern = stepMatrix(source.tensors["model.layers.4.self_attn.attn_weights"]!, 2);
    expect([pattern.rows, pattern.cols]).toEqual([T, T]);
    for (let q = 0; q < T; q++)
      expect(pattern.data.subarray(q * T, (q + 1) * T).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    const q = stepMatrix(source.tensors["model.layers.4.self_attn.q_proj.output"]!);
    expect([q.rows, q.cols]).toEqual([T, numHeads * headDim]);
    // The attention weights the heatmaps use are the same tensors, with no second pass.
    const weights = attentionTraceOf(source, stories.config);
    const direct = await attentionTrace(stories, ATTENTION_DEFAULTS.prompt);
    expect(weights.pieces).toEqual(direct.pieces);
    for (let layer = 0; layer < stories.config.numLayers; layer++)
      expect(weights.layers[layer]).toEqual(direct.layers[layer]);
  });
});
