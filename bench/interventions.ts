/**
 * The interventions' speed (issue 13), measured in the per-model child (`bench/one.ts`) on the full-size
 * structures: a patching sweep against the single forward passes it replaces, the logit lens against a
 * logits-only forward of the same prompt, steered generation against plain generation.
 */
import {LOGITS} from "../src/graph/names.js";
import {logitLens} from "../src/analysis/lens.js";
import {patchSweep} from "../src/analysis/patching.js";
import {steeringEdit, steeringVector} from "../src/analysis/steering.js";
import {WorkbenchError} from "../src/errors.js";
import type {Model} from "../src/runtime/model.js";
import {timeMedian} from "./measure.js";

/** A clean/corrupt pair of 10 tokens in gpt2's and SmolLM2's tokenizers alike (checked when measured). */
export const PATCH_PAIR = {
  clean: "The capital city of France is the city of the",
  corrupt: "The capital city of Italy is the city of the"
} as const;
export const STEER = {from: " Love", to: " Hate", prompt: "I think that you are", alpha: 4} as const;

export interface InterventionTimes {
  tokens: number;
  layers: number;
  /** One forward pass of the corrupt prompt, logits only. */
  forwardMs: number;
  /** Every (layer, position) of the residual stream patched: layers × tokens runs. */
  patchSweepMs: number;
  /** patchSweepMs / (layers × tokens × forwardMs): target ≤ 0.25. */
  patchSweepRatio: number;
  /** Top-10 at every layer and position of the clean prompt. */
  logitLensMs: number;
  /** logitLensMs / forwardMs: target ≤ 3.5. */
  logitLensRatio: number;
  /** Greedy generation from STEER.prompt with the KV cache, with and without the steering edit. */
  generateTokensPerS: number;
  steeredTokensPerS: number;
  /** steered / plain: target ≥ 0.9. */
  steeredRatio: number;
}

/**
 * The lens, a patching sweep and a steered generation, once each, untimed: what a page that uses them all asks of
 * one model (bench/one.ts measures the memory they take). Any tokenizer: a corrupt prompt of another length is
 * replaced by the clean one with its last two tokens swapped.
 */
export async function runAnalyses(model: Model): Promise<void> {
  const clean = model.tokenizer.encode(PATCH_PAIR.clean).ids;
  let corrupt = model.tokenizer.encode(PATCH_PAIR.corrupt).ids;
  if (corrupt.length !== clean.length)
    corrupt = [...clean.slice(0, -2), clean[clean.length - 1], clean[clean.length - 2]];
  await logitLens(model, clean, {k: 10});
  await patchSweep(model, clean, corrupt, "resid");
  const hook = model.arch.roles.resid(Math.floor(model.config.numLayers / 2));
  const vector = await steeringVector(model, hook, STEER.from, STEER.to);
  await model.generate(STEER.prompt, {
    maxNewTokens: 10,
    stopAtEos: false,
    edits: [steeringEdit(hook, vector, STEER.alpha)]
  });
}

export async function measureInterventions(model: Model, quick: boolean): Promise<InterventionTimes> {
  const reps = quick ? 3 : 7;
  const clean = model.tokenizer.encode(PATCH_PAIR.clean).ids;
  const corrupt = model.tokenizer.encode(PATCH_PAIR.corrupt).ids;
  if (clean.length !== 10 || corrupt.length !== 10)
    throw new WorkbenchError(`${model.id}: the patching pair is ${clean.length} and ${corrupt.length} tokens, not 10`);
  const L = model.config.numLayers;
  const forwardMs = await timeMedian(() => model.forward(corrupt, [LOGITS]), reps * 3, 3);
  // The first sweep and lens build their sessions: warm-ups.
  const patchSweepMs = await timeMedian(() => patchSweep(model, clean, corrupt, "resid"), reps, 1);
  const logitLensMs = await timeMedian(() => logitLens(model, clean, {k: 10}), reps, 1);
  const hook = model.arch.roles.resid(Math.floor(L / 2));
  const vector = await steeringVector(model, hook, STEER.from, STEER.to);
  const edits = [steeringEdit(hook, vector, STEER.alpha)];
  const maxNewTokens = quick ? 10 : 20;
  const rate = async (steered: boolean) => {
    const ms = await timeMedian(
      () => model.generate(STEER.prompt, {maxNewTokens, stopAtEos: false, edits: steered ? edits : undefined}),
      reps,
      1
    );
    return (maxNewTokens / ms) * 1000;
  };
  const generateTokensPerS = await rate(false);
  const steeredTokensPerS = await rate(true);
  return {
    tokens: clean.length,
    layers: L,
    forwardMs,
    patchSweepMs,
    patchSweepRatio: patchSweepMs / (L * clean.length * forwardMs),
    logitLensMs,
    logitLensRatio: logitLensMs / forwardMs,
    generateTokensPerS,
    steeredTokensPerS,
    steeredRatio: steeredTokensPerS / generateTokensPerS
  };
}
