/**
 * What is timed for one loaded model, the same in every runtime: `bench/one.ts` (Node) and the Chromium
 * bench page (`bench/pages/bench.ts`) both call `measureModel`. Forward passes at 10 and 128 tokens (logits
 * only, and every hook point of every layer), greedy generation from a 128-token context with and without
 * the key/value cache; medians after a warm-up, timed with performance.now().
 */
import {LOGITS} from "../src/arch/types.js";
import type {Model} from "../src/runtime/model.js";
import {median, passCost} from "./measure.js";

export interface Measured {
  parameters: number;
  /** Per prompt length: median ms, logits only and every hook point; FLOPs and weight bytes of the pass. */
  forward: {
    tokens: number;
    logitsMs: number;
    allHooksMs: number;
    hooks: number;
    flops: number;
    weightBytes: number;
    reps: number;
  }[];
  generate: {
    context: number;
    newTokens: number;
    kvTokensPerS: number;
    noKvTokensPerS: number;
    sameTokens: boolean;
    reps: number;
    /** The tokens the cached generation chose. */
    ids: number[];
  };
}

/**
 * The weights' MB, the unit of issue 21's memory targets: what the model holds in JS, or where it holds none (each
 * session its own copy: WebGPU; one graph on WASM), its parameters' float32 bytes.
 */
export function weightMb(m: Model): number {
  return (m.weightBytes || 4 * m.parameters().reduce((s, p) => s + p.numel, 0)) / 1e6;
}

/** Token ids spread over the vocabulary, the same for every run. */
export function promptIds(length: number, vocab: number): number[] {
  return Array.from({length}, (_, i) => (1 + i * 7919) % vocab);
}

export async function measureModel(m: Model, quick: boolean): Promise<Measured> {
  const parameters = m.parameters().reduce((s, p) => s + p.numel, 0);
  const big = parameters > 10e6;
  // Passes that fetch every hook point hand the JS heap tens of MB of new buffers each (onnxruntime-node
  // copies every output into a fresh ArrayBuffer), so the garbage collector runs every few passes and single
  // passes swing by ±30%: at 10 tokens, where passes are cheap, many repetitions keep the median steady.
  const forwardReps = (tokens: number) => (quick ? 3 : !big || tokens <= 10 ? 21 : 7);
  const generateReps = quick ? 1 : big ? 3 : 7;

  const hooks = m.hookPoints();
  const forward: Measured["forward"] = [];
  for (const T of [10, 128]) {
    const tokens = Math.min(T, m.config.maxPositions);
    const ids = promptIds(tokens, m.config.vocabSize);
    // Warm up (the heap's sizes settle over the first passes), then alternate the two kinds of pass so that
    // a noisy neighbour slows both alike.
    for (let r = 0; r < (quick ? 1 : 3); r++) {
      await m.forward(ids, [LOGITS]);
      await m.forward(ids, hooks);
    }
    const logits: number[] = [];
    const all: number[] = [];
    const reps = forwardReps(tokens);
    for (let r = 0; r < reps; r++) {
      let t = performance.now();
      await m.forward(ids, [LOGITS]);
      logits.push(performance.now() - t);
      t = performance.now();
      await m.forward(ids, hooks);
      all.push(performance.now() - t);
    }
    const cost = passCost(m.config, m.parameters(), tokens);
    forward.push({tokens, logitsMs: median(logits), allHooksMs: median(all), hooks: hooks.length, ...cost, reps});
  }

  // Greedy generation from a 128-token context (less where the model has fewer positions), with the
  // key/value cache and by re-running the whole sequence at every step; both must choose the same tokens.
  const newTokens = quick ? 8 : 16;
  const context = Math.min(128, m.config.maxPositions - newTokens);
  const prompt = promptIds(context, m.config.vocabSize);
  const run = (useCache: boolean) => timedGeneration(m, prompt, newTokens, useCache);
  await m.generate(prompt, {maxNewTokens: 2, useCache: true, stopAtEos: false});
  await m.generate(prompt, {maxNewTokens: 2, useCache: false, stopAtEos: false});
  const kv: number[] = [];
  const noKv: number[] = [];
  let sameTokens = true;
  let ids: number[] = [];
  for (let r = 0; r < generateReps; r++) {
    const a = await run(true);
    ids = a.ids;
    const b = await run(false);
    kv.push(a.ms);
    noKv.push(b.ms);
    sameTokens &&= a.ids.length === b.ids.length && a.ids.every((id, i) => id === b.ids[i]);
  }
  return {
    parameters,
    forward,
    generate: {
      context,
      newTokens,
      kvTokensPerS: (newTokens - 1) / (median(kv) / 1000),
      noKvTokensPerS: (newTokens - 1) / (median(noKv) / 1000),
      sameTokens,
      reps: generateReps,
      ids
    }
  };
}

/**
 * One greedy generation of `newTokens` from `prompt`, timed from the first new token to the last: the decoding
 * rate at that context, without the first step (the whole prompt, the same work with or without a cache).
 */
export async function timedGeneration(
  m: Model,
  prompt: number[],
  newTokens: number,
  useCache = true
): Promise<{ms: number; ids: number[]}> {
  const stamps: number[] = [];
  const g = await m.generate(prompt, {
    maxNewTokens: newTokens,
    useCache,
    stopAtEos: false,
    onToken: () => stamps.push(performance.now())
  });
  return {ms: stamps[stamps.length - 1] - stamps[0], ids: g.new_ids};
}

/**
 * KV-cache decoding on a second load of the model whose decode step is captured and replayed (`graphCapture`), at
 * the same context as `measureModel`'s: tokens/s, and whether it chose the tokens `reference` did.
 */
export async function measureCapturedDecode(
  m: Model,
  reference: Measured["generate"]
): Promise<{kvTokensPerS: number; sameTokens: boolean; captured: boolean}> {
  const prompt = promptIds(reference.context, m.config.vocabSize);
  const captured = (await m.leanDecoder())?.captured === true;
  await m.generate(prompt, {maxNewTokens: 2, stopAtEos: false});
  const times: number[] = [];
  let sameTokens = true;
  for (let r = 0; r < reference.reps; r++) {
    const {ms, ids} = await timedGeneration(m, prompt, reference.newTokens);
    times.push(ms);
    sameTokens &&= ids.join() === reference.ids.join();
  }
  return {kvTokensPerS: (reference.newTokens - 1) / (median(times) / 1000), sameTokens, captured};
}
