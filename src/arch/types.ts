/** What every architecture in `src/arch/` provides to the runtime. */
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
}

export interface GraphOptions {
  /** The hook points to expose as graph outputs; all of them when omitted. */
  hooks?: string[];
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
  /** The model printed as PyTorch prints it. */
  moduleTree(): string;
  /** The forward pass as an ONNX graph; `weight(name)` gives a parameter in its checkpoint layout. */
  buildGraph(weight: (parameter: string) => Float32Array, options?: GraphOptions): EncodedModel;
}

/** Graph input and output names of the key/value cache. */
export const cacheNames = (layer: number) => ({
  pastKey: `past_key_values.${layer}.key`,
  pastValue: `past_key_values.${layer}.value`,
  presentKey: `present.${layer}.key`,
  presentValue: `present.${layer}.value`
});

export const LOGITS = "lm_head.output";

export function parameter(name: string, shape: number[], component: Component, layer?: number): Parameter {
  return {name, shape, numel: numel(shape), component, layer};
}

