/** What every architecture in `src/arch/` provides to the runtime. */
import type {GraphOptions} from "../graph/hooks.js";
import type {EncodedModel} from "../graph/onnx.js";
import {numel} from "../hub/safetensors.js";
import type {ModelConfig} from "./config.js";

export type Component = "embedding" | "attention" | "mlp" | "norm" | "head";

/** A parameter as `model.named_parameters()` lists it, with the part of the model it belongs to. */
export interface Parameter {
  name: string;
  shape: number[];
  numel: number;
  component: Component;
  /** The decoder layer it belongs to, if any. */
  layer?: number;
  /**
   * How `init: "random"` fills it where the usual rule (norm weights 1, biases 0, the rest normal) is wrong
   * for the family: Gemma's norm weights are stored zero-centred (`1 + w`), so theirs start at 0.
   */
  init?: "zeros";
}

export type {GraphOptions} from "../graph/hooks.js";
export {LOGITS, cacheNames} from "../graph/names.js";

/**
 * The tensors the rest of the code asks for by what they are rather than by name, so that nothing outside
 * `src/arch/` needs to know how a family names its modules. Each is a hook point (or a module path) of layer `i`.
 */
export interface Roles {
  /** The decoder layer's module path: `model.layers.3`, `transformer.h.3`, `gpt_neox.layers.3`. */
  layer(i: number): string;
  /** The residual stream after layer `i` (the layer's output), `[1, T, d]`. */
  resid(i: number): string;
  /** The attention block's output as the layer adds it to the residual stream, `[1, T, d]`. */
  attn(i: number): string;
  /** The MLP block's output as the layer adds it, `[1, T, d]`. */
  mlp(i: number): string;
  /** The input of the attention output projection, `[1, T, heads × headDim]`: head h is columns h·D … h·D + D − 1. */
  heads(i: number): string;
  /** Post-softmax attention weights, `[1, heads, T, T]`. */
  attnWeights(i: number): string;
  /** The MLP's first projection (the lecture's "MLP neurons" view reads its output): `mlp.gate_proj`, `mlp.c_fc`. */
  mlpIn(i: number): string;
  /** The final norm's module path (`model.norm`) and the unembedding's (`lm_head`, `embed_out`). */
  finalNorm: string;
  unembedding: string;
}

export interface Architecture {
  readonly config: ModelConfig;
  /** Parameters in `named_parameters()` order (tied weights listed once). */
  parameters(): Parameter[];
  /** The names a parameter may carry in a checkpoint file, most usual first. */
  checkpointNames(parameter: string): string[];
  /** Checkpoint tensors that are buffers, not parameters (GPT-2's attention masks). */
  isBuffer(checkpointName: string): boolean;
  /** Every hook point, by Hugging Face module path, in forward order. */
  hookPoints(): string[];
  /** For a hook point that is the very tensor of another (a module whose output is its last layer's), that other. */
  aliasOf(path: string): string | undefined;
  /** Which hook point plays which part: the residual stream, the attention and MLP outputs, the heads. */
  readonly roles: Roles;
  /** Per layer, the sliding window (a token sees itself and `window − 1` before it), or null for full attention. */
  readonly slidingWindows: readonly (number | null)[];
  /** The model printed as PyTorch prints it. */
  moduleTree(): string;
  /** The forward pass as an ONNX graph; `weight(name)` gives a parameter in its checkpoint layout. */
  buildGraph(weight: (parameter: string) => Float32Array, options?: GraphOptions): EncodedModel;
  /**
   * The lean decode graph (graph/decode.ts): generation only, no hook points, fused contrib ops. Absent where a
   * family has none (generation then runs on `buildGraph`'s graph).
   */
  buildDecodeGraph?(weight: (parameter: string) => Float32Array): EncodedModel;
}

export function parameter(
  name: string,
  shape: number[],
  component: Component,
  layer?: number,
  init?: "zeros"
): Parameter {
  return init
    ? {name, shape, numel: numel(shape), component, layer, init}
    : {name, shape, numel: numel(shape), component, layer};
}

/**
 * A family of checkpoints, keyed in the registry (`index.ts`) by the `model_type` values it reads: how to read
 * its config.json, which hook point plays which part, and its architecture for a config.
 */
export interface Family<C extends ModelConfig = ModelConfig> {
  modelTypes: readonly string[];
  /** config.json into a checked config; `file` names the file in errors. */
  normalize(raw: Record<string, unknown>, file: string): C;
  /** The family's roles (they depend only on the family's module names). */
  roles: Roles;
  architecture(config: C): Architecture;
}

/**
 * The `aliasOf` of a family whose blocks return their last sublayer's output: `{self_attn: "o_proj", mlp:
 * "down_proj"}` makes `….self_attn.output` the very tensor of `….self_attn.o_proj.output` (fetched once, under
 * both names).
 */
export function blockOutputAliases(lastSublayer: Record<string, string>): (path: string) => string | undefined {
  return (path) => {
    const block = /\.([A-Za-z_]+)\.output$/.exec(path)?.[1];
    return block !== undefined && Object.hasOwn(lastSublayer, block)
      ? path.replace(/output$/, `${lastSublayer[block]}.output`)
      : undefined;
  };
}
