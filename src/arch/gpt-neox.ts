/**
 * GPT-NeoX (Black et al., 2022) — the Pythia suite (Biderman et al., 2023), interpretability's standard — as
 * Hugging Face's `GPTNeoXForCausalLM` computes it: the GPT-style decoder of `gpt-decoder.ts` with its partial
 * rotary, each head's q | k | v side by side in query_key_value, and (by default) the parallel residual.
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
import {activation} from "./activations.js";
import {type ModelConfig, checkConfig, readConfig} from "./config.js";
import {gptDecoder} from "./gpt-decoder.js";
import {type Module, layerList, dropoutModule, embeddingModule, layerNormModule, linearModule} from "./module-tree.js";
import {gptNeoxRoles} from "./roles.js";
import type {Family} from "./types.js";

export interface GptNeoxConfig extends ModelConfig {
  ropeTheta: number;
  /** How many of each head's dimensions rotate: `int(head_dim × rotary_pct)`. */
  rotaryDim: number;
  parallelResidual: boolean;
  /** Biases on query_key_value and dense (`attention_bias`, true in every Pythia). */
  attentionBias: boolean;
}

const roles = gptNeoxRoles;

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

/** transformers 4.57's tree (5.x calls the unembedding lm_head; the checkpoint and 4.57 say embed_out). */
function gptNeoxArchitecture(config: GptNeoxConfig) {
  const {numLayers: L, hiddenSize: d, intermediateSize: ff, vocabSize: V, attentionBias: bias} = config;
  const act = activation(config.activation, "config.json", "hidden_act");
  const dropout = dropoutModule(config.raw.hidden_dropout ?? 0);
  const layer: Module = {
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
            ["dense_h_to_4h", linearModule(d, ff, true, "mlp")],
            ["dense_4h_to_h", linearModule(ff, d, true, "mlp")],
            ["act", {type: act.module}]
          ]
        }
      ]
    ]
  };
  const modules: Module = {
    type: config.architecture,
    children: [
      [
        "gpt_neox",
        {
          type: "GPTNeoXModel",
          children: [
            ["embed_in", embeddingModule(V, d)],
            ["emb_dropout", dropout],
            ["layers", layerList(L, layer)],
            ["final_layer_norm", layerNormModule(d, config.normEps)],
            ["rotary_emb", {type: "GPTNeoXRotaryEmbedding"}]
          ]
        }
      ],
      ["embed_out", {...linearModule(d, V, false, "head"), tied: config.tieWordEmbeddings}]
    ]
  };
  return gptDecoder({
    config,
    roles,
    modules,
    tokens: "gpt_neox.embed_in",
    finalNorm: "gpt_neox.final_layer_norm",
    head: "embed_out",
    norms: ["input_layernorm", "post_attention_layernorm"],
    attention: {block: "attention", qkv: "query_key_value", out: "dense"},
    mlp: {block: "mlp", up: "dense_h_to_4h", act: "act", down: "dense_4h_to_h"},
    conv1d: false,
    qkvLayout: "heads",
    rotary: {dim: config.rotaryDim, base: config.ropeTheta},
    parallelResidual: config.parallelResidual,
    activation: act,
    checkpointNames: (name) => [name],
    isBuffer: (name) =>
      /\.attention\.(bias|masked_bias|rotary_emb\.inv_freq)$/.test(name) || name.endsWith("rotary_emb.inv_freq")
  });
}
