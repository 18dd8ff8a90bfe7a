/**
 * The lecture's shared computations (src/analysis/{context,attention,anatomy,matrix,modules,hooks}.ts) on the
 * engine: stories260K (trained weights) and SmolLM2-135M's real config (random weights).
 */
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {
  ANATOMY_DEFAULTS,
  anatomyTrace,
  defaultModule,
  equalityCheck,
  pickableModules,
  summarizeWeight
} from "../src/analysis/anatomy.js";
import {
  ATTENTION_DEFAULTS,
  allHeads,
  attentionPattern,
  attentionTrace,
  defaultLayerHead,
  parameterShares,
  rowSums
} from "../src/analysis/attention.js";
import {
  CONTEXT_DEFAULTS,
  autoregressiveCheck,
  checkAtLayer,
  contextTrace,
  exerciseSimilarity,
  findWordPosition,
  pairwiseSimilarity,
  sharedPrefixLength,
  similarityByLayer,
  vectorsAt,
  wordIn,
  wordSimilarity,
  wordVectorHead,
  bandCheck,
  EXERCISE_BAND
} from "../src/analysis/context.js";
import {attentionHook, clampIndex, residualHook, residualHooks} from "../src/analysis/hooks.js";
import {downsample, downsampleNote} from "../src/analysis/matrix.js";
import {formatCount, parseModuleTree} from "../src/analysis/modules.js";
import {loadModel, type Model} from "../src/node.js";

let stories: Model;
let smol: Model;
beforeAll(async () => {
  stories = await loadModel("stories260K");
  smol = await loadModel("HuggingFaceTB/SmolLM2-135M", {init: "random", seed: 0});
});
afterAll(async () => {
  await stories?.dispose();
  await smol?.dispose();
});

describe("context: the autoregressive check", () => {
  it("positions before the first changed token are bit-identical; from it on they differ (every layer)", async () => {
    const a = await contextTrace(stories, "Once upon a time there was a little cat");
    const b = await contextTrace(stories, "Once upon a time there was a big dog");
    const shared = sharedPrefixLength(a.input_ids, b.input_ids);
    expect(shared).toBeGreaterThan(3);
    for (let layer = 0; layer < stories.config.numLayers; layer++) {
      const check = checkAtLayer(a, b, layer);
      expect(check.sharedPrefix).toBe(shared);
      expect(check.holds).toBe(true);
      for (const p of check.positions) {
        expect(p.identical).toBe(p.position < shared);
        expect(p.maxAbsDiff === 0).toBe(p.position < shared);
      }
    }
  });

  it("the lecture's two prompts on SmolLM2: the prefix up to 'in' is identical, the rest is not", async () => {
    const a = await contextTrace(smol, CONTEXT_DEFAULTS.checkA);
    const b = await contextTrace(smol, CONTEXT_DEFAULTS.checkB);
    const check = checkAtLayer(a, b, 10);
    expect(check.positions.filter((p) => p.identical).map((p) => p.tokenA)).toEqual([
      "The",
      " city",
      " Paris",
      " is",
      " in"
    ]);
    expect(check.holds).toBe(true);
    // "Paris" prints the same numbers in A and B, and different ones once a word before it changes (C).
    const c = await contextTrace(smol, CONTEXT_DEFAULTS.checkC);
    const [ha, hb, hc] = [a, b, c].map((t) => wordVectorHead(t, CONTEXT_DEFAULTS.checkWord, 10));
    expect(ha!.values).toHaveLength(20);
    expect(hb!.values).toEqual(ha!.values);
    expect(hc!.values).not.toEqual(ha!.values);
  });

  it("one trace per sentence: every layer's residual stream in ONE forward pass", async () => {
    const before = smol.runs;
    const t = await contextTrace(smol, "The package is very fragile");
    expect(smol.runs - before).toBe(1);
    expect(t.layers).toHaveLength(30);
    expect(t.layers[0]!.shape).toEqual([1, t.input_ids.length, 576]);
  });

  it("autoregressiveCheck compares over the positions both prompts have", () => {
    const tensor = (rows: number[][]) => ({
      shape: [1, rows.length, rows[0]!.length],
      data: Float32Array.from(rows.flat())
    });
    const check = autoregressiveCheck(
      {
        tensor: tensor([
          [1, 2],
          [3, 4],
          [5, 6]
        ]),
        input_ids: [7, 8, 9],
        tokens: ["a", "b", "c"]
      },
      {
        tensor: tensor([
          [1, 2],
          [3, 4.5]
        ]),
        input_ids: [7, 5],
        tokens: ["a", "x"]
      }
    );
    expect(check.sharedPrefix).toBe(1);
    expect(check.positions.map((p) => [p.identical, p.maxAbsDiff])).toEqual([
      [true, 0],
      [false, 0.5]
    ]);
    expect(check.holds).toBe(true);
  });
});

describe("context: a word across layers", () => {
  it("finds a word's last token in the pieces, whole words only", () => {
    expect(findWordPosition(["The", " package", " will", " break", " easily"], "break")).toEqual({
      start: 3,
      end: 4,
      position: 3
    });
    // stories260K splits " break" into four pieces: the position is the last one.
    expect(findWordPosition(["<s>", " it", " w", "il", "l", " b", "re", "a", "k", " e"], "break")).toEqual({
      start: 5,
      end: 9,
      position: 8
    });
    expect(findWordPosition(["a", " breakfast"], "break")).toBeUndefined();
    expect(findWordPosition(["Break", " it", " break"], "break")).toEqual({start: 2, end: 3, position: 2});
    expect(findWordPosition(["Break", " it"], "break")).toEqual({start: 0, end: 1, position: 0});
    expect(findWordPosition(["a", " b", " a"], "a", 1)).toEqual({start: 2, end: 3, position: 2});
  });

  it("the similarity of a vector with itself is 1 at every layer", async () => {
    const t = await contextTrace(stories, CONTEXT_DEFAULTS.sentences[0]!);
    const v = vectorsAt(t.layers, wordIn(t, "break").position);
    for (const s of similarityByLayer(v, v)) expect(s).toBeCloseTo(1, 6);
    const points = pairwiseSimilarity([
      {label: "1", vectors: v},
      {label: "2", vectors: v}
    ]);
    expect(points).toHaveLength(stories.config.numLayers);
    for (const p of points) expect(p.similarity).toBeCloseTo(1, 6);
  });

  it("'break' in the lecture's three sentences: three pairs × every layer, each in [-1, 1]; the exercise against them", async () => {
    const traces = await Promise.all(CONTEXT_DEFAULTS.sentences.map((s) => contextTrace(smol, s)));
    const points = wordSimilarity(traces, "break");
    expect(new Set(points.map((p) => p.pair))).toEqual(new Set(["1 ↔ 2", "1 ↔ 3", "2 ↔ 3"]));
    expect(points).toHaveLength(3 * 30);
    for (const p of points) expect(Math.abs(p.similarity)).toBeLessThanOrEqual(1 + 1e-6);
    // The exercise with a lecture sentence itself, at its own "break": similarity 1 against that sentence.
    const own = exerciseSimilarity(traces[1]!, wordIn(traces[1]!, "break").position, traces, "break");
    for (const p of own.filter((p) => p.b === "2")) expect(p.similarity).toBeCloseTo(1, 6);
    expect(own.filter((p) => p.b === "1").map((p) => p.similarity)).toEqual(
      points.filter((p) => p.pair === "1 ↔ 2").map((p) => p.similarity)
    );
  });
});

describe("attention", () => {
  it("each query row of a head's pattern sums to 1, and no query looks ahead", async () => {
    const {layer, head} = defaultLayerHead(stories.config);
    expect([layer, head]).toEqual([4, 3]); // layer 10 clamped to stories260K's 5 layers
    const t = await attentionTrace(stories, ATTENTION_DEFAULTS.prompt);
    const cells = attentionPattern(t.layers[layer]!, head);
    expect(cells).toHaveLength(t.pieces.length ** 2);
    for (const s of rowSums(cells)) expect(s).toBeCloseTo(1, 5);
    for (const c of cells) if (c.key > c.query) expect(c.weight).toBe(0);
    const heads = allHeads(t.layers[layer]!);
    expect(new Set(heads.map((c) => c.head)).size).toBe(8);
  });

  it("all layers' attention in one forward pass (SmolLM2: 9 heads, default layer 10, head 3)", async () => {
    const before = smol.runs;
    const t = await attentionTrace(smol, ATTENTION_DEFAULTS.prompt);
    expect(smol.runs - before).toBe(1);
    expect(defaultLayerHead(smol.config)).toEqual({layer: 10, head: 3});
    expect(t.layers[10]!.shape).toEqual([1, 9, t.pieces.length, t.pieces.length]);
    expect(t.pieces.join("")).toBe(ATTENTION_DEFAULTS.prompt);
  });

  it("SmolLM2-135M: layer 10's MLP share, and the totals", () => {
    const shares = parameterShares(smol.counts());
    expect(shares.layers).toHaveLength(30);
    expect(shares.layers[10]).toEqual({layer: 10, attention: 884_736, mlp: 2_654_208, mlpShare: 0.75});
    expect(shares.mlp).toBe(30 * 2_654_208);
    expect(shares.attention).toBe(30 * 884_736); // q, o: 576 × 576; k, v: 576 × 192
    expect(shares.mlpShareOfModel).toBeCloseTo(79_626_240 / 134_515_008, 12);
    expect(shares.mlpShareOfBlocks).toBe(0.75);
  });
});

describe("anatomy", () => {
  it("the lecture's module, and the modules a reader can pick", () => {
    expect(defaultModule(smol)).toBe("model.layers.10.mlp.gate_proj");
    expect(defaultModule(stories)).toBe("model.layers.4.mlp.gate_proj");
    const modules = pickableModules(smol);
    expect(modules.find((m) => m.module === "model.layers.10.mlp.gate_proj")).toEqual({
      module: "model.layers.10.mlp.gate_proj",
      weight: "model.layers.10.mlp.gate_proj.weight",
      shape: [1536, 576],
      output: "model.layers.10.mlp.gate_proj.output"
    });
    expect(modules).toHaveLength(1 + 30 * 7); // embed_tokens, then q k v o gate up down per layer
  });

  it("weights identical, activations different, in one forward pass per prompt", async () => {
    const before = smol.runs;
    const a = await anatomyTrace(smol, ANATOMY_DEFAULTS.promptA);
    const b = await anatomyTrace(smol, ANATOMY_DEFAULTS.promptB);
    expect(smol.runs - before).toBe(2);
    const m = defaultModule(smol);
    const check = equalityCheck(
      await smol.weight(`${m}.weight`),
      await smol.weight(`${m}.weight`),
      a.tensors[`${m}.output`]!,
      b.tensors[`${m}.output`]!
    );
    expect(check.weightsIdentical).toBe(true);
    expect(check.activationsIdentical).toBe(false);
    expect(check.activationsMaxAbsDiff).toBeGreaterThan(0);
    expect(check.shapeA).toEqual([1, a.input_ids.length, 1536]);
    expect(a.tensors[residualHook(smol.config, 10)]!.shape).toEqual([1, a.input_ids.length, 576]);
  });

  it("a weight summary: shape, statistics, a heatmap of ≤ 256 × 256 block means", async () => {
    const w = await smol.weight("model.layers.10.mlp.gate_proj.weight");
    const s = summarizeWeight("gate", w);
    expect(s.shape).toEqual([1536, 576]);
    expect(s.heatmap).toMatchObject({rows: 256, cols: 192, blockRows: 6, blockCols: 3});
    let sum = 0;
    for (const v of w.data) sum += v;
    expect(s.stats.mean).toBeCloseTo(sum / w.data.length, 6);
    // Equal blocks: the mean of the block means is the mean.
    expect(s.heatmap.data.reduce((x, y) => x + y, 0) / s.heatmap.data.length).toBeCloseTo(s.stats.mean, 6);
  });

  it("downsample averages blocks, keeps small matrices as they are", () => {
    const d = downsample([1, 2, 3, 4, 5, 6, 7, 8], 2, 4, 2);
    expect(d).toMatchObject({rows: 2, cols: 2, blockRows: 1, blockCols: 2});
    expect(Array.from(d.data)).toEqual([1.5, 3.5, 5.5, 7.5]);
    expect(downsampleNote(d)).toMatch(/1 × 2 block of the 2 × 4 matrix/);
    const same = downsample([1, 2, 3], 1, 3);
    expect(Array.from(same.data)).toEqual([1, 2, 3]);
    expect(downsampleNote(same)).toBe("");
    // A ragged last block averages what it has.
    expect(Array.from(downsample([1, 2, 3, 4, 5], 1, 5, 2).data)).toEqual([2, 4.5]);
  });

  it("the module tree with the parameters under each node", () => {
    const tree = parseModuleTree(smol.moduleTree(), smol.parameters());
    expect(tree.type).toBe("LlamaForCausalLM");
    expect(tree.parameters).toBe(134_515_008);
    const model = tree.children.find((c) => c.name === "model")!;
    const layers = model.children.find((c) => c.name === "layers")!.children[0]!;
    expect(layers.name).toBe("0-29");
    expect(layers.paths).toHaveLength(30);
    const mlp = layers.children.find((c) => c.name === "mlp")!;
    expect(mlp.parameters).toBe(30 * 2_654_208);
    expect(mlp.children.map((c) => c.name)).toEqual(["gate_proj", "up_proj", "down_proj", "act_fn"]);
    expect(formatCount(134_515_008)).toBe("134.5M");
  });
});

describe("hook names", () => {
  it("follow each architecture's module paths", () => {
    const gpt2 = {modelType: "gpt2" as const, numLayers: 12};
    expect(residualHook(gpt2, 3)).toBe("transformer.h.3.output");
    expect(attentionHook(gpt2, 3)).toBe("transformer.h.3.attn.attn_weights");
    expect(residualHooks(smol.config)).toHaveLength(30);
    for (const h of [...residualHooks(smol.config), attentionHook(smol.config, 29)])
      expect(smol.hookPoints()).toContain(h);
    expect(clampIndex(10, 5)).toBe(4);
    expect(clampIndex(-1, 5)).toBe(0);
  });
});

describe("exercise 3: the band", () => {
  const point = (b: string, layer: number, similarity: number) => ({
    pair: `yours ↔ ${b}`,
    a: "yours",
    b,
    layer,
    similarity
  });

  it("lands only when the similarity to every sentence is inside [0.7, 0.8] at the layer", () => {
    expect(EXERCISE_BAND).toEqual([0.7, 0.8]);
    const inside = [point("1", 10, 0.71), point("2", 10, 0.79), point("3", 10, 0.75), point("1", 9, 0.2)];
    expect(bandCheck(inside, 10)).toMatchObject({
      lands: true,
      similarities: [
        {sentence: "1", similarity: 0.71},
        {sentence: "2", similarity: 0.79},
        {sentence: "3", similarity: 0.75}
      ]
    });
    expect(bandCheck(inside, 9).lands).toBe(false);
    expect(bandCheck([point("1", 10, 0.71), point("2", 10, 0.81), point("3", 10, 0.75)], 10).lands).toBe(false);
    expect(bandCheck([], 10).lands).toBe(false);
  });
});
