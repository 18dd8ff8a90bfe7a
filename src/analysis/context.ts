/**
 * Context: how a token's activations depend on the tokens around it.
 *
 * - The autoregressive check: run two prompts that share a prefix and compare one hook point position by
 *   position. Positions inside the shared prefix come out bit-identical (a token only sees the tokens before
 *   it); from the first differing token on, they change.
 * - One word in several sentences: the cosine similarity of its residual-stream vector, layer by layer.
 */
import type {LanguageModel} from "../runtime/language-model.js";
import type {Tensor} from "../runtime/tensor.js";
import {residualHooks} from "./hooks.js";
import {bitIdentical, cosineSimilarity, row} from "./index.js";

/** How many leading token ids two inputs share. */
export function sharedPrefixLength(a: readonly number[], b: readonly number[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

export interface PositionCheck {
  position: number;
  /** The tokens at this position in the two prompts. */
  tokenA: string;
  tokenB: string;
  /** Whether every position up to and including this one holds the same token in both prompts. */
  inSharedPrefix: boolean;
  /** Whether the two activation vectors at this position are the same numbers, bit for bit. */
  identical: boolean;
  /** The largest absolute difference between them. */
  maxAbsDiff: number;
}

export interface AutoregressiveCheck {
  sharedPrefix: number;
  positions: PositionCheck[];
  /** True when the prefix positions are all bit-identical and none after it is. */
  holds: boolean;
}

/**
 * Compares one hook point (shape [1, T, d]) of two runs, position by position, over the positions both have.
 * `a` and `b` carry the input ids and tokens of their run (a trace does).
 */
export function autoregressiveCheck(
  a: {tensor: Tensor; input_ids: number[]; tokens: string[]},
  b: {tensor: Tensor; input_ids: number[]; tokens: string[]}
): AutoregressiveCheck {
  const sharedPrefix = sharedPrefixLength(a.input_ids, b.input_ids);
  const length = Math.min(a.tensor.shape[1], b.tensor.shape[1]);
  const positions: PositionCheck[] = [];
  for (let t = 0; t < length; t++) {
    const u = row(a.tensor, 0, t);
    const v = row(b.tensor, 0, t);
    let maxAbsDiff = 0;
    for (let i = 0; i < u.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(u[i] - v[i]));
    positions.push({
      position: t,
      tokenA: a.tokens[t],
      tokenB: b.tokens[t],
      inSharedPrefix: t < sharedPrefix,
      identical: bitIdentical(u, v),
      maxAbsDiff
    });
  }
  const holds = positions.every((p) => p.identical === p.inSharedPrefix);
  return {sharedPrefix, positions, holds};
}

export interface WordPosition {
  /** The first and one-past-last token of the word. */
  start: number;
  end: number;
  /** The token whose activations have seen the whole word: its last token. */
  position: number;
}

/**
 * Where a word sits in a tokenized sentence, from the tokens' text `pieces` (whitespace kept, as
 * `tokenizer.encode` gives them). Matches whole words, case-sensitively first and then ignoring case;
 * `occurrence` picks among repeats (0: the first). Undefined when the word is not there.
 */
export function findWordPosition(pieces: readonly string[], word: string, occurrence = 0): WordPosition | undefined {
  const target = word.trim();
  if (!target) return undefined;
  const starts: number[] = [];
  let text = "";
  for (const piece of pieces) {
    starts.push(text.length);
    text += piece;
  }
  const escaped = target.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  for (const flags of ["gu", "giu"]) {
    const matches = [...text.matchAll(new RegExp(`(?<![\\p{L}\\p{N}])${escaped}(?![\\p{L}\\p{N}])`, flags))];
    const match = matches[occurrence];
    if (!match) continue;
    const from = match.index!;
    const to = from + target.length;
    let start = -1,
      end = -1;
    for (let i = 0; i < pieces.length; i++) {
      const s = starts[i],
        e = s + pieces[i].length;
      if (e > from && s < to) {
        if (start < 0) start = i;
        end = i + 1;
      }
    }
    if (start >= 0) return {start, end, position: end - 1};
  }
  return undefined;
}

/** One token's vector from each of several hook points ([1, T, d] each): the word's path through the layers. */
export function vectorsAt(tensors: readonly Tensor[], position: number): Float32Array[] {
  return tensors.map((t) => row(t, 0, position));
}

/** The cosine similarity of two paths through the layers, layer by layer. */
export function similarityByLayer(a: readonly ArrayLike<number>[], b: readonly ArrayLike<number>[]): number[] {
  if (a.length !== b.length) throw new Error(`${a.length} layers against ${b.length}`);
  return a.map((v, i) => cosineSimilarity(v, b[i]));
}

export interface SimilarityPoint {
  /** "1 ↔ 2": the pair of contexts compared. */
  pair: string;
  a: string;
  b: string;
  layer: number;
  similarity: number;
}

/**
 * Every pair of contexts, compared layer by layer: the rows a line chart draws (one line per pair).
 * `contexts` holds a label and the word's vector at each layer.
 */
export function pairwiseSimilarity(
  contexts: readonly {label: string; vectors: readonly ArrayLike<number>[]}[]
): SimilarityPoint[] {
  const points: SimilarityPoint[] = [];
  for (let i = 0; i < contexts.length; i++) {
    for (let j = i + 1; j < contexts.length; j++) {
      const a = contexts[i],
        b = contexts[j];
      similarityByLayer(a.vectors, b.vectors).forEach((similarity, layer) =>
        points.push({pair: `${a.label} ↔ ${b.label}`, a: a.label, b: b.label, layer, similarity})
      );
    }
  }
  return points;
}

/** Page 4's defaults: the lecture's three "break" sentences, the check's two prompts, the exercise. */
export const CONTEXT_DEFAULTS = {
  word: "break",
  sentences: [
    "The package is very fragile - it will break easily",
    "If you throw the ball at the window you might break it",
    "This relationship is hard and I think we should break up"
  ],
  /** The lecture's prompts: the same start, the last word differs: "Paris" and all before it must not change. */
  checkA: "The city Paris is in France",
  checkB: "The city Paris is in London",
  /** A word changed *before* "Paris": now "Paris" itself changes. */
  checkC: "The beautiful Paris is in France",
  /** The word whose vector the lecture prints (its first numbers). */
  checkWord: "Paris",
  exercise: "I worked all day so I need a break now",
  exerciseWord: "break",
  layer: 10
};

export interface ContextTrace {
  sentence: string;
  input_ids: number[];
  tokens: string[];
  /** Display pieces (" break"). */
  pieces: string[];
  /** The residual stream after each layer, [1, T, hidden] each, first layer first. */
  layers: Tensor[];
}

/** One forward pass over `sentence` fetching the residual stream after every layer. */
export async function contextTrace(model: LanguageModel, sentence: string): Promise<ContextTrace> {
  const hooks = residualHooks(model.config);
  const trace = await model.trace(sentence, hooks);
  return {
    sentence,
    input_ids: trace.input_ids,
    tokens: trace.tokens,
    pieces: await model.pieces(trace.input_ids),
    layers: hooks.map((h) => trace[h]!)
  };
}

/** The autoregressive check on two context traces at one layer. */
export function checkAtLayer(a: ContextTrace, b: ContextTrace, layer: number): AutoregressiveCheck {
  return autoregressiveCheck(
    {tensor: a.layers[layer]!, input_ids: a.input_ids, tokens: a.pieces},
    {tensor: b.layers[layer]!, input_ids: b.input_ids, tokens: b.pieces}
  );
}

/** Where `word` is in a traced sentence (its last token), or an error saying it is not there. */
export function wordIn(trace: ContextTrace, word: string): WordPosition {
  const found = findWordPosition(trace.pieces, word);
  if (!found) throw new Error(`“${word}” is not a word of “${trace.sentence}”`);
  return found;
}

/** The similarity of `word` across every layer, for every pair of the traced sentences (labelled 1, 2, 3 …). */
export function wordSimilarity(traces: readonly ContextTrace[], word: string): SimilarityPoint[] {
  return pairwiseSimilarity(
    traces.map((t, i) => ({label: String(i + 1), vectors: vectorsAt(t.layers, wordIn(t, word).position)}))
  );
}

/**
 * The exercise: the token at `position` of the reader's sentence against `word` in each lecture sentence,
 * layer by layer (pairs labelled "yours ↔ 1", …).
 */
export function exerciseSimilarity(
  yours: ContextTrace,
  position: number,
  traces: readonly ContextTrace[],
  word: string
): SimilarityPoint[] {
  const mine = vectorsAt(yours.layers, position);
  return traces.flatMap((t, i) =>
    similarityByLayer(mine, vectorsAt(t.layers, wordIn(t, word).position)).map((similarity, layer) => ({
      pair: `yours ↔ ${i + 1}`,
      a: "yours",
      b: String(i + 1),
      layer,
      similarity
    }))
  );
}

/** Exercise 3's target: a sense of "break" whose similarity to the lecture's three lies in this band. */
export const EXERCISE_BAND: readonly [number, number] = [0.7, 0.8];

export interface BandCheck {
  layer: number;
  band: readonly [number, number];
  /** The similarity to each lecture sentence at `layer`. */
  similarities: {sentence: string; similarity: number}[];
  /** Every one of them inside the band. */
  lands: boolean;
}

/** Whether the reader's token lands in the band at `layer`: its similarity to every lecture sentence inside it. */
export function bandCheck(
  points: readonly SimilarityPoint[],
  layer: number,
  band: readonly [number, number] = EXERCISE_BAND
): BandCheck {
  const similarities = points.filter((p) => p.layer === layer).map((p) => ({sentence: p.b, similarity: p.similarity}));
  const lands =
    similarities.length > 0 && similarities.every(({similarity}) => similarity >= band[0] && similarity <= band[1]);
  return {layer, band, similarities, lands};
}

/** The first `n` numbers of `word`'s residual-stream vector after `layer` (its last piece), as the lecture prints them. */
export function wordVectorHead(
  trace: ContextTrace,
  word: string,
  layer: number,
  n = 20
): {position: number; values: number[]} {
  const {position} = wordIn(trace, word);
  return {position, values: Array.from(vectorsAt([trace.layers[layer]!], position)[0]!.subarray(0, n))};
}
