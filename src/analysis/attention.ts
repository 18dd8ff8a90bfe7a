/**
 * Attention and MLP: one head's attention pattern read from a trace, and where the parameters of each layer
 * live (attention or MLP).
 */
import type {ModelConfig} from "../arch/index.js";
import type {LanguageModel} from "../runtime/language-model.js";
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
  for (let q = 0; q < rows; q++)
    for (let k = 0; k < cols; k++) cells.push({head, query: q, key: k, weight: data[q * cols + k]});
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
    layers: counts.layers.map(({attention, mlp}, layer) => ({
      layer,
      attention,
      mlp,
      mlpShare: mlp / (attention + mlp)
    })),
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
  return {
    layer: clampIndex(ATTENTION_DEFAULTS.layer, config.numLayers),
    head: clampIndex(ATTENTION_DEFAULTS.head, config.numHeads)
  };
}

export interface AttentionTrace {
  prompt: string;
  input_ids: number[];
  pieces: string[];
  /** Every layer's attention weights, [1, heads, T, T] each. */
  layers: Tensor[];
}

/** One forward pass over `prompt` fetching every layer's attention weights: layer and head only re-slice. */
export async function attentionTrace(model: LanguageModel, prompt: string): Promise<AttentionTrace> {
  const hooks = Array.from({length: model.config.numLayers}, (_, i) => attentionHook(model.config, i));
  const trace = await model.trace(prompt, hooks);
  return {
    prompt,
    input_ids: trace.input_ids,
    pieces: await model.pieces(trace.input_ids),
    layers: hooks.map((h) => trace[h]!)
  };
}

/**
 * `self_attn.source`, as the lecture prints it: the attention block of one layer as its steps in the order the
 * forward pass runs them. Not a list written here: the steps are the model's own hook points under the
 * block's module path (`model.layers.10.self_attn.` for Llama, `transformer.h.10.attn.` for GPT-2, whatever
 * another family names it), which every architecture lists in forward order.
 */
export function attentionSteps(model: {config: ModelConfig; hookPoints(): string[]}, layer: number): string[] {
  const block = attentionBlock(model.config, layer);
  return model.hookPoints().filter((path) => path.startsWith(block));
}

/** The attention block's module path with its dot: the attention weights' hook path without its last name. */
function attentionBlock(config: ModelConfig, layer: number): string {
  const weights = attentionHook(config, layer);
  return weights.slice(0, weights.lastIndexOf(".") + 1);
}

export interface AttentionStep {
  /** The hook path, e.g. `model.layers.10.self_attn.q_proj.output`. */
  path: string;
  /** The path inside the block: `q_proj.output`, `attn_weights`. */
  name: string;
  /** Its shape for this prompt, batch first: `[1, 9, 10, 10]` for the attention weights. */
  shape: number[];
}

export interface AttentionSource {
  prompt: string;
  input_ids: number[];
  pieces: string[];
  /** Each layer's steps, in forward order: `steps[layer]`. */
  steps: AttentionStep[][];
  /** Every step's tensor, by path. */
  tensors: Record<string, Tensor>;
}

/**
 * One forward pass over `prompt` fetching every step of every layer's attention block (a layer slider then
 * only re-slices). Small: a block's tensors are a few rows of features per token.
 */
export async function attentionSource(model: LanguageModel, prompt: string): Promise<AttentionSource> {
  const layers = Array.from({length: model.config.numLayers}, (_, layer) => attentionSteps(model, layer));
  const trace = await model.trace(prompt, layers.flat());
  const tensors: Record<string, Tensor> = {};
  for (const path of layers.flat()) tensors[path] = trace[path]!;
  return {
    prompt,
    input_ids: trace.input_ids,
    pieces: await model.pieces(trace.input_ids),
    steps: layers.map((paths, layer) => {
      const block = attentionBlock(model.config, layer);
      return paths.map((path) => ({path, name: path.slice(block.length), shape: tensors[path]!.shape}));
    }),
    tensors
  };
}

/** The attention weights of every layer from an attention source: what `attentionTrace` fetches, without another pass. */
export function attentionTraceOf(source: AttentionSource, config: ModelConfig): AttentionTrace {
  return {
    prompt: source.prompt,
    input_ids: source.input_ids,
    pieces: source.pieces,
    layers: Array.from({length: config.numLayers}, (_, layer) => source.tensors[attentionHook(config, layer)]!)
  };
}

/**
 * A step's tensor as a matrix to draw: one row per token. Attention weights `[1, heads, T, T]` give `head`'s
 * pattern; any other `[1, T, …]` its features, the trailing dimensions flattened.
 */
export function stepMatrix(t: Tensor, head = 0): {rows: number; cols: number; data: Float32Array} {
  if (t.shape.length === 4 && t.shape[2] === t.shape[3]) return matrix(t, 0, Math.min(head, t.shape[1]! - 1));
  const rows = t.shape[1] ?? 1;
  return {rows, cols: t.data.length / rows, data: t.data};
}

/** A shape as the lecture prints it: `[1, 9, 10, 10]`. */
export function shapeText(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}
