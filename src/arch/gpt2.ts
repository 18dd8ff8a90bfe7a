/**
 * GPT-2 (Radford et al., 2019), as Hugging Face's `GPT2LMHeadModel` computes it: the GPT-style decoder of
 * `gpt-decoder.ts` with learned positions, Conv1D projections and c_attn's q | k | v thirds.
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
import {activation} from "./activations.js";
import {type ModelConfig, checkConfig, readConfig} from "./config.js";
import {gptDecoder} from "./gpt-decoder.js";
import {
  type Module,
  layerList,
  conv1dModule,
  dropoutModule,
  embeddingModule,
  layerNormModule,
  linearModule
} from "./module-tree.js";
import {gpt2Roles as roles} from "./roles.js";
import type {Family} from "./types.js";

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

function gpt2Architecture(config: ModelConfig) {
  const {numLayers: L, hiddenSize: d, intermediateSize: inner, vocabSize: V, maxPositions, raw} = config;
  const dropout = dropoutModule;
  const norm = layerNormModule(d, config.normEps);
  const block: Module = {
    type: "GPT2Block",
    children: [
      ["ln_1", norm],
      [
        "attn",
        {
          type: "GPT2Attention",
          children: [
            ["c_attn", conv1dModule(3 * d, d, "attention")],
            ["c_proj", conv1dModule(d, d, "attention")],
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
            ["c_fc", conv1dModule(inner, d, "mlp")],
            ["c_proj", conv1dModule(d, inner, "mlp")],
            ["act", {type: "NewGELUActivation"}],
            ["dropout", dropout(raw.resid_pdrop)]
          ]
        }
      ]
    ]
  };
  const modules: Module = {
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
            ["h", layerList(L, block)],
            ["ln_f", norm]
          ]
        }
      ],
      ["lm_head", {...linearModule(d, V, false, "head"), tied: config.tieWordEmbeddings}]
    ]
  };
  return gptDecoder({
    config,
    roles,
    modules,
    tokens: "transformer.wte",
    positions: "transformer.wpe",
    finalNorm: "transformer.ln_f",
    head: "lm_head",
    norms: ["ln_1", "ln_2"],
    attention: {block: "attn", qkv: "c_attn", out: "c_proj"},
    mlp: {block: "mlp", up: "c_fc", act: "act", down: "c_proj"},
    conv1d: true,
    qkvLayout: "thirds",
    parallelResidual: false,
    activation: activation(config.activation, "config.json", "activation_function"),
    checkpointNames: (name) => (name.startsWith("transformer.") ? [name.slice("transformer.".length), name] : [name]),
    isBuffer: (name) => /(^|\.)attn\.(bias|masked_bias)$/.test(name)
  });
}
