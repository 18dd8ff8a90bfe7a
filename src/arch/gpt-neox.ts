/**
 * GPT-NeoX (Black et al., 2022) — the Pythia suite (Biderman et al., 2023), interpretability's standard — as
 * Hugging Face's `GPTNeoXForCausalLM` computes it, written as an ONNX graph.
 *
 *   h₀ = embed_in[ids]
 *   for each layer:
 *     x = input_layernorm(h)                          LayerNorm with bias
 *     q | k | v = query_key_value(x)                  one Linear, laid out per head: [T, heads, 3·D], each head's q, k, v thirds of it
 *     q, k = rope(q), rope(k)                         on the first rotary_pct · D dimensions of each head only
 *     a = dense(softmax(q kᵀ / √D + causal mask) v)
 *     parallel (use_parallel_residual):  h = h + a + mlp(post_attention_layernorm(h))
 *     otherwise:                         h = h + a;  h = h + mlp(post_attention_layernorm(h))
 *     mlp(y) = dense_4h_to_h(gelu(dense_h_to_4h(y)))  exact-erf GELU
 *   logits = embed_out(final_layer_norm(h))           embed_out is its own matrix (untied)
 *
 * Hook points are the module paths (`gpt_neox.layers.3.attention.attn_weights`, `embed_out.output`);
 * `attention.output` is the tensor the layer adds (the module itself returns a tuple).
 *
 * Checkpoint facts: Linear weights `[out, in]`, transposed once at load. Older Pythia checkpoints carry buffers
 * that are not parameters — `attention.bias` (a BOOL causal mask), `attention.masked_bias` (0-d),
 * `attention.rotary_emb.inv_freq` — which are ignored, as transformers ignores them.
 */
import {GraphBuilder} from "../graph/onnx.js";
import {finishDecoder, hookSite} from "../graph/hooks.js";
import {
  concatColumns,
  decodeInputs,
  groupQueryAttention,
  headLogits,
  lastPosition,
  nextToken,
  padHeadColumns,
  padHeadRows,
  paddedHead,
  residualStream,
  rotaryTables
} from "../graph/decode.js";
import {
  appendCache,
  attention,
  bindWeights,
  decoderInputs,
  layerNorm,
  linear,
  mergeHeads,
  rotaryEmbedding,
  splitHeads,
  tiedHead,
  transpose
} from "../graph/layers.js";
import {activation} from "./activations.js";
import {type ModelConfig, checkConfig, readConfig} from "./config.js";
import {
  type Module,
  dropoutModule,
  embeddingModule,
  layerNormModule,
  linearModule,
  printModule
} from "./module-tree.js";
import {gptNeoxRoles} from "./roles.js";
import {
  type Architecture,
  type Family,
  type GraphOptions,
  type Parameter,
  LOGITS,
  blockOutputAliases,
  parameter
} from "./types.js";

export interface GptNeoxConfig extends ModelConfig {
  ropeTheta: number;
  /** How many of each head's dimensions rotate: `int(head_dim × rotary_pct)`. */
  rotaryDim: number;
  parallelResidual: boolean;
  /** Biases on query_key_value and dense (`attention_bias`, true in every Pythia). */
  attentionBias: boolean;
}

const layer = gptNeoxRoles.layer;
const roles = gptNeoxRoles;

/** The logits under the unembedding's own module path; `lm_head.output` (LOGITS) names them in every family. */
const UNEMBED_OUTPUT = "embed_out.output";

function normalize(raw: Record<string, unknown>, file: string): GptNeoxConfig {
  const {c, int, num, refuse, fail, common, architecture} = readConfig(raw, file);
  const hiddenSize = int("hidden_size");
  const numHeads = int("num_attention_heads");
  const act = String(c.hidden_act ?? "gelu");
  activation(act, file, "hidden_act");
  refuse("rope_scaling", (v) => v != null);
  const rotaryPct = c.rotary_pct ?? c.partial_rotary_factor ?? 0.25;
  if (typeof rotaryPct !== "number" || !(rotaryPct > 0 && rotaryPct <= 1))
    fail(`rotary_pct ${JSON.stringify(rotaryPct)} must be in (0, 1]`);
  const headDim = hiddenSize / numHeads;
  // transformers: rotary_ndims = int(head_size * rotary_pct)
  const rotaryDim = Math.floor(headDim * (rotaryPct as number));
  if (rotaryDim % 2 !== 0 || rotaryDim === 0)
    fail(
      `rotary_pct ${rotaryPct} gives ${rotaryDim} rotary dimensions per head; rotary embeddings need an even, nonzero number`
    );
  const config: GptNeoxConfig = {
    modelType: "gpt_neox",
    architecture: architecture ?? "GPTNeoXForCausalLM",
    numLayers: int("num_hidden_layers"),
    numHeads,
    numKeyValueHeads: numHeads,
    hiddenSize,
    headDim,
    intermediateSize: int("intermediate_size"),
    vocabSize: int("vocab_size"),
    maxPositions: int("max_position_embeddings"),
    normEps: num("layer_norm_eps", 1e-5),
    // Pythia's configs say rotary_emb_base; transformers 4.57 reads it as rope_theta.
    ropeTheta: c.rope_theta != null ? num("rope_theta", 10000) : num("rotary_emb_base", 10000),
    rotaryDim,
    parallelResidual: c.use_parallel_residual !== false,
    attentionBias: c.attention_bias !== false,
    tieWordEmbeddings: c.tie_word_embeddings === true,
    activation: act,
    ...common
  };
  return checkConfig(config, file);
}

export const gptNeox: Family<GptNeoxConfig> = {
  modelTypes: ["gpt_neox"],
  roles,
  normalize,
  architecture: gptNeoxArchitecture
};

function gptNeoxArchitecture(config: GptNeoxConfig): Architecture {
  const {
    numLayers: L,
    hiddenSize: d,
    numHeads: H,
    headDim: D,
    intermediateSize: ff,
    vocabSize: V,
    attentionBias: bias
  } = config;
  const act = activation(config.activation, "config.json", "hidden_act");

  function parameters(): Parameter[] {
    const p = parameter;
    const linearParams = (
      name: string,
      out: number,
      inp: number,
      hasBias: boolean,
      component: "attention" | "mlp",
      i: number
    ) =>
      hasBias
        ? [p(`${name}.weight`, [out, inp], component, i), p(`${name}.bias`, [out], component, i)]
        : [p(`${name}.weight`, [out, inp], component, i)];
    const list = [p("gpt_neox.embed_in.weight", [V, d], "embedding")];
    for (let i = 0; i < L; i++) {
      const l = layer(i);
      list.push(
        p(`${l}.input_layernorm.weight`, [d], "norm", i),
        p(`${l}.input_layernorm.bias`, [d], "norm", i),
        p(`${l}.post_attention_layernorm.weight`, [d], "norm", i),
        p(`${l}.post_attention_layernorm.bias`, [d], "norm", i),
        ...linearParams(`${l}.attention.query_key_value`, 3 * d, d, bias, "attention", i),
        ...linearParams(`${l}.attention.dense`, d, d, bias, "attention", i),
        ...linearParams(`${l}.mlp.dense_h_to_4h`, ff, d, true, "mlp", i),
        ...linearParams(`${l}.mlp.dense_4h_to_h`, d, ff, true, "mlp", i)
      );
    }
    list.push(p("gpt_neox.final_layer_norm.weight", [d], "norm"), p("gpt_neox.final_layer_norm.bias", [d], "norm"));
    if (!config.tieWordEmbeddings) list.push(p("embed_out.weight", [V, d], "head"));
    return list;
  }

  function hookPoints(): string[] {
    const hooks = ["gpt_neox.embed_in.output"];
    for (let i = 0; i < L; i++) {
      const l = layer(i);
      hooks.push(
        `${l}.input_layernorm.output`,
        `${l}.attention.query_key_value.output`,
        `${l}.attention.attn_weights`,
        `${l}.attention.dense.input`,
        `${l}.attention.dense.output`,
        `${l}.attention.output`,
        `${l}.post_attention_layernorm.output`,
        `${l}.mlp.dense_h_to_4h.output`,
        `${l}.mlp.act.output`,
        `${l}.mlp.dense_4h_to_h.output`,
        `${l}.mlp.output`,
        `${l}.output`
      );
    }
    hooks.push("gpt_neox.final_layer_norm.output", UNEMBED_OUTPUT);
    return hooks;
  }

  const shapeOf = new Map(parameters().map((p) => [p.name, p.shape]));

  /** attention's output is dense's, mlp's is dense_4h_to_h's, embed_out's the logits: one tensor, two names. */
  const blockAlias = blockOutputAliases({attention: "dense", mlp: "dense_4h_to_h"});
  const aliasOf = (path: string) => (path === UNEMBED_OUTPUT ? LOGITS : blockAlias(path));

  function buildGraph(weight: (name: string) => Float32Array, options: GraphOptions = {}) {
    const g = new GraphBuilder();
    const hook = hookSite(g, {all: hookPoints(), aliasOf}, options);
    const {w, wT} = bindWeights(g, weight, (name) => shapeOf.get(name)!);
    const project = (x: string, name: string) =>
      linear(g, x, wT(`${name}.weight`), shapeOf.has(`${name}.bias`) ? w(`${name}.bias`) : undefined);
    const norm = (x: string, name: string) => layerNorm(g, x, w(`${name}.weight`), w(`${name}.bias`), config.normEps);

    const {ids, caches, pos, mask} = decoderInputs(g, {layers: L, kvHeads: H, headDim: D});
    const rope = rotaryEmbedding(g, pos, {
      maxPositions: config.maxPositions,
      headDim: D,
      rotaryDim: config.rotaryDim,
      base: config.ropeTheta
    });

    const embed = w("gpt_neox.embed_in.weight");
    let h = hook("gpt_neox.embed_in.output", g.op("Gather", [embed, ids], {axis: 0}));
    const layerOutputs: string[] = [];

    for (let i = 0; i < L; i++) {
      const l = layer(i);
      const x = hook(`${l}.input_layernorm.output`, norm(h, `${l}.input_layernorm`));
      const qkv = hook(`${l}.attention.query_key_value.output`, project(x, `${l}.attention.query_key_value`));
      // Per head: [1, T, 3d] → [1, H, T, 3D], then q, k, v are the thirds of each head's 3D.
      const [q, k, v] = g.opN("Split", [splitHeads(g, qkv, H, 3 * D), g.ints([D, D, D])], 3, {axis: -1});
      const keys = appendCache(g, caches[i].pastKey, rope(k), caches[i].presentKey);
      const values = appendCache(g, caches[i].pastValue, v, caches[i].presentValue);
      g.output(caches[i].presentKey, keys);
      g.output(caches[i].presentValue, values);
      const {weights, context} = attention(
        g,
        rope(q),
        keys,
        values,
        mask,
        {heads: H, kvHeads: H, headDim: D},
        `${l}.attention.attn_weights`
      );
      hook(`${l}.attention.attn_weights`, weights); // named by its path already: exposed without a copy
      const merged = hook(`${l}.attention.dense.input`, mergeHeads(g, context, d));
      const attnOut = hook(`${l}.attention.dense.output`, project(merged, `${l}.attention.dense`));

      // Parallel residual: the MLP reads the layer's input, not h + attention.
      const mlpInput = config.parallelResidual ? h : g.op("Add", [attnOut, h]);
      const y = hook(`${l}.post_attention_layernorm.output`, norm(mlpInput, `${l}.post_attention_layernorm`));
      const up = hook(`${l}.mlp.dense_h_to_4h.output`, project(y, `${l}.mlp.dense_h_to_4h`));
      const a = hook(`${l}.mlp.act.output`, act.graph(g, up));
      const mlpOut = hook(`${l}.mlp.dense_4h_to_h.output`, project(a, `${l}.mlp.dense_4h_to_h`));
      h = hook(
        `${l}.output`,
        config.parallelResidual ? g.op("Add", [g.op("Add", [mlpOut, attnOut]), h]) : g.op("Add", [mlpOut, mlpInput])
      );
      layerOutputs.push(h);
    }

    const [lnW, lnB] = [w("gpt_neox.final_layer_norm.weight"), w("gpt_neox.final_layer_norm.bias")];
    const head = config.tieWordEmbeddings ? embed : w("embed_out.weight");
    finishDecoder(
      g,
      hook,
      {
        normPath: "gpt_neox.final_layer_norm",
        norm: (x) => layerNorm(g, x, lnW, lnB, config.normEps),
        unembed: (x) => tiedHead(g, x, head, d, V)
      },
      h,
      layerOutputs
    );
    return g.build(config.architecture);
  }

  /**
   * The lean decode graph (graph/decode.ts): LayerNorms with the residual adds and the output biases in one
   * SkipLayerNormalization each, query_key_value's per-head q|k|v regrouped into q, k and v blocks for
   * GroupQueryAttention, whose rotary turns only the first rotaryDim dimensions of each head (the others sit where
   * its tables say cos 1, sin 0: `paddedHead`), exact GELU in one kernel, the next token chosen on the GPU. With the
   * parallel residual the MLP's norm reads the layer's input beside the attention's, and both outputs join the
   * stream in one Add.
   */
  function buildDecodeGraph(weight: (name: string) => Float32Array) {
    const g = new GraphBuilder();
    const {w, wT} = bindWeights(g, weight, (name) => shapeOf.get(name)!);
    const R = config.rotaryDim;
    const {P} = paddedHead(D, R);
    const {ids, seqlensK, totalLength} = decodeInputs(g, {layers: L, kvHeads: H, headDim: D});
    const rotary = rotaryTables(g, {positions: config.maxPositions, headDim: D, rotary: R, base: config.ropeTheta});
    /** `[rows, 3d]` laid out per head (each head's q, k, v) → q, k, v blocks side by side, heads in padded slots. */
    const qkvColumns = (m: Float32Array, rows: number) =>
      concatColumns(
        [0, 1, 2].map((part) => {
          const block = new Float32Array(rows * d);
          for (let row = 0; row < rows; row++)
            for (let h = 0; h < H; h++) {
              const from = row * 3 * d + (h * 3 + part) * D;
              block.set(m.subarray(from, from + D), row * d + h * D);
            }
          return {data: padHeadColumns(block, rows, H, D, R), rows, cols: H * P};
        })
      );
    const embed = w("gpt_neox.embed_in.weight");
    const stream = residualStream(g, g.op("Gather", [embed, ids], {axis: 0}), config.normEps);
    const norm = (ln: string) => stream.norm(w(`${ln}.weight`), w(`${ln}.bias`));
    for (let i = 0; i < L; i++) {
      const l = layer(i);
      const x = norm(`${l}.input_layernorm`);
      const input = stream.current;
      const qkvName = `${l}.attention.query_key_value`;
      const qkvWeight = qkvColumns(transpose(weight(`${qkvName}.weight`), 3 * d, d), d);
      let qkv = g.op("MatMul", [x, g.weight(`${qkvName}.weight`, qkvWeight, [d, 3 * H * P])]);
      if (bias)
        qkv = g.op("Add", [qkv, g.weight(`${qkvName}.bias`, qkvColumns(weight(`${qkvName}.bias`), 1), [3 * H * P])]);
      const context = groupQueryAttention(
        g,
        qkv,
        i,
        {seqlensK, totalLength},
        {heads: H, kvHeads: H, headDim: D, rotary}
      );
      const dense = padHeadRows(transpose(weight(`${l}.attention.dense.weight`), d, d), H, D, d, R);
      const attnOut = g.op("MatMul", [context, g.weight(`${l}.attention.dense.weight`, dense, [H * P, d])]);
      const mlp = (y: string) => {
        const up = g.op("MatMul", [y, wT(`${l}.mlp.dense_h_to_4h.weight`)]);
        const act = g.op("com.microsoft.BiasGelu", [up, w(`${l}.mlp.dense_h_to_4h.bias`)]);
        return g.op("MatMul", [act, wT(`${l}.mlp.dense_4h_to_h.weight`)]);
      };
      if (config.parallelResidual) {
        const outBias = weight(`${l}.mlp.dense_4h_to_h.bias`);
        const post = `${l}.post_attention_layernorm`;
        const y = layerNorm(g, input, w(`${post}.weight`), w(`${post}.bias`), config.normEps);
        // Both biases go in with the residual, as one.
        const denseBias = bias ? weight(`${l}.attention.dense.bias`) : undefined;
        const joint = denseBias ? outBias.map((b, k) => b + denseBias[k]) : outBias;
        stream.add(g.op("Add", [attnOut, mlp(y)]), g.weight(`${l}.output.bias`, joint, [d]));
      } else {
        stream.add(attnOut, bias ? w(`${l}.attention.dense.bias`) : undefined);
        stream.add(mlp(norm(`${l}.post_attention_layernorm`)), w(`${l}.mlp.dense_4h_to_h.bias`));
      }
    }
    const final = lastPosition(g, norm("gpt_neox.final_layer_norm"));
    nextToken(g, headLogits(g, final, config.tieWordEmbeddings ? embed : w("embed_out.weight"), d));
    return g.build(`${config.architecture} (decode)`);
  }

  /** transformers 4.57's print (5.x calls the unembedding lm_head; the checkpoint and 4.57 say embed_out). */
  function moduleTree(): string {
    const dropout = dropoutModule(config.raw.hidden_dropout ?? 0);
    const gptNeoxLayer: Module = {
      type: "GPTNeoXLayer",
      children: [
        ["input_layernorm", layerNormModule(d, config.normEps)],
        ["post_attention_layernorm", layerNormModule(d, config.normEps)],
        ["post_attention_dropout", dropout],
        ["post_mlp_dropout", dropout],
        [
          "attention",
          {
            type: "GPTNeoXAttention",
            children: [
              ["query_key_value", linearModule(d, 3 * d, bias)],
              ["dense", linearModule(d, d, bias)]
            ]
          }
        ],
        [
          "mlp",
          {
            type: "GPTNeoXMLP",
            children: [
              ["dense_h_to_4h", linearModule(d, ff, true)],
              ["dense_4h_to_h", linearModule(ff, d, true)],
              ["act", {type: act.module}]
            ]
          }
        ]
      ]
    };
    return printModule({
      type: config.architecture,
      children: [
        [
          "gpt_neox",
          {
            type: "GPTNeoXModel",
            children: [
              ["embed_in", embeddingModule(V, d)],
              ["emb_dropout", dropout],
              [
                "layers",
                {type: "ModuleList", list: true, children: Array.from({length: L}, (_, i) => [String(i), gptNeoxLayer])}
              ],
              ["final_layer_norm", layerNormModule(d, config.normEps)],
              ["rotary_emb", {type: "GPTNeoXRotaryEmbedding"}]
            ]
          }
        ],
        ["embed_out", linearModule(d, V, false)]
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
    checkpointNames: (name) => [name],
    isBuffer: (name) =>
      /\.attention\.(bias|masked_bias|rotary_emb\.inv_freq)$/.test(name) || name.endsWith("rotary_emb.inv_freq")
  };
}
