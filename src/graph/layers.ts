/**
 * The pieces every architecture is made of, as ONNX nodes: linear layers, norms, activations, rotary
 * embeddings (whole or partial), the causal and sliding-window masks and eager softmax attention (so that the
 * attention weights exist as a tensor to look at). Nothing here knows a family: `src/arch/` composes these.
 *
 * Shapes follow PyTorch with batch 1: hidden states are `[1, T, d]`, heads are `[1, heads, T, headDim]`.
 * `T` is the number of new tokens, `P` the number already in the key/value cache, `S = P + T`.
 */
import {type GraphBuilder, BOOL, FLOAT, INT64} from "./onnx.js";
import {type Hook, graphOptionsOf, markPackedInputs, PACKED} from "./hooks.js";
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

/** GPT-2's `gelu_new` and Gemma's `gelu_pytorch_tanh`: `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`. */
export function geluTanh(g: GraphBuilder, x: string, out?: string): string {
  const cube = g.op("Mul", [g.op("Mul", [x, x]), x]);
  const inner = g.op("Mul", [
    g.op("Add", [x, g.op("Mul", [cube, g.scalar(0.044715)])]),
    g.scalar(Math.sqrt(2 / Math.PI))
  ]);
  const onePlusTanh = g.op("Add", [g.op("Tanh", [inner]), g.scalar(1)]);
  return g.op("Mul", [g.op("Mul", [x, g.scalar(0.5)]), onePlusTanh], {}, out);
}

/** The exact GELU (`nn.GELU()`, GPT-NeoX's `gelu`): `0.5 x (1 + erf(x / √2))`. */
export function geluErf(g: GraphBuilder, x: string, out?: string): string {
  const onePlusErf = g.op("Add", [g.op("Erf", [g.op("Mul", [x, g.scalar(Math.SQRT1_2)])]), g.scalar(1)]);
  return g.op("Mul", [g.op("Mul", [x, g.scalar(0.5)]), onePlusErf], {}, out);
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
export function decoderInputs(
  g: GraphBuilder,
  {layers, kvHeads, headDim}: {layers: number; kvHeads: number; headDim: number}
) {
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

/**
 * True where a query may not look in a sliding-window layer: where `mask` (the causal mask, or whatever the
 * graph's mask is) says so, and at keys `window` or more positions back (transformers' `kv_idx > q_idx -
 * sliding_window`: a token sees itself and `window − 1` before it). Bool `[T, S]`.
 */
export function slidingWindowMask(g: GraphBuilder, pos: Positions, window: number, mask: string): string {
  const distance = g.op("Sub", [g.op("Unsqueeze", [pos.query, g.ints([1])]), pos.key]);
  return g.op("Or", [mask, g.op("GreaterOrEqual", [distance, g.constant([window], [], INT64)])]);
}

/** `[1, T, heads·headDim]` → `[1, T, heads, headDim]`: the per-head view (what Qwen3's q_norm sees). */
export function viewHeads(g: GraphBuilder, x: string, heads: number, headDim: number): string {
  return g.op("Reshape", [x, g.ints([1, -1, heads, headDim])]);
}

/** `[1, T, heads, headDim]` ↔ `[1, heads, T, headDim]`. */
export function swapHeadsAndTokens(g: GraphBuilder, x: string): string {
  return g.op("Transpose", [x], {perm: [0, 2, 1, 3]});
}

/** `[1, T, heads·headDim]` → `[1, heads, T, headDim]`. */
export function splitHeads(g: GraphBuilder, x: string, heads: number, headDim: number): string {
  return swapHeadsAndTokens(g, viewHeads(g, x, heads, headDim));
}

/** `[1, heads, T, headDim]` → `[1, T, heads·headDim]`. */
function mergeHeads(g: GraphBuilder, x: string, width: number, out?: string): string {
  const merged = g.op("Transpose", [x], {perm: [0, 2, 1, 3]});
  return g.op("Reshape", [merged, g.ints([1, -1, width])], {}, out);
}

/**
 * Eager attention: `softmax(q kᵀ · scale, masked) v`, the scale `1/√D` unless a family sets its own
 * (Gemma 3: `query_pre_attn_scalar^-½`). Returns the post-softmax weights `[1, H, T, S]` (a hook
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
  {
    heads,
    kvHeads,
    headDim,
    scale = 1 / Math.sqrt(headDim)
  }: {heads: number; kvHeads: number; headDim: number; scale?: number},
  weightsOut: string
) {
  const grouped = (x: string) => (kvHeads === heads ? x : g.op("Reshape", [x, g.ints([1, kvHeads, -1, 0])]));
  const perHead = (x: string) => (kvHeads === heads ? x : g.op("Reshape", [x, g.ints([1, heads, -1, 0])]));
  const keysT = g.op("Transpose", [k], {perm: [0, 1, 3, 2]});
  const scores = perHead(g.op("Mul", [g.op("MatMul", [grouped(q), keysT]), g.scalar(scale)]));
  const masked = g.op("Where", [mask, g.scalar(-Infinity), scores]);
  const weights = g.op("Softmax", [masked], {axis: -1}, weightsOut);
  return {weights, context: perHead(g.op("MatMul", [grouped(weights), v]))};
}

/** The key/value cache: append this step's `[1, kv, T, D]` to the past `[1, kv, P, D]`. */
function appendCache(g: GraphBuilder, past: string, current: string, out: string): string {
  return g.op("Concat", [past, current], {axis: 2}, out);
}

/** Logits from the final hidden state and a `[vocab, d]` matrix: Gemm with transB, so the embedding is not copied. */
export function tiedHead(g: GraphBuilder, final: string, head: string, d: number, V: number): string {
  const rows = g.op("Reshape", [final, g.ints([-1, d])]);
  const logits = g.op("Gemm", [rows, head], {transB: 1});
  return g.op("Reshape", [logits, g.ints([1, -1, V])]);
}

/**
 * Rotary position embeddings (Su et al.), Hugging Face's "rotate half" layout, on the first `rotaryDim` of each
 * head's `headDim` dimensions (all of them unless partial, as GPT-NeoX's `rotary_pct` makes it). Returns
 * `rope(x)` for `x` `[1, heads, T, headDim]` at the positions `pos.query`.
 *
 * `x·cos + rotate_half(x)·sin`, where rotate_half([a, b]) = [-b, a] (within the rotary dimensions) is a product
 * with a signed permutation matrix: one MatMul (exact: each output sums one nonzero term) instead of Split, Neg
 * and Concat. Dimensions past `rotaryDim` pass through: their cos is 1, their sin and their column of the
 * matrix 0, so partial rotary costs nothing extra.
 *
 * cos(tθ) and sin(tθ) come from two small tables computed in float64, as the references are, by the angle-sum
 * identities with t = B·a + b: cos(tθ) = cos(Baθ)cos(bθ) − sin(Baθ)sin(bθ). Tables of every position would be
 * large (gemma-3-270m: 32768 positions × 256 dimensions × 2 bases × cos, sin = 134 MB); these are
 * 2·√positions rows, and a float32 product of float64-exact factors is as accurate at position 30000 as at 3.
 */
export function rotaryEmbedding(
  g: GraphBuilder,
  pos: Positions,
  {
    maxPositions,
    headDim,
    rotaryDim = headDim,
    base,
    name = "rotary_emb"
  }: {maxPositions: number; headDim: number; rotaryDim?: number; base: number; name?: string}
): (x: string) => string {
  const D = headDim;
  const half = rotaryDim / 2;
  const B = 2 ** Math.ceil(Math.log2(Math.sqrt(maxPositions)));
  /** cos and sin of `step·t·θ_j` for t = 0 … rows − 1, `[rows, D]`, each angle at j and at j + half. */
  const table = (rows: number, step: number) =>
    rotaryTable({rows, step, width: D, rotary: rotaryDim, base, mirrored: true});
  const coarseRows = Math.ceil(maxPositions / B);
  const coarse = table(coarseRows, B);
  const fine = table(B, 1);
  const blockSize = g.constant([B], [], INT64);
  const at = (data: Float32Array, rows: number, label: string, index: string) =>
    g.op("Gather", [g.weight(`${name}.${label}`, data, [rows, D]), index], {axis: 0});
  const a = g.op("Div", [pos.query, blockSize]);
  const b = g.op("Mod", [pos.query, blockSize]);
  const [ca, sa] = [at(coarse.cos, coarseRows, "cos_coarse", a), at(coarse.sin, coarseRows, "sin_coarse", a)];
  const [cb, sb] = [at(fine.cos, B, "cos_fine", b), at(fine.sin, B, "sin_fine", b)];
  const cosAt = g.op("Sub", [g.op("Mul", [ca, cb]), g.op("Mul", [sa, sb])]);
  const sinAt = g.op("Add", [g.op("Mul", [sa, cb]), g.op("Mul", [ca, sb])]);
  // R with `x·R = rotate_half(x)`: column j < r/2 takes -x[j + r/2], column r/2 ≤ j < r takes x[j - r/2].
  const R = new Float32Array(D * D);
  for (let j = 0; j < half; j++) {
    R[(j + half) * D + j] = -1;
    R[j * D + (j + half)] = 1;
  }
  const rotateHalf = g.weight(`${name}.rotate_half`, R, [D, D]);
  return (x) => g.op("Add", [g.op("Mul", [x, cosAt]), g.op("Mul", [g.op("MatMul", [x, rotateHalf]), sinAt])]);
}

/**
 * cos and sin of `step·t·θ_j`, θ_j = base^(−2j/rotary), for t < `rows` and j < rotary/2, in rows of `width`:
 * the one rotary table both graphs read (the traced graph's coarse and fine tables, `mirrored` at j + rotary/2
 * as "rotate half" pairs them; the lean graph's GroupQueryAttention tables, half a padded head wide). Computed in
 * float64 and rounded once, as the references compute them; every other entry is cos 1, sin 0 (dimensions that do
 * not rotate, padding).
 */
export function rotaryTable({
  rows,
  step = 1,
  width,
  rotary,
  base,
  mirrored = false
}: {
  rows: number;
  step?: number;
  width: number;
  rotary: number;
  base: number;
  mirrored?: boolean;
}): {cos: Float32Array; sin: Float32Array} {
  const half = rotary / 2;
  const cos = new Float32Array(rows * width).fill(1);
  const sin = new Float32Array(rows * width);
  // θ_j kept as its inverse so that each angle is the one division step·t / base^(2j/R).
  const wavelengths = Array.from({length: half}, (_, j) => Math.pow(base, (2 * j) / rotary));
  for (let t = 0; t < rows; t++) {
    for (let j = 0; j < half; j++) {
      const angle = (step * t) / wavelengths[j];
      cos[t * width + j] = Math.cos(angle);
      sin[t * width + j] = Math.sin(angle);
      if (mirrored)
        ((cos[t * width + j + half] = cos[t * width + j]), (sin[t * width + j + half] = sin[t * width + j]));
    }
  }
  return {cos, sin};
}

/**
 * The attention of every family's traced graph, from the new tokens' heads on: the key/value cache's append (and its
 * `present.*` outputs), eager attention whose weights are the hook point `names.weights`, and the heads merged
 * back, `[1, T, heads·D]`, as the hook point `names.merged` (the output projection's input).
 */
export function cachedAttention(
  g: GraphBuilder,
  hook: Hook,
  {query, key, value}: {query: string; key: string; value: string},
  layer: number,
  mask: string,
  shape: {heads: number; kvHeads: number; headDim: number; scale?: number},
  names: {weights: string; merged: string}
): string {
  const cache = cacheNames(layer);
  const keys = g.output(cache.presentKey, appendCache(g, cache.pastKey, key, cache.presentKey));
  const values = g.output(cache.presentValue, appendCache(g, cache.pastValue, value, cache.presentValue));
  const {weights, context} = attention(g, query, keys, values, mask, shape, names.weights);
  hook(names.weights, weights); // named by its path already: exposed without a copy
  return hook(names.merged, mergeHeads(g, context, shape.heads * shape.headDim));
}

/** Gemma's soft-capping: `tanh(x / cap) · cap`. */
export function softcap(g: GraphBuilder, x: string, cap: number): string {
  return g.op("Mul", [g.op("Tanh", [g.op("Div", [x, g.scalar(cap)])]), g.scalar(cap)]);
}

/**
 * A graph's parameters by name: `w(name)` as stored, `wT(name)` a Linear weight transposed once, at load, from
 * PyTorch's `[out, in]` to `[in, out]` for `x · W`, `wMap(name, f)` with its values changed first (Gemma's
 * `1 + w`). `weight(name)` hands each checkpoint tensor over once; `shapeOf` gives its shape.
 */
export function bindWeights(
  g: GraphBuilder,
  weight: (name: string) => Float32Array,
  shapeOf: (name: string) => number[]
) {
  // Functions, not values: a graph over a model's shared weight inputs reads (and transposes) a weight only if
  // no earlier graph of the model has.
  return {
    w: (name: string) => g.weight(name, () => weight(name), shapeOf(name)),
    wT: (name: string) => {
      const [rows, cols] = shapeOf(name);
      return g.weight(name, () => transpose(weight(name), rows, cols), [cols, rows]);
    },
    wMap: (name: string, f: (data: Float32Array) => Float32Array) =>
      g.weight(name, () => f(weight(name)), shapeOf(name))
  };
}

/** `[rows, cols]` → `[cols, rows]`, in 32×32 tiles so that reads and writes both stay in cache. */
export function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(m.length);
  const B = 32;
  for (let r0 = 0; r0 < rows; r0 += B) {
    const r1 = Math.min(r0 + B, rows);
    for (let c0 = 0; c0 < cols; c0 += B) {
      const c1 = Math.min(c0 + B, cols);
      for (let r = r0; r < r1; r++) {
        const row = r * cols;
        for (let c = c0; c < c1; c++) out[c * rows + r] = m[row + c];
      }
    }
  }
  return out;
}
