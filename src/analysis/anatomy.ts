/**
 * The anatomy of a model, the lecture's third section, as plain functions shared by the page (live) and its
 * data loader (precomputed): weights versus activations of one module, and the residual stream.
 *
 * `anatomyTrace(model, prompt)` is the ONE forward pass per prompt: it fetches the output of every module
 * with a weight matrix and the residual stream after every layer, so the module, layer and token controls
 * only re-slice it.
 */
import type {LanguageModel} from "../runtime/language-model.js";
import type {Tensor} from "../runtime/tensor.js";
import {rolesFor} from "../arch/roles.js";
import {clampIndex, residualHooks, weightModules, type WeightModule} from "./hooks.js";
import {bitIdentical, matrix, stats, type Stats} from "./index.js";
import {downsample, maxAbsDifference, type Downsampled} from "./matrix.js";

/** Page 3's defaults: the lecture's module and layer, and two prompts to compare. */
export const ANATOMY_DEFAULTS = {
  layer: 10,
  promptA: "The city Paris is in France",
  promptB: "The cat sat on the mat",
  maxCells: 256
};

/** The lecture's module for a model: layer 10's MLP input projection (gate_proj, GPT-2's c_fc…), layer clamped to the model's. */
export function defaultModule(model: Pick<LanguageModel, "config">, layer = ANATOMY_DEFAULTS.layer): string {
  return rolesFor(model.config).mlpIn(clampIndex(layer, model.config.numLayers));
}

/** The modules a reader can pick (a weight matrix and an output hook each). */
export function pickableModules(model: Pick<LanguageModel, "parameters" | "hookPoints">): WeightModule[] {
  return weightModules(model.parameters(), model.hookPoints());
}

export interface AnatomyTrace {
  prompt: string;
  input_ids: number[];
  /** Display pieces (" cat"). */
  pieces: string[];
  /** Every pickable module's output and every layer's residual stream, by hook point. */
  tensors: Record<string, Tensor>;
}

/** One forward pass over `prompt` fetching every tensor page 3 shows. */
export async function anatomyTrace(model: LanguageModel, prompt: string): Promise<AnatomyTrace> {
  const hooks = [...new Set([...pickableModules(model).map((m) => m.output), ...residualHooks(model.config)])];
  const trace = await model.trace(prompt, hooks);
  const pieces = await model.pieces(trace.input_ids);
  const tensors: Record<string, Tensor> = {};
  for (const h of hooks) tensors[h] = trace[h]!;
  return {prompt, input_ids: trace.input_ids, pieces, tensors};
}

export interface WeightSummary {
  name: string;
  shape: number[];
  stats: Stats;
  /** The matrix, block-averaged to at most `maxCells` a side. */
  heatmap: Downsampled;
}

/** A weight matrix: shape, statistics and a heatmap no larger than `maxCells` × `maxCells`. */
export function summarizeWeight(name: string, weight: Tensor, maxCells = ANATOMY_DEFAULTS.maxCells): WeightSummary {
  const [rows, cols] = weight.shape.length === 2 ? weight.shape : [1, weight.shape[0]];
  return {
    name,
    shape: weight.shape,
    stats: stats(weight.data),
    heatmap: downsample(weight.data, rows!, cols!, maxCells)
  };
}

/** A module's output for one prompt ([1, T, features]) as a [T × features] heatmap, features block-averaged. */
export function activationMatrix(output: Tensor, maxCells = ANATOMY_DEFAULTS.maxCells): Downsampled {
  const {rows, cols, data} = matrix(output, 0);
  return downsample(data, rows, cols, maxCells);
}

export interface EqualityCheck {
  /** The weight as used for prompt A and for prompt B: the very same numbers. */
  weightsIdentical: boolean;
  /** Whether the two outputs are bit-identical over the positions both prompts have. */
  activationsIdentical: boolean;
  /** The largest difference between the two outputs over those positions. */
  activationsMaxAbsDiff: number;
  shapeA: number[];
  shapeB: number[];
}

/** Weights versus activations: the weight is the same for both prompts, the outputs are not. */
export function equalityCheck(weightA: Tensor, weightB: Tensor, outputA: Tensor, outputB: Tensor): EqualityCheck {
  const T = Math.min(outputA.shape[1]!, outputB.shape[1]!);
  const width = outputA.shape[2]!;
  const a = outputA.data.subarray(0, T * width);
  const b = outputB.data.subarray(0, T * width);
  return {
    weightsIdentical: bitIdentical(weightA.data, weightB.data),
    activationsIdentical: bitIdentical(a, b),
    activationsMaxAbsDiff: maxAbsDifference(a, b),
    shapeA: outputA.shape,
    shapeB: outputB.shape
  };
}
