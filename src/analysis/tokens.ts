/**
 * Tokens and logits, the lecture's second section, as plain functions shared by the page (live, in the
 * browser) and its data loader (precomputed, in Node): the prompt's tokens with their whitespace made
 * visible, the next-token distribution, its top k and argmax, and what a trailing space changes.
 *
 * `analyseTokens(model, prompt)` runs ONE forward pass (the logits only); everything else slices its result.
 */
import type {LanguageModel} from "../runtime/language-model.js";
import type {Tensor} from "../runtime/tensor.js";
import {argmax, row, softmax, topK} from "./index.js";
import {GENERATION} from "../defaults.js";

/** Whitespace made visible: a space as "·", a newline as "↵", a tab as "→". */
export function visible(text: string): string {
  return text.replace(/ /g, "·").replace(/\n/g, "↵").replace(/\t/g, "→");
}

export interface TokenRow {
  position: number;
  id: number;
  /** The vocabulary string ("ĠParis", "▁Paris"). */
  token: string;
  /** The token decoded alone (" Paris"). */
  piece: string;
  /** The piece with its whitespace visible ("·Paris"). */
  shown: string;
}

/** The tokens of a text, one row each. */
export async function tokenTable(model: Pick<LanguageModel, "tokenize">, text: string): Promise<TokenRow[]> {
  const {ids, tokens, pieces} = await model.tokenize(text);
  return ids.map((id, position) => ({
    position,
    id,
    token: tokens[position]!,
    piece: pieces[position]!,
    shown: visible(pieces[position]!)
  }));
}

/** The next-token probabilities: softmax of the logits at the last position, `[1, T, vocab]` → vocab. */
export function nextTokenDistribution(logits: Tensor, temperature = 1): Float64Array {
  const [, T] = logits.shape;
  return softmax(row(logits, 0, T! - 1), temperature);
}

export interface Candidate {
  rank: number;
  id: number;
  piece: string;
  shown: string;
  logit: number;
  probability: number;
}

/** The k most likely next tokens, most likely first. */
export async function topNext(model: Pick<LanguageModel, "pieces">, logits: Tensor, k = 10): Promise<Candidate[]> {
  const last = row(logits, 0, logits.shape[1]! - 1);
  const probs = softmax(last);
  const ids = topK(last, k);
  const pieces = await model.pieces(ids);
  return ids.map((id, rank) => {
    const piece = pieces[rank]!;
    return {rank: rank + 1, id, piece, shown: visible(piece), logit: last[id]!, probability: probs[id]!};
  });
}

/**
 * The distribution over the whole vocabulary as at most `points` points for a line: the vocabulary cut into
 * equal runs of ids, each drawn at its most likely token (so no peak is lost).
 */
export function distributionLine(probs: ArrayLike<number>, points = 1000): {id: number; probability: number}[] {
  const step = Math.max(1, Math.ceil(probs.length / points));
  const line: {id: number; probability: number}[] = [];
  for (let start = 0; start < probs.length; start += step) {
    let best = start;
    for (let i = start + 1; i < Math.min(start + step, probs.length); i++) if (probs[i]! > probs[best]!) best = i;
    line.push({id: best, probability: probs[best]!});
  }
  return line;
}

export interface TokensAnalysis {
  model: string;
  weightsOrigin: string;
  prompt: string;
  tokens: TokenRow[];
  vocabSize: number;
  /** The logits' shape, batch kept: [1, tokens, vocabulary]. */
  logitsShape: number[];
  top: Candidate[];
  /** The most likely next token, decoded. */
  argmax: {id: number; piece: string; shown: string};
  /** The next-token distribution, for a line over the vocabulary (see distributionLine). */
  line: {id: number; probability: number}[];
  /** The probability of the most likely token and the entropy of the distribution, in bits. */
  maxProbability: number;
  entropyBits: number;
}

/** One forward pass over the prompt; the numbers page 2 shows. */
export async function analyseTokens(
  model: LanguageModel,
  prompt: string,
  {k = 10, points = 1000} = {}
): Promise<TokensAnalysis> {
  const trace = await model.trace(prompt, ["lm_head.output"]);
  return analyseLogits(model, prompt, trace["lm_head.output"]!, {k, points});
}

/** The same, from logits already computed. */
export async function analyseLogits(
  model: LanguageModel,
  prompt: string,
  logits: Tensor,
  {k = 10, points = 1000} = {}
): Promise<TokensAnalysis> {
  const probs = nextTokenDistribution(logits);
  const best = argmax(probs);
  const [piece] = await model.pieces([best]);
  let entropy = 0;
  for (const p of probs) if (p > 0) entropy -= p * Math.log2(p);
  return {
    model: model.id,
    weightsOrigin: model.weightsOrigin,
    prompt,
    tokens: await tokenTable(model, prompt),
    vocabSize: model.config.vocabSize,
    logitsShape: logits.shape,
    top: await topNext(model, logits, k),
    argmax: {id: best, piece: piece!, shown: visible(piece!)},
    line: distributionLine(probs, points),
    maxProbability: probs[best]!,
    entropyBits: entropy
  };
}

/** A word's ids with and without a leading space (" Paris" vs "Paris"). */
export async function spaceVariants(
  model: Pick<LanguageModel, "tokenize">,
  word: string
): Promise<{text: string; shown: string; ids: number[]; pieces: string[]}[]> {
  const bare = word.trim();
  return Promise.all(
    [` ${bare}`, bare].map(async (text) => {
      const {ids, pieces} = await model.tokenize(text);
      return {text, shown: visible(text), ids, pieces: pieces.map(visible)};
    })
  );
}

export interface TrailingSpaceComparison {
  /** The tokens the trailing space adds at the end (usually one: a lone space token). */
  addedTokens: TokenRow[];
  /** The top-k next tokens before and after, side by side by rank. */
  ranks: {rank: number; before: Candidate; after: Candidate}[];
  argmaxBefore: string;
  argmaxAfter: string;
  /** How many of the top-k next tokens start with a space, before and after. */
  leadingSpaceBefore: number;
  leadingSpaceAfter: number;
}

/** What adding a trailing space to the prompt changes: the last token, and the next-token guesses. */
export function compareTrailingSpace(before: TokensAnalysis, after: TokensAnalysis): TrailingSpaceComparison {
  let common = 0;
  while (
    common < before.tokens.length &&
    common < after.tokens.length &&
    before.tokens[common]!.id === after.tokens[common]!.id
  )
    common++;
  const spaced = (c: Candidate) => /^\s/.test(c.piece);
  return {
    addedTokens: after.tokens.slice(common),
    ranks: before.top.map((b, i) => ({rank: i + 1, before: b, after: after.top[i]!})).filter((r) => r.after),
    argmaxBefore: before.argmax.shown,
    argmaxAfter: after.argmax.shown,
    leadingSpaceBefore: before.top.filter(spaced).length,
    leadingSpaceAfter: after.top.filter(spaced).length
  };
}

/** Page 2's defaults, shared by the page and its data loader. */
export const TOKENS_DEFAULTS = {prompt: "The Eiffel Tower is in the city of", word: "Paris", k: 20};

/** Page 1's defaults (generation), shared by the page and its data loader. */
export const GENERATION_DEFAULTS = {prompt: "Once upon a time", maxNewTokens: GENERATION.maxNewTokens.default};
