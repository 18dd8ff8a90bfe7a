/**
 * Generation: greedy by default, or sampling with temperature, top-k and top-p from a seeded random stream.
 * With the key/value cache (the default) each step feeds only the new token; without it, each step runs the
 * whole sequence again — slower, same tokens, kept for the benchmark and the check that they agree.
 */
import {argmax, softmax} from "../analysis/index.js";
import {LOGITS} from "../arch/types.js";
import {releaseCache, type Cache} from "./cache.js";
import type {Model} from "./model.js";
import {mulberry32} from "./weights.js";
import type {Candidates} from "./decode.js";
import type {Edit} from "./edits.js";
import {generationOptions, type GenerationSettings} from "../defaults.js";

/** The options' defaults and ranges are stated once, in src/defaults.ts (`GENERATION`). */
export interface GenerateOptions extends Partial<GenerationSettings> {
  /** Default true: feed only the new token each step, keeping past keys and values. */
  useCache?: boolean;
  /** Default true: stop at the end-of-sequence token. */
  stopAtEos?: boolean;
  /**
   * Writes into the model at every step (steering): each step's run applies them to the positions it computes —
   * the prompt's at the first step, then each new token's — so that with the key/value cache the result is the
   * same as running the whole sequence with the edits. Positions, where given, count from the prompt's start.
   */
  edits?: Edit[];
  /**
   * Called with each new token as it is chosen. `text` is what the token adds to the decoded text: the decode
   * of the whole sequence minus what earlier tokens already gave, so that SentencePiece's leading spaces survive
   * and a character split over several byte tokens comes out whole (with the token that completes it). Joined,
   * the `text`s of every token are the generation's continuation.
   */
  onToken?: (token: {id: number; text: string; index: number}) => void;
  signal?: AbortSignal;
}

export interface Generation {
  input_ids: number[];
  new_ids: number[];
  /** The prompt and its continuation, decoded. */
  text: string;
  /** Why it stopped. */
  stopped: "max_new_tokens" | "eos" | "max_positions" | "aborted";
}

export async function generate(
  model: Model,
  prompt: string | number[],
  options: GenerateOptions = {}
): Promise<Generation> {
  const {maxNewTokens, doSample, temperature, topK, topP, seed} = generationOptions(options);
  const {useCache = true, stopAtEos = true} = options;
  const {ids} = await model.prepareInput(prompt);
  const random = mulberry32(seed);
  const eos = new Set(model.eosIds());
  const sequence = [...ids];
  const newIds: number[] = [];
  const stream = textStream(model, ids);
  const choose = (logits: Float32Array) =>
    doSample ? sample(logits, {temperature, topK, topP}, random) : argmax(logits);

  /** The steps, whichever graph runs them: `nextToken(step)` runs the model on what is new and returns its choice. */
  async function loop(nextToken: (step: number) => Promise<number>): Promise<Generation> {
    let stopped: Generation["stopped"] = "max_new_tokens";
    for (let step = 0; step < maxNewTokens; step++) {
      if (options.signal?.aborted) {
        stopped = "aborted";
        break;
      }
      if (sequence.length >= model.config.maxPositions) {
        stopped = "max_positions";
        break;
      }
      const next = await nextToken(step);
      sequence.push(next);
      newIds.push(next);
      const ends = stopAtEos && eos.has(next);
      if (options.onToken) {
        const last = step === maxNewTokens - 1 || ends || sequence.length >= model.config.maxPositions;
        options.onToken({id: next, text: stream(sequence, last), index: step});
      }
      if (ends) {
        stopped = "eos";
        break;
      }
    }
    return {
      input_ids: ids,
      new_ids: newIds,
      text: model.tokenizer.decode(sequence, {skipSpecialTokens: true}),
      stopped
    };
  }

  // On WebGPU, plain generation runs on the lean decode graph (runtime/decode.ts) where the model has one; edits,
  // and generation without the cache, need the traced graph.
  // Sampling there takes its candidates from the GPU (the k most likely tokens), and the whole vocabulary's logits
  // only when those cannot hold what top-p keeps.
  const lean = useCache && !options.edits?.length ? await model.leanDecoder() : undefined;
  const positions = Math.min(ids.length + maxNewTokens, model.config.maxPositions);
  // A captured decoder's cache has a fixed capacity: a longer generation takes the traced graph.
  if (lean?.holds(positions)) {
    const k = lean.candidatesOnGpu ? candidateCount(model.config.vocabSize, topK, topP) : 0;
    return lean.exclusive(positions, () =>
      loop(async (step) => {
        const input = step === 0 ? ids : sequence.slice(-1);
        if (!doSample) return (await lean.step(input)).next;
        if (k === 0) return choose((await lean.step(input, {logits: true})).logits!);
        const {candidates, readLogits} = await lean.step(input, {candidates: {k, temperature}});
        return drawCandidates(candidates!, {temperature, topK, topP}, random) ?? choose(await readLogits!());
      })
    );
  }

  let cache: Cache | undefined;
  try {
    return await loop(async (step) => {
      const input = useCache && cache ? sequence.slice(-1) : sequence;
      // The edits' indices are checked once, at the first step, against the length the generation may reach.
      const extras = options.edits?.length
        ? model.editExtras(options.edits, sequence.length - input.length, step === 0 && {tokens: positions})
        : undefined;
      const result = await model.run(input, useCache ? cache : undefined, [LOGITS], useCache, extras);
      releaseCache(cache);
      cache = result.cache;
      const logits = result.outputs.get(LOGITS)!;
      return choose(logits.data.subarray(logits.data.length - logits.shape[2]));
    });
  } finally {
    releaseCache(cache);
  }
}

/**
 * What each new token adds to the text. Decoding a token alone loses what depends on its neighbours (the
 * space SentencePiece's "▁" stands for is dropped at the start of a text; a multi-byte character split over
 * byte tokens decodes to "\uFFFD" piece by piece), so the whole sequence is decoded each step and the part
 * already handed out is taken off. A decode that ends in an incomplete character is held back until the token
 * that completes it, except for the last token, which hands out whatever is left.
 */
export function textStream(
  model: {tokenizer: Pick<Model["tokenizer"], "decode">},
  promptIds: number[]
): (sequence: number[], last: boolean) => string {
  const decode = (ids: number[]) => model.tokenizer.decode(ids, {skipSpecialTokens: true});
  let shown = decode(promptIds);
  return (sequence, last) => {
    const decoded = decode(sequence);
    // Decoding can rewrite what came before (a tokenizer that cleans up " ." into "."): then nothing is handed
    // out until the text grows past what was shown again.
    if (!decoded.startsWith(shown) || (!last && decoded.endsWith("\uFFFD"))) return "";
    const added = decoded.slice(shown.length);
    shown = decoded;
    return added;
  };
}

interface SampleOptions {
  temperature?: number;
  topK?: number;
  topP?: number;
}

/** Draw a token: temperature, then keep the top-k, then the smallest set whose probability reaches top-p. */
export function sample(
  logits: Float32Array,
  {temperature = 1, topK = 0, topP = 1}: SampleOptions,
  random: () => number
): number {
  const probs = softmax(logits, temperature);
  const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a] || a - b);
  return draw(
    order,
    Array.from(order, (i) => probs[i]),
    {topK, topP},
    random,
    true
  )!;
}

/**
 * How many candidates a sampling step asks the GPU for: top-k's k; for top-p alone, enough that they usually hold
 * its set (`CANDIDATES_FOR_TOP_P`); none when every token can be drawn (then the logits come back whole). A top-k
 * of the whole vocabulary keeps every token: it counts as none.
 */
export function candidateCount(vocabSize: number, topK: number, topP: number): number {
  if (topK > 0 && topK < vocabSize) return topK;
  return topP < 1 ? Math.min(CANDIDATES_FOR_TOP_P, vocabSize) : 0;
}
const CANDIDATES_FOR_TOP_P = 256;

/**
 * `sample`, from the k most likely tokens (the lean decoder's candidates) instead of every logit: the same
 * tokens from the same random stream, or undefined — drawing nothing — when the candidates do not hold all that
 * top-k and top-p keep (top-p alone, whose set outgrew them); then the caller samples the whole logits.
 */
export function drawCandidates(
  c: Candidates,
  {temperature = 1, topK = 0, topP = 1}: SampleOptions,
  random: () => number
): number | undefined {
  const probs = c.logits.map((logit) => Math.exp(logit / temperature - c.logSumExp));
  return draw(c.ids, probs, {topK, topP}, random, topK > 0 && topK <= c.ids.length);
}

/**
 * The draw itself, over tokens sorted most likely first with their probabilities under the whole distribution.
 * `complete`: whether these tokens hold everything top-k keeps; if not, and their mass stays under top-p, they may
 * not hold top-p's set, and nothing is drawn (undefined: `random` untouched).
 */
function draw(
  ids: number[],
  probs: number[],
  {topK, topP}: {topK: number; topP: number},
  random: () => number,
  complete: boolean
): number | undefined {
  let n = topK > 0 ? Math.min(topK, ids.length) : ids.length;
  if (topP < 1) {
    let mass = 0;
    let reached = false;
    for (let i = 0; i < n && !reached; i++) {
      mass += probs[i];
      if (mass >= topP) ((n = i + 1), (reached = true));
    }
    if (!reached && !complete) return undefined;
  } else if (!complete) return undefined;
  let total = 0;
  for (let i = 0; i < n; i++) total += probs[i];
  let r = random() * total;
  for (let i = 0; i < n; i++) {
    r -= probs[i];
    if (r <= 0) return ids[i];
  }
  return ids[n - 1];
}
