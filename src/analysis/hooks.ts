/**
 * Hook-point names for the tensors the lecture pages read, in any family: the residual stream after a layer, a
 * layer's attention weights, and the modules that hold a weight matrix. Which module plays which part is the
 * family's to say (`src/arch/roles.ts`, by `model_type`); nothing here knows a family's names.
 */
import type {ModelConfig, Parameter} from "../arch/index.js";
// roles.ts, not the registry: pages showing precomputed numbers import this file, and must not load the graph builder.
import {rolesFor} from "../arch/roles.js";

type Config = Pick<ModelConfig, "modelType" | "numLayers">;

/** The residual stream after `layer`: `model.layers.{i}.output`, shape [1, T, hidden]. */
export function residualHook(config: Config, layer: number): string {
  return rolesFor(config).resid(layer);
}

/** The residual stream after every layer, first to last. */
export function residualHooks(config: Config): string[] {
  return Array.from({length: config.numLayers}, (_, i) => residualHook(config, i));
}

/** Post-softmax attention weights of `layer`, shape [1, heads, T, T]. */
export function attentionHook(config: Config, layer: number): string {
  return rolesFor(config).attnWeights(layer);
}

/** Keeps a layer (or head) index inside `0 … count - 1`: the lecture's layer 10 is layer 4 of a 5-layer model. */
export function clampIndex(index: number, count: number): number {
  return Math.max(0, Math.min(count - 1, Math.floor(index)));
}

/** A module with a weight matrix whose output is a hook point: `model.layers.10.mlp.gate_proj`. */
export interface WeightModule {
  /** The module path, e.g. `model.layers.10.mlp.gate_proj`. */
  module: string;
  /** Its weight, e.g. `model.layers.10.mlp.gate_proj.weight`, and the weight's shape. */
  weight: string;
  shape: number[];
  /** The hook point of its output, e.g. `model.layers.10.mlp.gate_proj.output`. */
  output: string;
}

/** The modules with a 2-d weight and an output hook, in parameter order (embeddings, projections, MLPs). */
export function weightModules(parameters: Parameter[], hookPoints: string[]): WeightModule[] {
  const hooks = new Set(hookPoints);
  const modules: WeightModule[] = [];
  for (const p of parameters) {
    if (p.shape.length !== 2 || !p.name.endsWith(".weight")) continue;
    const module = p.name.slice(0, -".weight".length);
    const output = `${module}.output`;
    if (hooks.has(output)) modules.push({module, weight: p.name, shape: p.shape, output});
  }
  return modules;
}
