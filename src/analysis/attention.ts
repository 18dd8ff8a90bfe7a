/**
 * Attention and MLP: one head's attention pattern read from a trace, and where the parameters of each layer
 * live (attention or MLP).
 */
import type {ModelConfig} from "../arch/index.js";
import {piecesOf, type AnyModel} from "./tokens.js";
import type {Tensor} from "../runtime/tensor.js";
import {attentionHook, clampIndex} from "./hooks.js";
import type {ParameterCounts} from "./index.js";
import {matrix} from "./index.js";

/** One cell of an attention pattern: how much `query` (a row) attends to `key` (a column). */
export interface AttentionCell {
  head: number;
  query: number;
  key: number;
  weight: number;
}

/** A head's [T, T] pattern from attention weights of shape [1, heads, T, T]: rows are queries, each sums to 1. */
export function attentionPattern(weights: Tensor, head: number): AttentionCell[] {
  const {rows, cols, data} = matrix(weights, 0, head);
  const cells: AttentionCell[] = [];
  for (let q = 0; q < rows; q++) for (let k = 0; k < cols; k++) cells.push({head, query: q, key: k, weight: data[q * cols + k]});
  return cells;
}

/** Every head's pattern, heads one after the other: the data of the small multiples. */
export function allHeads(weights: Tensor): AttentionCell[] {
  return Array.from({length: weights.shape[1]}, (_, h) => attentionPattern(weights, h)).flat();
}

/** Each query row's total weight (1 for a softmax). */
export function rowSums(cells: readonly AttentionCell[]): number[] {
  const sums: number[] = [];
  for (const c of cells) sums[c.query] = (sums[c.query] ?? 0) + c.weight;
  return sums;
}

export interface LayerShare {
  layer: number;
  attention: number;
  mlp: number;
  /** mlp / (attention + mlp) */
  mlpShare: number;
}

export interface ParameterShares {
  layers: LayerShare[];
  attention: number;
  mlp: number;
  /** MLP over attention + MLP, across all layers. */
  mlpShareOfBlocks: number;
  /** MLP over every parameter of the model (embeddings and norms included). */
  mlpShareOfModel: number;
  attentionShareOfModel: number;
  total: number;
  embedding: number;
  norm: number;
}

/** Attention versus MLP parameters, per layer and in total, from `model.counts()`. */
export function parameterShares(counts: ParameterCounts): ParameterShares {
  return {
    layers: counts.layers.map(({attention, mlp}, layer) => ({layer, attention, mlp, mlpShare: mlp / (attention + mlp)})),
    attention: counts.attention,
    mlp: counts.mlp,
    mlpShareOfBlocks: counts.mlp / (counts.attention + counts.mlp),
    mlpShareOfModel: counts.mlp / counts.total,
    attentionShareOfModel: counts.attention / counts.total,
    total: counts.total,
    embedding: counts.embedding,
    norm: counts.norm
  };
}

/** Page 5's defaults: the lecture's prompt, layer and head (clamped to smaller models). */
export const ATTENTION_DEFAULTS = {prompt: "a is a & b is b & y is", layer: 10, head: 3};

/** The lecture's layer and head, kept inside the model's: layer 10, head 3 of a 5-layer, 8-head model is 4, 3. */
export function defaultLayerHead(config: Pick<ModelConfig, "numLayers" | "numHeads">): {layer: number; head: number} {
  return {layer: clampIndex(ATTENTION_DEFAULTS.layer, config.numLayers), head: clampIndex(ATTENTION_DEFAULTS.head, config.numHeads)};
}

export interface AttentionTrace {
  prompt: string;
  input_ids: number[];
  pieces: string[];
  /** Every layer's attention weights, [1, heads, T, T] each. */
  layers: Tensor[];
}

/** One forward pass over `prompt` fetching every layer's attention weights: layer and head only re-slice. */
export async function attentionTrace(model: AnyModel, prompt: string): Promise<AttentionTrace> {
  const hooks = Array.from({length: model.config.numLayers}, (_, i) => attentionHook(model.config, i));
  const trace = await model.trace(prompt, hooks);
  return {
    prompt,
    input_ids: trace.input_ids,
    pieces: await piecesOf(model, trace.input_ids),
    layers: hooks.map((h) => trace[h]!)
  };
}
