/**
 * Which hook point plays which part, by `model_type`: names only. The family files build their graphs with
 * these names; this module imports no graph code, so the lecture pages can ask for a hook point from a
 * precomputed config alone (no model, no ONNX builder in the page's bundle).
 *
 * Families whose modules are named alike share a scheme: Llama, Mistral, Qwen2, Qwen3 and Gemma 3 all say
 * `model.layers.{i}.self_attn`. A family with names of its own adds its scheme here, and its line to `OWN_NAMES`.
 */
import type {Roles} from "./types.js";

export const gpt2Roles: Roles = {
  layer: (i) => `transformer.h.${i}`,
  resid: (i) => `transformer.h.${i}.output`,
  attn: (i) => `transformer.h.${i}.attn.output`,
  mlp: (i) => `transformer.h.${i}.mlp.output`,
  heads: (i) => `transformer.h.${i}.attn.c_proj.input`,
  attnWeights: (i) => `transformer.h.${i}.attn.attn_weights`,
  mlpIn: (i) => `transformer.h.${i}.mlp.c_fc`,
  finalNorm: "transformer.ln_f",
  unembedding: "lm_head"
};

/** Llama's names, and those of every family derived from it. Gemma 3's attn and mlp are the modules' own outputs, before its post-norms. */
export const llamaRoles: Roles = {
  layer: (i) => `model.layers.${i}`,
  resid: (i) => `model.layers.${i}.output`,
  attn: (i) => `model.layers.${i}.self_attn.output`,
  mlp: (i) => `model.layers.${i}.mlp.output`,
  heads: (i) => `model.layers.${i}.self_attn.o_proj.input`,
  attnWeights: (i) => `model.layers.${i}.self_attn.attn_weights`,
  mlpIn: (i) => `model.layers.${i}.mlp.gate_proj`,
  finalNorm: "model.norm",
  unembedding: "lm_head"
};

export const gptNeoxRoles: Roles = {
  layer: (i) => `gpt_neox.layers.${i}`,
  resid: (i) => `gpt_neox.layers.${i}.output`,
  attn: (i) => `gpt_neox.layers.${i}.attention.output`,
  mlp: (i) => `gpt_neox.layers.${i}.mlp.output`,
  heads: (i) => `gpt_neox.layers.${i}.attention.dense.input`,
  attnWeights: (i) => `gpt_neox.layers.${i}.attention.attn_weights`,
  mlpIn: (i) => `gpt_neox.layers.${i}.mlp.dense_h_to_4h`,
  finalNorm: "gpt_neox.final_layer_norm",
  unembedding: "embed_out"
};

/**
 * The families whose modules are named otherwise than Llama's, by `model_type`. Every other `model_type` the registry
 * (`index.ts`) runs is named as Llama is — so a Llama-style family needs no line here; the registry checks at load
 * that each family's roles are the ones given here.
 */
const OWN_NAMES: Readonly<Record<string, Roles>> = {gpt2: gpt2Roles, gpt_neox: gptNeoxRoles};

/** The roles of a config's family: a config that `normalizeConfig` read, whose model_type the registry runs. */
export function rolesFor(config: {modelType: string}): Roles {
  return OWN_NAMES[config.modelType] ?? llamaRoles;
}
