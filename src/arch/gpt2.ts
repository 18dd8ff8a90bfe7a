/**
 * GPT-2 (Radford et al., 2019), as Hugging Face's `GPT2LMHeadModel` computes it, written as an ONNX graph.
 *
 *   h₀ = wte[ids] + wpe[positions]
 *   for each block:  a = attn(ln_1(h));  h = h + a;  m = mlp(ln_2(h));  h = h + m
 *   logits = ln_f(h) · wteᵀ                          (lm_head is tied to wte)
 *
 * Every intermediate tensor that a hook point names is a graph output called by its module path.
 *
 * Checkpoint facts: Hub `gpt2` stores names without the `transformer.` prefix (DialoGPT, mGPT keep it), has no
 * `lm_head.weight`, and carries `h.{i}.attn.bias` / `attn.masked_bias` mask buffers that are not parameters.
 * Conv1D weights are stored `[in, out]`, so `x · W` needs no transpose.
 */
import {GraphBuilder, INT64} from "../graph/onnx.js";
import {
  DECODE,
  concatColumns,
  decodeInputs,
  groupQueryAttention,
  headLogits,
  lastPosition,
  nextToken,
  padHeadColumns,
  padHeadRows,
  paddedHead,
  residualStream
} from "../graph/decode.js";
import {finishDecoder, hookSite} from "../graph/hooks.js";
import {
  appendCache,
  attention,
  decoderInputs,
  geluTanh,
  layerNorm,
  linear,
  mergeHeads,
  splitHeads,
  tiedHead
} from "../graph/layers.js";
import {type ModelConfig, checkConfig, readConfig} from "./config.js";
import {
  type Module,
  dropoutModule,
  embeddingModule,
  layerNormModule,
  linearModule,
  printModule
} from "./module-tree.js";
import {gpt2Roles} from "./roles.js";
import {
  type Architecture,
  type Family,
  type GraphOptions,
  type Parameter,
  LOGITS,
  blockOutputAliases,
  parameter
} from "./types.js";

const block = gpt2Roles.layer;
const roles = gpt2Roles;

/** GPT-2's config.json (`n_embd`, `n_head`, …): only `gelu_new`, the activation every GPT-2 checkpoint uses. */
function normalize(raw: Record<string, unknown>, file: string): ModelConfig {
  const {c, int, num, common, architecture, fail} = readConfig(raw, file);
  const hiddenSize = int("n_embd");
  const numHeads = int("n_head");
  const activation = String(c.activation_function ?? "gelu_new");
  if (activation !== "gelu_new") fail(`activation_function "${activation}" is not supported (gpt2 uses "gelu_new")`);
  return checkConfig(
    {
      modelType: "gpt2",
      architecture: architecture ?? "GPT2LMHeadModel",
      numLayers: int("n_layer"),
      numHeads,
      numKeyValueHeads: numHeads,
      hiddenSize,
      headDim: hiddenSize / numHeads,
      intermediateSize: c.n_inner == null ? 4 * hiddenSize : int("n_inner"),
      vocabSize: int("vocab_size"),
      maxPositions: int("n_positions"),
      normEps: num("layer_norm_epsilon", 1e-5),
      tieWordEmbeddings: c.tie_word_embeddings !== false,
      activation,
      ...common
    },
    file
  );
}

export const gpt2: Family = {modelTypes: ["gpt2"], roles, normalize, architecture: gpt2Architecture};

function gpt2Architecture(config: ModelConfig): Architecture {
  const {
    numLayers: L,
    hiddenSize: d,
    numHeads: H,
    headDim: D,
    intermediateSize: inner,
    vocabSize: V,
    maxPositions
  } = config;

  function parameters(): Parameter[] {
    const p = parameter;
    const list = [
      p("transformer.wte.weight", [V, d], "embedding"),
      p("transformer.wpe.weight", [maxPositions, d], "embedding")
    ];
    for (let i = 0; i < L; i++) {
      const b = block(i);
      list.push(
        p(`${b}.ln_1.weight`, [d], "norm", i),
        p(`${b}.ln_1.bias`, [d], "norm", i),
        p(`${b}.attn.c_attn.weight`, [d, 3 * d], "attention", i),
        p(`${b}.attn.c_attn.bias`, [3 * d], "attention", i),
        p(`${b}.attn.c_proj.weight`, [d, d], "attention", i),
        p(`${b}.attn.c_proj.bias`, [d], "attention", i),
        p(`${b}.ln_2.weight`, [d], "norm", i),
        p(`${b}.ln_2.bias`, [d], "norm", i),
        p(`${b}.mlp.c_fc.weight`, [d, inner], "mlp", i),
        p(`${b}.mlp.c_fc.bias`, [inner], "mlp", i),
        p(`${b}.mlp.c_proj.weight`, [inner, d], "mlp", i),
        p(`${b}.mlp.c_proj.bias`, [d], "mlp", i)
      );
    }
    list.push(p("transformer.ln_f.weight", [d], "norm"), p("transformer.ln_f.bias", [d], "norm"));
    if (!config.tieWordEmbeddings) list.push(p("lm_head.weight", [V, d], "head"));
    return list;
  }

  function hookPoints(): string[] {
    const hooks = ["transformer.wte.output", "transformer.wpe.output"];
    for (let i = 0; i < L; i++) {
      const b = block(i);
      hooks.push(
        `${b}.ln_1.output`,
        `${b}.attn.c_attn.output`,
        `${b}.attn.attn_weights`,
        `${b}.attn.c_proj.input`,
        `${b}.attn.c_proj.output`,
        `${b}.attn.output`,
        `${b}.ln_2.output`,
        `${b}.mlp.c_fc.output`,
        `${b}.mlp.act.output`,
        `${b}.mlp.c_proj.output`,
        `${b}.mlp.output`,
        `${b}.output`
      );
    }
    hooks.push("transformer.ln_f.output", LOGITS);
    return hooks;
  }

  /** A block's attn and mlp output are their c_proj's output: one tensor, fetched once, under both names. */
  const aliasOf = blockOutputAliases({attn: "c_proj", mlp: "c_proj"});
  /** Each parameter's shape, for the graphs: both the traced and the lean one read it. */
  const shapeOf = new Map(parameters().map((p) => [p.name, p.shape]));

  function buildGraph(weight: (name: string) => Float32Array, options: GraphOptions = {}) {
    const g = new GraphBuilder();
    const hook = hookSite(g, {all: hookPoints(), aliasOf}, options);
    const w = (name: string) => g.weight(name, weight(name), shapeOf.get(name)!);

    const {ids, caches, pos, mask} = decoderInputs(g, {layers: L, kvHeads: H, headDim: D});

    const wte = w("transformer.wte.weight");
    const tokenEmbeddings = hook("transformer.wte.output", g.op("Gather", [wte, ids], {axis: 0}));
    const positionEmbeddings = hook(
      "transformer.wpe.output",
      g.op("Unsqueeze", [g.op("Gather", [w("transformer.wpe.weight"), pos.query], {axis: 0}), g.ints([0])])
    );
    let h = g.op("Add", [tokenEmbeddings, positionEmbeddings]);
    const layerOutputs: string[] = [];

    for (let i = 0; i < L; i++) {
      const b = block(i);
      // Attention: one Conv1D makes q, k and v side by side.
      const x = hook(`${b}.ln_1.output`, layerNorm(g, h, w(`${b}.ln_1.weight`), w(`${b}.ln_1.bias`), config.normEps));
      const qkv = hook(
        `${b}.attn.c_attn.output`,
        linear(g, x, w(`${b}.attn.c_attn.weight`), w(`${b}.attn.c_attn.bias`))
      );
      const [q, k, v] = g.opN("Split", [qkv, g.ints([d, d, d])], 3, {axis: -1}).map((t) => splitHeads(g, t, H, D));
      const keys = appendCache(g, caches[i].pastKey, k, caches[i].presentKey);
      const values = appendCache(g, caches[i].pastValue, v, caches[i].presentValue);
      g.output(caches[i].presentKey, keys);
      g.output(caches[i].presentValue, values);
      const {weights, context} = attention(
        g,
        q,
        keys,
        values,
        mask,
        {heads: H, kvHeads: H, headDim: D},
        `${b}.attn.attn_weights`
      );
      hook(`${b}.attn.attn_weights`, weights); // named by its path already: exposed without a copy
      const merged = hook(`${b}.attn.c_proj.input`, mergeHeads(g, context, d));
      const attnOut = hook(
        `${b}.attn.c_proj.output`,
        linear(g, merged, w(`${b}.attn.c_proj.weight`), w(`${b}.attn.c_proj.bias`))
      );
      h = g.op("Add", [h, attnOut]);

      // MLP: expand 4×, tanh-GELU, project back.
      const y = hook(`${b}.ln_2.output`, layerNorm(g, h, w(`${b}.ln_2.weight`), w(`${b}.ln_2.bias`), config.normEps));
      const up = hook(`${b}.mlp.c_fc.output`, linear(g, y, w(`${b}.mlp.c_fc.weight`), w(`${b}.mlp.c_fc.bias`)));
      const act = hook(`${b}.mlp.act.output`, geluTanh(g, up));
      const mlpOut = hook(
        `${b}.mlp.c_proj.output`,
        linear(g, act, w(`${b}.mlp.c_proj.weight`), w(`${b}.mlp.c_proj.bias`))
      );
      h = hook(`${b}.output`, g.op("Add", [h, mlpOut]));
      layerOutputs.push(h);
    }

    const [lnW, lnB] = [w("transformer.ln_f.weight"), w("transformer.ln_f.bias")];
    const head = config.tieWordEmbeddings ? wte : w("lm_head.weight");
    finishDecoder(
      g,
      hook,
      {
        normPath: "transformer.ln_f",
        norm: (x) => layerNorm(g, x, lnW, lnB, config.normEps),
        unembed: (x) => tiedHead(g, x, head, d, V)
      },
      h,
      layerOutputs
    );
    return g.build(config.architecture);
  }

  /**
   * The lean decode graph (graph/decode.ts): the residual adds, c_proj's bias and the norms in one
   * SkipLayerNormalization each, GroupQueryAttention (no rotary) over c_attn's side-by-side q, k, v, c_fc's bias
   * and gelu_new in one FastGelu, the next token chosen on the GPU. Positions come in as `position_ids`.
   */
  function buildDecodeGraph(weight: (name: string) => Float32Array) {
    const g = new GraphBuilder();
    const w = (name: string) => g.weight(name, weight(name), shapeOf.get(name)!);
    const {P} = paddedHead(D);
    const {ids, seqlensK, totalLength} = decodeInputs(g, {layers: L, kvHeads: H, headDim: D});
    const positions = g.input(DECODE.positions, INT64, [1, "T"]);
    const wte = w("transformer.wte.weight");
    const embeddings = g.op("Add", [
      g.op("Gather", [wte, ids], {axis: 0}),
      g.op("Gather", [w("transformer.wpe.weight"), positions], {axis: 0})
    ]);
    const stream = residualStream(g, embeddings, config.normEps);
    const norm = (ln: string) => stream.norm(w(`${ln}.weight`), w(`${ln}.bias`));
    /** c_attn's `[d, 3d]` (q, k, v side by side), each third's heads in their padded slots. */
    const qkvColumns = (m: Float32Array, rows: number) =>
      concatColumns(
        [0, 1, 2].map((k) => {
          const third = new Float32Array(rows * d);
          for (let r = 0; r < rows; r++) third.set(m.subarray(r * 3 * d + k * d, r * 3 * d + (k + 1) * d), r * d);
          return {data: padHeadColumns(third, rows, H, D), rows, cols: H * P};
        })
      );
    for (let i = 0; i < L; i++) {
      const b = block(i);
      const x = norm(`${b}.ln_1`);
      const qkvWeight = g.weight(`${b}.attn.c_attn.weight`, qkvColumns(weight(`${b}.attn.c_attn.weight`), d), [
        d,
        3 * H * P
      ]);
      const qkvBias = g.weight(`${b}.attn.c_attn.bias`, qkvColumns(weight(`${b}.attn.c_attn.bias`), 1), [3 * H * P]);
      const qkv = g.op("Add", [g.op("MatMul", [x, qkvWeight]), qkvBias]);
      const context = groupQueryAttention(g, qkv, i, {seqlensK, totalLength}, {heads: H, kvHeads: H, headDim: D});
      const cProj = padHeadRows(weight(`${b}.attn.c_proj.weight`), H, D, d);
      // c_proj's bias is added by the next SkipLayerNormalization, with the residual.
      stream.add(
        g.op("MatMul", [context, g.weight(`${b}.attn.c_proj.weight`, cProj, [H * P, d])]),
        w(`${b}.attn.c_proj.bias`)
      );
      const y = norm(`${b}.ln_2`);
      const up = g.op("MatMul", [y, w(`${b}.mlp.c_fc.weight`)]);
      const act = g.op("com.microsoft.FastGelu", [up, w(`${b}.mlp.c_fc.bias`)]);
      stream.add(g.op("MatMul", [act, w(`${b}.mlp.c_proj.weight`)]), w(`${b}.mlp.c_proj.bias`));
    }
    const final = lastPosition(g, norm("transformer.ln_f"));
    nextToken(g, headLogits(g, final, config.tieWordEmbeddings ? wte : w("lm_head.weight"), d));
    return g.build(`${config.architecture} (decode)`);
  }

  function moduleTree(): string {
    const dropout = dropoutModule;
    const norm = layerNormModule(d, config.normEps);
    const conv1d = (nf: number, nx: number): Module => ({type: "Conv1D", extra: `nf=${nf}, nx=${nx}`});
    const raw = config.raw;
    const gpt2Block: Module = {
      type: "GPT2Block",
      children: [
        ["ln_1", norm],
        [
          "attn",
          {
            type: "GPT2Attention",
            children: [
              ["c_attn", conv1d(3 * d, d)],
              ["c_proj", conv1d(d, d)],
              ["attn_dropout", dropout(raw.attn_pdrop)],
              ["resid_dropout", dropout(raw.resid_pdrop)]
            ]
          }
        ],
        ["ln_2", norm],
        [
          "mlp",
          {
            type: "GPT2MLP",
            children: [
              ["c_fc", conv1d(inner, d)],
              ["c_proj", conv1d(d, inner)],
              ["act", {type: "NewGELUActivation"}],
              ["dropout", dropout(raw.resid_pdrop)]
            ]
          }
        ]
      ]
    };
    return printModule({
      type: config.architecture,
      children: [
        [
          "transformer",
          {
            type: "GPT2Model",
            children: [
              ["wte", embeddingModule(V, d)],
              ["wpe", embeddingModule(maxPositions, d)],
              ["drop", dropout(raw.embd_pdrop)],
              [
                "h",
                {type: "ModuleList", list: true, children: Array.from({length: L}, (_, i) => [String(i), gpt2Block])}
              ],
              ["ln_f", norm]
            ]
          }
        ],
        ["lm_head", linearModule(d, V, false)]
      ]
    });
  }

  return {
    config,
    slidingWindows: Array.from({length: config.numLayers}, () => null),
    roles,
    parameters,
    hookPoints,
    moduleTree,
    buildGraph,
    buildDecodeGraph,
    aliasOf,
    checkpointNames: (name) => (name.startsWith("transformer.") ? [name.slice("transformer.".length), name] : [name]),
    isBuffer: (name) => /(^|\.)attn\.(bias|masked_bias)$/.test(name)
  };
}
