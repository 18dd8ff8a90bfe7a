/**
 * Generation: greedy by default, or sampling with temperature, top-k and top-p from a seeded random stream.
 * With the key/value cache (the default) each step feeds only the new token; without it, each step runs the
 * whole sequence again — slower, same tokens, kept for the benchmark and the check that they agree.
 */
import {argmax, softmax} from "../analysis/index.js";
import {WorkbenchError} from "../errors.js";
import {LOGITS} from "../arch/types.js";
import {releaseCache, type Cache} from "./cache.js";
import type {Model} from "./model.js";
import {mulberry32} from "./weights.js";
import type {Edit} from "./edits.js";

export interface GenerateOptions {
  maxNewTokens?: number;
  doSample?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
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
  /** Called with each new token as it is chosen. */
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

export async function generate(model: Model, prompt: string | number[], options: GenerateOptions = {}): Promise<Generation> {
  const {maxNewTokens = 20, doSample = false, temperature = 1, topK = 0, topP = 1, seed = 0, useCache = true, stopAtEos = true} = options;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) throw new WorkbenchError(`maxNewTokens must be a whole number ≥ 0, got ${maxNewTokens}`);
  if (doSample && !(temperature > 0)) throw new WorkbenchError(`temperature must be above 0, got ${temperature}`);
  if (!(topP > 0 && topP <= 1)) throw new WorkbenchError(`topP must be in (0, 1], got ${topP}`);
  const {ids} = model.encodeInput(prompt);
  const random = mulberry32(seed);
  const eos = new Set(model.eosIds());
  const sequence = [...ids];
  const newIds: number[] = [];
  let cache: Cache | undefined;
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
    const input = useCache && cache ? sequence.slice(-1) : sequence;
    const extras = options.edits?.length ? model.editExtras(options.edits, sequence.length - input.length) : undefined;
    const result = await model.run(input, useCache ? cache : undefined, [LOGITS], useCache, extras);
    releaseCache(cache);
    cache = result.cache;
    const logits = result.outputs.get(LOGITS)!;
    const vocab = logits.shape[2];
    const last = logits.data.subarray(logits.data.length - vocab);
    const next = doSample ? sample(last, {temperature, topK, topP}, random) : argmax(last);
    sequence.push(next);
    newIds.push(next);
    options.onToken?.({id: next, text: model.tokenizer.decode([next]), index: step});
    if (stopAtEos && eos.has(next)) {
      stopped = "eos";
      break;
    }
  }
  releaseCache(cache);
  return {input_ids: ids, new_ids: newIds, text: model.tokenizer.decode(sequence, {skipSpecialTokens: true}), stopped};
}

/** Draw a token: temperature, then keep the top-k, then the smallest set whose probability reaches top-p. */
export function sample(logits: Float32Array, {temperature = 1, topK = 0, topP = 1}, random: () => number): number {
  const probs = softmax(logits, temperature);
  let order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a] || a - b);
  if (topK > 0) order = order.slice(0, topK);
  if (topP < 1) {
    let mass = 0;
    const kept: number[] = [];
    for (const i of order) {
      kept.push(i);
      mass += probs[i];
      if (mass >= topP) break;
    }
    order = kept;
  }
  const total = order.reduce((s, i) => s + probs[i], 0);
  let r = random() * total;
  for (const i of order) {
    r -= probs[i];
    if (r <= 0) return i;
  }
  return order[order.length - 1];
}
