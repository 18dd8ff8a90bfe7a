/**
 * Sampling from the GPU's candidates (runtime/decode.ts: the k most likely tokens and softmax's log-denominator)
 * draws what sampling from every logit draws, from the same random stream; and where the candidates cannot hold
 * top-p's set it draws nothing and leaves the stream untouched, so that the whole-logits fallback draws the same.
 */
import {describe, expect, it} from "vitest";
import {candidateCount, drawCandidates, sample} from "../src/runtime/generate.js";
import {topK as largest} from "../src/analysis/index.js";
import {mulberry32} from "../src/runtime/weights.js";
import type {Candidates} from "../src/runtime/decode.js";
import {GENERATION, checkOption, generationOptions} from "../src/defaults.js";
import {steeringEdit} from "../src/analysis/steering.js";

/** What the candidates graph computes, here in float64: the k largest logits and log Σ exp(logit / T). */
function candidatesOf(logits: Float32Array, k: number, temperature: number): Candidates {
  const ids = largest(logits, k);
  let max = -Infinity;
  for (const l of logits) max = Math.max(max, l / temperature);
  let sum = 0;
  for (const l of logits) sum += Math.exp(l / temperature - max);
  return {ids, logits: ids.map((i) => logits[i]), logSumExp: max + Math.log(sum)};
}

function randomLogits(seed: number, V: number, spread: number): Float32Array {
  const random = mulberry32(seed);
  return Float32Array.from({length: V}, () => (random() * 2 - 1) * spread);
}

describe("sampling from candidates", () => {
  const V = 2000;
  it.each([
    {temperature: 1, topK: 40, topP: 1},
    {temperature: 0.7, topK: 40, topP: 0.9},
    {temperature: 1.3, topK: 5, topP: 0.5},
    {temperature: 0.5, topK: 0, topP: 0.9}
  ])("draws what sampling every logit draws: %o", (options) => {
    let drawn = 0;
    for (let seed = 0; seed < 200; seed++) {
      // Peaked logits, so that top-p's set fits in the 256 candidates taken for top-p alone.
      const logits = randomLogits(seed, V, 12);
      const k = candidateCount(V, options.topK, options.topP);
      const viaCandidates = drawCandidates(candidatesOf(logits, k, options.temperature), options, mulberry32(seed));
      const viaLogits = sample(logits, options, mulberry32(seed));
      if (viaCandidates !== undefined) drawn++;
      expect(viaCandidates ?? viaLogits).toBe(viaLogits);
    }
    expect(drawn).toBe(200);
  });

  it("draws nothing, and takes nothing from the stream, when top-p's set outgrows the candidates", () => {
    // Flat logits: top-p 0.95 keeps most of the 2000 tokens, far more than 256 candidates.
    const logits = randomLogits(3, V, 0.1);
    const options = {temperature: 1, topK: 0, topP: 0.95};
    const random = mulberry32(9);
    const k = candidateCount(V, 0, 0.95);
    expect(k).toBe(256);
    expect(drawCandidates(candidatesOf(logits, k, 1), options, random)).toBeUndefined();
    // The stream is where it was: the fallback draws what a fresh stream draws.
    expect(sample(logits, options, random)).toBe(sample(logits, options, mulberry32(9)));
  });

  it("asks for no candidates where every token may be drawn", () => {
    expect(candidateCount(V, 0, 1)).toBe(0);
    expect(candidateCount(V, V, 1)).toBe(0);
    expect(candidateCount(V, 50, 1)).toBe(50);
    expect(candidateCount(100, 0, 0.9)).toBe(100);
  });
});

describe("generation options: defaults and ranges stated once (src/defaults.ts)", () => {
  it("fills in the defaults", () => {
    expect(generationOptions({})).toEqual({
      maxNewTokens: GENERATION.maxNewTokens.default,
      doSample: false,
      temperature: GENERATION.temperature.default,
      topK: GENERATION.topK.default,
      topP: GENERATION.topP.default,
      seed: GENERATION.seed.default
    });
  });

  it.each([
    [{temperature: -1}, /^temperature must be a number ≥ 0, got -1$/],
    [
      {doSample: true, temperature: 0},
      /^temperature must be above 0 when sampling, got 0 \(for greedy decoding, leave out doSample\)$/
    ],
    [{topP: 0}, /^topP must be a number in \(0, 1\], got 0$/],
    [{topP: 1.01}, /^topP must be a number in \(0, 1\], got 1\.01$/],
    [{topK: -1}, /^topK must be a whole number ≥ 0, got -1$/],
    [{topK: 1.5}, /^topK must be a whole number ≥ 0, got 1\.5$/],
    [{maxNewTokens: 0}, /^maxNewTokens must be a whole number ≥ 1, got 0$/],
    [{maxNewTokens: NaN}, /^maxNewTokens must be a whole number ≥ 1, got NaN$/],
    [{seed: 0.5}, /^seed must be a whole number, got 0\.5$/]
  ])("refuses %o, naming the option, the value and the range", (given, message) => {
    expect(() => generationOptions(given)).toThrow(message);
  });

  it("greedy decoding takes temperature 0 (it ignores the temperature); sampling's edges are accepted", () => {
    expect(generationOptions({temperature: 0}).temperature).toBe(0);
    expect(generationOptions({doSample: true, temperature: 0.01, topP: 1, topK: 0}).topP).toBe(1);
  });

  it("the CLI's names in the CLI's errors", () => {
    expect(() => generationOptions({topP: 2}, (name) => `--${name}`)).toThrow(/^--topP must be/);
  });

  it("steering's alpha: any finite number", () => {
    expect(steeringEdit("h", [1, 2], -3).value).toEqual(Float32Array.of(-3, -6));
    expect(() => steeringEdit("h", [1, 2], Infinity)).toThrow(/^alpha must be a finite number, got Infinity$/);
    expect(() => steeringEdit("h", [1, 2], NaN, "--alpha")).toThrow(/^--alpha must be a finite number/);
  });

  it("choices", () => {
    const spec = {type: "choice", choices: ["a", "b"], default: "a", description: ""} as const;
    expect(checkOption(spec, undefined, "x")).toBe("a");
    expect(() => checkOption(spec, "c", "--x")).toThrow(/^--x must be one of a, b; got "c"$/);
  });
});
