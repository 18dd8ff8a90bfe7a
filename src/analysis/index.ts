/**
 * The arithmetic the lecture does on tensors: softmax, top-k, cosine similarity, slicing one token's vector,
 * and parameter counts by component. Plain functions over Float32Arrays, cheap enough to run on every
 * slider move.
 */
import type {Parameter} from "../arch/types.js";
import type {Tensor} from "../runtime/tensor.js";

/** Softmax of a vector, computed in float64 for stability. */
export function softmax(logits: ArrayLike<number>, temperature = 1): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i] / temperature);
  const out = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += out[i] = Math.exp(logits[i] / temperature - max);
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

/** The indices of the k largest values, largest first (ties: lower index first). */
export function topK(values: ArrayLike<number>, k: number): number[] {
  const best: number[] = []; // indices, kept sorted by value, largest first
  for (let i = 0; i < values.length; i++) {
    if (best.length === k) {
      if (!(values[i] > values[best[k - 1]])) continue;
      best.pop();
    }
    let j = best.length;
    while (j > 0 && values[best[j - 1]] < values[i]) j--;
    best.splice(j, 0, i);
  }
  return best;
}

export function argmax(values: ArrayLike<number>): number {
  return topK(values, 1)[0];
}

export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`cosine similarity of vectors of lengths ${a.length} and ${b.length}`);
  let dot = 0,
    na = 0,
    nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / Math.sqrt(na * nb);
}

/** The last axis at the given leading indices: `row(t, 0, 5)` of `[1, T, d]` is token 5's vector. */
export function row(t: Tensor, ...index: number[]): Float32Array {
  if (index.length !== t.shape.length - 1)
    throw new Error(`row of a ${t.shape.length}-d tensor takes ${t.shape.length - 1} indices`);
  let offset = 0;
  index.forEach((i, axis) => {
    if (!(i >= 0 && i < t.shape[axis]))
      throw new RangeError(`index ${i} is out of range for axis ${axis} of size ${t.shape[axis]}`);
    offset = offset * t.shape[axis] + i;
  });
  const width = t.shape[t.shape.length - 1];
  return t.data.subarray(offset * width, (offset + 1) * width);
}

/** A `[rows, cols]` matrix at the given leading indices: `matrix(attn, 0, head)` of `[1, H, T, T]`. */
export function matrix(t: Tensor, ...index: number[]): {rows: number; cols: number; data: Float32Array} {
  const rows = t.shape[t.shape.length - 2];
  const cols = t.shape[t.shape.length - 1];
  let offset = 0;
  index.forEach((i, axis) => {
    if (!(i >= 0 && i < t.shape[axis]))
      throw new RangeError(`index ${i} is out of range for axis ${axis} of size ${t.shape[axis]}`);
    offset = offset * t.shape[axis] + i;
  });
  return {rows, cols, data: t.data.subarray(offset * rows * cols, (offset + 1) * rows * cols)};
}

export interface ParameterCounts {
  total: number;
  embedding: number;
  attention: number;
  mlp: number;
  norm: number;
  head: number;
  layers: {attention: number; mlp: number; norm: number}[];
}

export function parameterCounts(parameters: Parameter[], numLayers: number): ParameterCounts {
  const counts: ParameterCounts = {
    total: 0,
    embedding: 0,
    attention: 0,
    mlp: 0,
    norm: 0,
    head: 0,
    layers: Array.from({length: numLayers}, () => ({attention: 0, mlp: 0, norm: 0}))
  };
  for (const p of parameters) {
    counts.total += p.numel;
    counts[p.component] += p.numel;
    if (p.layer !== undefined && p.component !== "embedding" && p.component !== "head")
      counts.layers[p.layer][p.component] += p.numel;
  }
  return counts;
}

export interface Stats {
  min: number;
  max: number;
  mean: number;
  std: number;
}

export function stats(data: ArrayLike<number>): Stats {
  let min = Infinity,
    max = -Infinity,
    sum = 0,
    sumSq = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
    sumSq += v * v;
  }
  const mean = sum / data.length;
  return {min, max, mean, std: Math.sqrt(Math.max(0, sumSq / data.length - mean * mean))};
}

/** Whether two arrays hold the very same numbers, bit for bit. */
export function bitIdentical(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}
