/**
 * The lean decode graph: what generation needs and nothing else. No hook points, so onnxruntime's fused contrib
 * ops can take whole sublayers in one kernel each (on WebGPU a kernel is a dispatch, and at one token a step
 * the dispatches, not the arithmetic, are the time):
 *
 *   RMSNorm + residual add      SimplifiedLayerNormalization / com.microsoft.SkipSimplifiedLayerNormalization
 *   LayerNorm + residual add    LayerNormalization / com.microsoft.SkipLayerNormalization
 *   q, k, v projections         one MatMul over the three weights side by side
 *   rotary, cache, attention    com.microsoft.GroupQueryAttention (split, rotary and the cache's append in one
 *                               kernel when the cache is written in place, then attention: three at one token)
 *   gelu_new / gelu_pytorch_tanh  com.microsoft.FastGelu (with the projection's bias)
 *   SiLU                        com.microsoft.QuickGelu with alpha 1 (x · sigmoid(x))
 *   the next token              ArgMax on the GPU: one id (8 bytes) comes back per step, not the logits
 *
 * Inputs: `input_ids` int64 `[1, T]`; per layer the past keys and values `[1, kvHeads, P, headDim]` (heads
 * padded to 16k dimensions: `paddedHead`), which come back as `present.*` — the same buffer, written in place,
 * when the caller binds it as both and it has room (runtime/decode.ts); `seqlens_k`
 * int32 `[1]` = total length − 1 and `total_sequence_length` int32 scalar, which is how GroupQueryAttention
 * learns the positions — nothing is read off shapes, so no node runs on the CPU.
 * Outputs: `next_token` int64 `[1]` (greedy), `lm_head.output` `[1, V]` (the last position's logits, for
 * sampling: fetched only when asked) and the caches.
 *
 * The traced graph (`buildGraph`) stays as it is: every hook point, eager attention whose weights can be looked
 * at. Both must give the same tokens; test/lean-decode.test.ts holds them to the references.
 */
import {type EncodedModel, GraphBuilder, FLOAT, INT32, INT64} from "./onnx.js";
import {layerNorm, rotaryTable, transpose} from "./layers.js";
import {cacheNames, LOGITS} from "./names.js";

/** The lean graph's own input and output names. */
export const DECODE = {
  seqlensK: "seqlens_k",
  totalLength: "total_sequence_length",
  /** Learned position embeddings (GPT-2) need the new tokens' positions: int64 `[1, T]`. */
  positions: "position_ids",
  nextToken: "next_token"
} as const;

export interface DecodeShape {
  layers: number;
  kvHeads: number;
  headDim: number;
}

/** `input_ids` and the caches (heads padded: `paddedHead`), with the two lengths GroupQueryAttention takes. */
export function decodeInputs(g: GraphBuilder, {layers, kvHeads, headDim}: DecodeShape) {
  const ids = g.input("input_ids", INT64, [1, "T"]);
  const P = paddedHead(headDim).P;
  for (let i = 0; i < layers; i++) {
    g.input(cacheNames(i).pastKey, FLOAT, [1, kvHeads, "P", P]);
    g.input(cacheNames(i).pastValue, FLOAT, [1, kvHeads, "P", P]);
  }
  const seqlensK = g.input(DECODE.seqlensK, INT32, [1]);
  const totalLength = g.input(DECODE.totalLength, INT32, []);
  return {ids, seqlensK, totalLength};
}

/** RMSNorm in one kernel (onnxruntime's SimplifiedLayerNormalization, in the ONNX domain). */
export function fusedRmsNorm(g: GraphBuilder, x: string, weight: string, eps: number): string {
  return g.op("SimplifiedLayerNormalization", [x, weight], {axis: -1, epsilon: eps});
}

/**
 * q and k normed per head before the rotary (Qwen3's and Gemma 3's q_norm, k_norm): the packed `[1, T, (H + 2·KV)·D]`
 * split into q, k and v, q and k put through RMSNorm over each head's D dimensions, the three as
 * GroupQueryAttention takes them apart. For heads that are not padded (D a multiple of 16): padding would enter
 * the norm's mean.
 */
export function normedHeads(
  g: GraphBuilder,
  qkv: string,
  {heads, kvHeads, headDim: D, eps}: {heads: number; kvHeads: number; headDim: number; eps: number},
  norms: {query: string; key: string}
): {query: string; key: string; value: string} {
  if (D % 16 !== 0) throw new Error(`normedHeads: heads of ${D} dimensions would be padded`);
  const [query, key, value] = g.opN("Split", [qkv, g.ints([heads * D, kvHeads * D, kvHeads * D])], 3, {axis: -1});
  const perHead = (x: string, n: number, weight: string) =>
    g.op("Reshape", [
      fusedRmsNorm(g, g.op("Reshape", [x, g.ints([1, -1, n, D])]), weight, eps),
      g.ints([1, -1, n * D])
    ]);
  return {query: perHead(query, heads, norms.query), key: perHead(key, kvHeads, norms.key), value};
}

/**
 * `h + x (+ bias)` and its norm in one kernel: returns the norm and the sum (the residual stream that goes on).
 * RMSNorm (no `beta`: SkipSimplifiedLayerNormalization) or LayerNorm (SkipLayerNormalization, which also adds
 * `bias`, the projection's that made `x`, saving its own kernel).
 */
export function skipNorm(
  g: GraphBuilder,
  h: string,
  x: string,
  weight: string,
  eps: number,
  {beta, bias}: {beta?: string; bias?: string} = {}
): {normed: string; sum: string} {
  if (beta === undefined && bias !== undefined)
    throw new Error("skipNorm: a projection bias is added only with LayerNorm");
  const op = beta === undefined ? "SkipSimplifiedLayerNormalization" : "SkipLayerNormalization";
  const inputs = beta === undefined ? [h, x, weight] : [h, x, weight, beta, ...(bias ? [bias] : [])];
  // Outputs: the norm, mean and inverse std (unused: left unnamed), and the sum.
  const [normed, , , sum] = g.opN(`com.microsoft.${op}`, inputs, 4, {epsilon: eps}, [
    g.name(op),
    "",
    "",
    g.name(`${op}.sum`)
  ]);
  return {normed, sum};
}

/**
 * The residual stream `h` of a lean graph: a sublayer's output (and, with LayerNorm, its projection's bias) waits
 * in `add` until the next norm, which adds it in its own kernel and carries the sum on.
 */
export function residualStream(g: GraphBuilder, h: string, eps: number) {
  let pending: {x: string; bias?: string} | undefined;
  return {
    add(x: string, bias?: string): void {
      pending = {x, bias};
    },
    /** The stream itself, with nothing waiting (GPT-NeoX's parallel MLP norms it beside the attention's norm). */
    get current(): string {
      if (pending !== undefined) throw new Error("residualStream: a sublayer's output is still waiting to be added");
      return h;
    },
    /** The stream's norm (RMSNorm; LayerNorm given `beta`), after adding what waits. */
    norm(weight: string, beta?: string): string {
      if (pending === undefined)
        return beta === undefined ? fusedRmsNorm(g, h, weight, eps) : layerNorm(g, h, weight, beta, eps);
      const {normed, sum} = skipNorm(g, h, pending.x, weight, eps, {beta, bias: pending.bias});
      h = sum;
      pending = undefined;
      return normed;
    }
  };
}

/**
 * GroupQueryAttention's WebGPU kernels take heads of a multiple of 16 dimensions. A smaller head (stories260K's 8)
 * is padded with zero dimensions, which change nothing: zeros add nothing to q·k, the scale stays 1/√D (an
 * attribute), and the padded columns of the context meet zero rows of o_proj. The rotary pairs dimension j with
 * j + R/2 (R = `rotary` of the D dimensions, all of them but in GPT-NeoX); padded, the pair is j and j + P/2, so
 * the second half of the rotated dimensions moves up, and the dimensions that do not rotate take the slots left,
 * where the rotary tables say cos 1, sin 0. q and k are permuted alike, so q·k is unchanged: `slot(j)` says where
 * dimension j of a head goes.
 */
export function paddedHead(D: number, rotary = D): {P: number; slot: (j: number) => number} {
  const P = Math.ceil(D / 16) * 16;
  const [r, half] = [rotary / 2, P / 2];
  return {
    P,
    slot: (j) => {
      if (j < r) return j;
      if (j < 2 * r) return j - r + half;
      const pass = j - 2 * r; // a dimension that does not rotate: the free slots of the first half, then the second's
      return pass < half - r ? r + pass : half + r + (pass - (half - r));
    }
  };
}

/** `[rows, heads·D]` → `[rows, heads·P]`: each head's columns in their padded slots, zeros elsewhere. */
function padHeadColumns(m: Float32Array, rows: number, heads: number, D: number, rotary = D): Float32Array {
  const {P, slot} = paddedHead(D, rotary);
  if (P === D && rotary === D) return m;
  const out = new Float32Array(rows * heads * P);
  for (let r = 0; r < rows; r++)
    for (let h = 0; h < heads; h++)
      for (let j = 0; j < D; j++) out[r * heads * P + h * P + slot(j)] = m[r * heads * D + h * D + j];
  return out;
}

/**
 * q, k and v side by side, `[rows, (H + 2·KV)·P]`, for one MatMul (and their biases, `rows` 1): each part is
 * `[rows, heads·D]` (a Linear's weight transposed to `[in, out]`, a third of GPT-2's c_attn, GPT-NeoX's regrouped
 * heads) and each head goes to its padded slots (`paddedHead`). The one packing every family's lean graph uses.
 */
export function packHeads(
  parts: {data: Float32Array; heads: number}[],
  rows: number,
  D: number,
  rotary = D
): Float32Array {
  const P = paddedHead(D, rotary).P;
  return concatColumns(
    parts.map(({data, heads}) => ({data: padHeadColumns(data, rows, heads, D, rotary), rows, cols: heads * P}))
  );
}

/** A packed q/k/v projection (`packHeads`): `x · W (+ b)`, W `[d, width]`, under the name `name.weight`/`.bias`. */
export function packedProjection(
  g: GraphBuilder,
  x: string,
  name: string,
  {weight, bias, rows}: {weight: Float32Array; bias?: Float32Array; rows: number}
): string {
  const width = weight.length / rows;
  const y = g.op("MatMul", [x, g.weight(`${name}.weight`, weight, [rows, width])]);
  return bias ? g.op("Add", [y, g.weight(`${name}.bias`, bias, [width])]) : y;
}

/** `[heads·D, cols]` → `[heads·P, cols]`: the rows that meet the padded context (o_proj's weight, transposed). */
export function padHeadRows(m: Float32Array, heads: number, D: number, cols: number, rotary = D): Float32Array {
  const {P, slot} = paddedHead(D, rotary);
  if (P === D && rotary === D) return m;
  const out = new Float32Array(heads * P * cols);
  for (let h = 0; h < heads; h++)
    for (let j = 0; j < D; j++)
      out.set(m.subarray((h * D + j) * cols, (h * D + j + 1) * cols), (h * P + slot(j)) * cols);
  return out;
}

/**
 * cos and sin of `t·θ_j` for every position t < `positions` and j < rotary/2, `[positions, P/2]` (P the padded
 * head, `rotary` the dimensions that rotate): GroupQueryAttention's rotary tables. Computed in float64 and
 * rounded once, as the references compute them. Every other entry is cos 1, sin 0: padding, and GPT-NeoX's
 * dimensions that pass through.
 */
export function rotaryTables(
  g: GraphBuilder,
  {
    positions,
    headDim,
    rotary = headDim,
    base,
    name = "rotary_emb"
  }: {positions: number; headDim: number; rotary?: number; base: number; name?: string}
): {cos: string; sin: string} {
  const half = paddedHead(headDim, rotary).P / 2;
  const {cos, sin} = rotaryTable({rows: positions, width: half, rotary, base});
  return {
    cos: g.weight(`${name}.cos_cache`, cos, [positions, half]),
    sin: g.weight(`${name}.sin_cache`, sin, [positions, half])
  };
}

/**
 * Whether GroupQueryAttention's `local_window_size` (a sliding window) is applied where the lean graph will run:
 * only by onnxruntime's native WebGPU provider (`cacheInPlace`), captured or not. The JSEP build's GroupQueryAttention
 * ignores it (every key is seen: onnxruntime-web 1.30 and 1.31.1, found with mini-gemma3's sliding layers,
 * test/lean-decode.test.ts). Where this is false, a model with sliding windows must not decode on a windowed lean
 * graph. (The native provider under graph capture got it wrong too in 1.30: mini-gemma3's replayed tokens differed
 * from the reference's; right since 1.31.1.)
 */
export function localWindowHonoured({cacheInPlace}: {cacheInPlace: boolean}): boolean {
  return cacheInPlace;
}

/**
 * Attention with the key/value cache in one contrib op: `qkv` is `[1, T, (H + 2·KV)·P]` (queries, keys, values
 * side by side, as one MatMul makes them; heads padded to P: `paddedHead`), rotated inside when `rotary` is
 * given; or the three apart (Qwen3 norms q and k per head first). The cache inputs and outputs of layer `i` are
 * the graph's. Returns the per-token context `[1, T, H·P]`, ready for o_proj (its rows padded likewise).
 */
export function groupQueryAttention(
  g: GraphBuilder,
  qkv: string | {query: string; key: string; value: string},
  layer: number,
  lengths: {seqlensK: string; totalLength: string},
  {
    heads,
    kvHeads,
    headDim,
    scale = 1 / Math.sqrt(headDim),
    rotary,
    localWindow
  }: {
    heads: number;
    kvHeads: number;
    headDim: number;
    scale?: number;
    rotary?: {cos: string; sin: string};
    /** A sliding window: how many keys a token sees, its own among them (as the WebGPU provider counts). */
    localWindow?: number;
  }
): string {
  const names = cacheNames(layer);
  const qkvInputs = typeof qkv === "string" ? [qkv, "", ""] : [qkv.query, qkv.key, qkv.value];
  const inputs = [...qkvInputs, names.pastKey, names.pastValue, lengths.seqlensK, lengths.totalLength];
  if (rotary) inputs.push(rotary.cos, rotary.sin);
  const [context] = g.opN(
    "com.microsoft.GroupQueryAttention",
    inputs,
    3,
    {
      num_heads: heads,
      kv_num_heads: kvHeads,
      scale,
      do_rotary: rotary ? 1 : 0,
      ...(localWindow === undefined ? {} : {local_window_size: localWindow})
    },
    [g.name("GroupQueryAttention"), names.presentKey, names.presentValue]
  );
  g.output(names.presentKey, names.presentKey);
  g.output(names.presentValue, names.presentValue);
  return context;
}

/**
 * Matrices of the same rows side by side, `[rows, Σ cols]`: the q, k and v projections' `[in, out]` weights as one,
 * for one MatMul instead of three (and their biases, as one-row matrices).
 */
function concatColumns(mats: {data: Float32Array; rows: number; cols: number}[]): Float32Array {
  const rows = mats[0].rows;
  const width = mats.reduce((s, m) => s + m.cols, 0);
  const out = new Float32Array(rows * width);
  let offset = 0;
  for (const m of mats) {
    for (let r = 0; r < rows; r++) out.set(m.data.subarray(r * m.cols, (r + 1) * m.cols), r * width + offset);
    offset += m.cols;
  }
  return out;
}

/**
 * The last position's hidden state `[1, T, d]` → `[1, 1, d]`: the only one whose logits generation needs (the
 * prompt's step would otherwise unembed every position).
 */
export function lastPosition(g: GraphBuilder, x: string): string {
  return g.op("Slice", [x, g.ints([-1]), g.ints([2 ** 31 - 1]), g.ints([1])]);
}

/**
 * The last position's logits, `[1, V]`, from its hidden state `[1, 1, d]` and the unembedding's `[V, d]` weight
 * (tied or not): one Gemm, its output left in the shape it has. A graph output that a Reshape makes is a copy, and a
 * captured graph replays kernels, not copies (runtime/decode.ts): the logits and the ArgMax that reads them must
 * come out of kernels.
 */
export function headLogits(g: GraphBuilder, final: string, head: string, d: number): string {
  return g.op("Gemm", [g.op("Reshape", [final, g.ints([-1, d])]), head], {transB: 1});
}

/**
 * The last position's logits `[1, V]` (`lm_head.output`, made by a kernel: `headLogits`) and the greedy choice
 * (`next_token`, int64 `[1]`) as graph outputs.
 */
export function nextToken(g: GraphBuilder, logits: string): void {
  const exposed = g.output(LOGITS, logits);
  // Over the [1, V] logits, not a 1-d view: JSEP's ArgMax emits a shader that does not compile for a 1-d input.
  g.output(DECODE.nextToken, g.op("ArgMax", [exposed], {axis: 1, keepdims: 0}), INT64, [1]);
}

/**
 * The end of every lean graph: from the final norm's output `[1, T, d]`, the last position's logits through the
 * unembedding's `[V, d]` weight (`headLogits`; soft-capped by `cap` where the family caps them) and the greedy next
 * token (`nextToken`).
 */
export function decodeHead(
  g: GraphBuilder,
  normed: string,
  head: string,
  d: number,
  cap: (logits: string) => string = (x) => x
): void {
  nextToken(g, cap(headLogits(g, lastPosition(g, normed), head, d)));
}

/** The candidates graph's names (`buildCandidatesGraph`). */
export const CANDIDATES = {
  /** How many candidates: int64 `[1]`. */
  k: "k",
  temperature: "temperature",
  /** `[1 + 2k]`: log Σ exp(logits / temperature), then the k largest logits, then their token ids (as floats). */
  output: "candidates"
} as const;

/**
 * What sampling needs from a step's logits, computed where they are (on the GPU), so that `4 (1 + 2k)` bytes come
 * back instead of the whole vocabulary's: the `k` most likely tokens (TopK on the raw logits: largest first, ties
 * lower id first, the order sampling sorts by) and the log of softmax's denominator at the temperature, which
 * turns each candidate's logit into its probability under the whole distribution (what top-p adds up). A graph of
 * its own, without weights, run on the lean step's logits where they lie: the greedy step keeps its one ArgMax.
 * The ids go as floats, exact below 2^24 (vocabularies are far smaller), so that all of it is one tensor and one
 * readback; nothing of it runs on the CPU.
 */
export function buildCandidatesGraph(vocabSize: number): EncodedModel {
  const g = new GraphBuilder();
  const logits = g.op("Reshape", [g.input(LOGITS, FLOAT, [1, vocabSize]), g.ints([vocabSize])]);
  const [values, ids] = g.opN("TopK", [logits, g.input(CANDIDATES.k, INT64, [1])], 2, {
    axis: 0,
    largest: 1,
    sorted: 1
  });
  const scaled = g.op("Div", [logits, g.input(CANDIDATES.temperature, FLOAT, [])]);
  const logSumExp = g.op("ReduceLogSumExp", [scaled], {axes: [0], keepdims: 1});
  // The ids as floats by looking them up in 0, 1, …, V − 1: a Cast from int64 would run on the CPU provider.
  const iota = g.constant(
    Float32Array.from({length: vocabSize}, (_, i) => i),
    [vocabSize],
    FLOAT,
    "token_ids"
  );
  const joined = g.op("Concat", [logSumExp, values, g.op("Gather", [iota, ids], {axis: 0})], {axis: 0});
  g.output(CANDIDATES.output, joined, FLOAT, ["C"]);
  return g.build("candidates");
}
