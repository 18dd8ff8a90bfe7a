/**
 * The pieces both architectures are made of, as ONNX nodes: linear layers, norms, activations, the causal
 * mask and eager softmax attention (so that the attention weights exist as a tensor to look at).
 *
 * Shapes follow PyTorch with batch 1: hidden states are `[1, T, d]`, heads are `[1, heads, T, headDim]`.
 * `T` is the number of new tokens, `P` the number already in the key/value cache, `S = P + T`.
 */
import {type GraphBuilder, BOOL, FLOAT, INT64} from "./onnx.js";
import {graphOptionsOf, markPackedInputs, PACKED} from "./hooks.js";
import {cacheNames} from "./names.js";

/** `x @ w + b` where `w` is stored `[in, out]`. */
export function linear(g: GraphBuilder, x: string, w: string, b?: string, out?: string): string {
  if (!b) return g.op("MatMul", [x, w], {}, out);
  return g.op("Add", [g.op("MatMul", [x, w]), b], {}, out);
}

export function layerNorm(g: GraphBuilder, x: string, weight: string, bias: string, eps: number, out?: string): string {
  return g.op("LayerNormalization", [x, weight, bias], {axis: -1, epsilon: eps}, out);
}

/**
 * Llama's RMSNorm: `x / sqrt(mean(x²) + eps) * weight`. Written with Pow(x, 2), the pattern onnxruntime
 * fuses into one SimplifiedLayerNormalization kernel.
 */
export function rmsNorm(g: GraphBuilder, x: string, weight: string, eps: number, out?: string): string {
  const meanSquare = g.op("ReduceMean", [g.op("Pow", [x, g.scalar(2)])], {axes: [-1], keepdims: 1});
  const rms = g.op("Sqrt", [g.op("Add", [meanSquare, g.scalar(eps)])]);
  return g.op("Mul", [g.op("Div", [x, rms]), weight], {}, out);
}

/** GPT-2's `gelu_new`: `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`. */
export function geluTanh(g: GraphBuilder, x: string, out?: string): string {
  const cube = g.op("Mul", [g.op("Mul", [x, x]), x]);
  const inner = g.op("Mul", [g.op("Add", [x, g.op("Mul", [cube, g.scalar(0.044715)])]), g.scalar(Math.sqrt(2 / Math.PI))]);
  const onePlusTanh = g.op("Add", [g.op("Tanh", [inner]), g.scalar(1)]);
  return g.op("Mul", [g.op("Mul", [x, g.scalar(0.5)]), onePlusTanh], {}, out);
}

/** SiLU: `x · sigmoid(x)`. */
export function silu(g: GraphBuilder, x: string, out?: string): string {
  return g.op("Mul", [x, g.op("Sigmoid", [x])], {}, out);
}

export interface Positions {
  /** Positions of the new tokens, `P … S-1`, int64 `[T]`. */
  query: string;
  /** Positions of every key, `0 … S-1`, int64 `[S]`. */
  key: string;
}

/** Positions read off the shapes: `P` from the cache `[1, kvHeads, P, headDim]`, `T` from `input_ids` `[1, T]`. */
export function positions(g: GraphBuilder, inputIds: string, pastKey: string): Positions {
  const past = g.op("Gather", [g.op("Shape", [pastKey]), g.constant([2], [], INT64)], {axis: 0});
  const count = g.op("Gather", [g.op("Shape", [inputIds]), g.constant([1], [], INT64)], {axis: 0});
  const total = g.op("Add", [past, count]);
  const one = g.constant([1], [], INT64);
  return {
    query: g.op("Range", [past, total, one]),
    key: g.op("Range", [g.constant([0], [], INT64), total, one])
  };
}

/**
 * The inputs every decoder graph takes — `input_ids` `[1, T]` and each layer's past keys and values
 * `[1, kvHeads, P, headDim]` — with what follows from them: the positions and the causal mask.
 */
export function decoderInputs(g: GraphBuilder, {layers, kvHeads, headDim}: {layers: number; kvHeads: number; headDim: number}) {
  const ids = g.input("input_ids", INT64, [1, "T"]);
  const caches = Array.from({length: layers}, (_, i) => {
    const names = cacheNames(i);
    g.input(names.pastKey, FLOAT, [1, kvHeads, "P", headDim]);
    g.input(names.pastValue, FLOAT, [1, kvHeads, "P", headDim]);
    return names;
  });
  if (graphOptionsOf(g).packed) return {ids, caches, ...packedPositions(g, caches[0].pastKey)};
  const pos = positions(g, ids, caches[0].pastKey);
  return {ids, caches, pos, mask: causalMask(g, pos)};
}

/**
 * Several sequences side by side along the token axis (a patching sweep): each token's position and which keys
 * it may see come in as inputs, since they no longer follow from the shapes. The keys are the cache's
 * `0 … P-1`, then the new tokens' own positions.
 */
function packedPositions(g: GraphBuilder, pastKey: string): {pos: Positions; mask: string} {
  const query = g.input(PACKED.positions, INT64, ["T"]);
  const mask = g.input(PACKED.mask, BOOL, ["T", "S"]);
  const past = g.op("Gather", [g.op("Shape", [pastKey]), g.constant([2], [], INT64)], {axis: 0});
  const cached = g.op("Range", [g.constant([0], [], INT64), past, g.constant([1], [], INT64)]);
  markPackedInputs(g);
  return {pos: {query, key: g.op("Concat", [cached, query], {axis: 0})}, mask};
}

/** True where a query may not look: keys after the query's own position. Bool `[T, S]`. */
export function causalMask(g: GraphBuilder, pos: Positions): string {
  const queryColumn = g.op("Unsqueeze", [pos.query, g.ints([1])]);
  return g.op("Greater", [pos.key, queryColumn]);
}

/** `[1, T, heads·headDim]` → `[1, heads, T, headDim]`. */
export function splitHeads(g: GraphBuilder, x: string, heads: number, headDim: number): string {
  const split = g.op("Reshape", [x, g.ints([1, -1, heads, headDim])]);
  return g.op("Transpose", [split], {perm: [0, 2, 1, 3]});
}

/** `[1, heads, T, headDim]` → `[1, T, heads·headDim]`. */
export function mergeHeads(g: GraphBuilder, x: string, width: number, out?: string): string {
  const merged = g.op("Transpose", [x], {perm: [0, 2, 1, 3]});
  return g.op("Reshape", [merged, g.ints([1, -1, width])], {}, out);
}

/**
 * Eager attention: `softmax(q kᵀ / √D, masked) v`. Returns the post-softmax weights `[1, H, T, S]` (a hook
 * point) and the per-head context `[1, H, T, D]`.
 *
 * Grouped-query attention (fewer key/value heads than query heads) is done without copying keys and values
 * for every query head: the `H / kv` query heads that share a key/value head are stacked along the rows,
 * `[1, H, T, D]` → `[1, kv, (H/kv)·T, D]`, so one batched MatMul serves the whole group.
 */
export function attention(
  g: GraphBuilder,
  q: string,
  k: string,
  v: string,
  mask: string,
  {heads, kvHeads, headDim}: {heads: number; kvHeads: number; headDim: number},
  weightsOut: string
) {
  const grouped = (x: string) => (kvHeads === heads ? x : g.op("Reshape", [x, g.ints([1, kvHeads, -1, 0])]));
  const perHead = (x: string) => (kvHeads === heads ? x : g.op("Reshape", [x, g.ints([1, heads, -1, 0])]));
  const keysT = g.op("Transpose", [k], {perm: [0, 1, 3, 2]});
  const scores = perHead(g.op("Mul", [g.op("MatMul", [grouped(q), keysT]), g.scalar(1 / Math.sqrt(headDim))]));
  const masked = g.op("Where", [mask, g.scalar(-Infinity), scores]);
  const weights = g.op("Softmax", [masked], {axis: -1}, weightsOut);
  return {weights, context: perHead(g.op("MatMul", [grouped(weights), v]))};
}

/** The key/value cache: append this step's `[1, kv, T, D]` to the past `[1, kv, P, D]`. */
export function appendCache(g: GraphBuilder, past: string, current: string, out: string): string {
  return g.op("Concat", [past, current], {axis: 2}, out);
}

/** Logits from the final hidden state and a `[vocab, d]` matrix: Gemm with transB, so the embedding is not copied. */
export function tiedHead(g: GraphBuilder, final: string, head: string, d: number, V: number): string {
  const rows = g.op("Reshape", [final, g.ints([-1, d])]);
  const logits = g.op("Gemm", [rows, head], {transB: 1});
  return g.op("Reshape", [logits, g.ints([1, -1, V])]);
}
