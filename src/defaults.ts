/**
 * Every default a user may leave out — generation, the logit lens, patching, steering, the embeddable cells —
 * stated once, as Observable Plot's `const defaults`: each option with its default, the values it accepts and
 * what it does. The engine (`model.generate`, `logitLens`, `patchSweep`, `steeringEdit`), the CLI (its options,
 * its help, which is generated from these specs, and its checks), the views, the cells and the data loaders read
 * them from here, and `checkOption` refuses a value outside its range with one message, in the API and the CLI.
 */
import {WorkbenchError} from "./errors.js";

/** A numeric option: its default and the values it accepts (`min`/`max` inclusive, `above` exclusive). */
export interface NumberSpec {
  type: "integer" | "number";
  default: number;
  min?: number;
  max?: number;
  above?: number;
  /** What it does, as the CLI's help says it (the range and default are added from the fields above). */
  description: string;
}

/** An option that takes one of a few words. */
export interface ChoiceSpec<C extends string = string> {
  type: "choice";
  choices: readonly C[];
  default: C;
  description: string;
}

export type OptionSpec = NumberSpec | ChoiceSpec;

// ---------------------------------------------------------------------------------------------------------
// Generation (runtime/generate.ts; the CLI's generate)

export const GENERATION = {
  maxNewTokens: {type: "integer", default: 20, min: 1, description: "how many tokens to add at most"},
  // Greedy decoding ignores the temperature (0 is accepted there, as "greedy" is often written); sampling
  // needs it above 0, as transformers' GenerationConfig does: `generationOptions` checks that case.
  temperature: {
    type: "number",
    default: 1,
    min: 0,
    description: "sampling temperature: above 0 when sampling, ignored by greedy decoding"
  },
  topK: {type: "integer", default: 0, min: 0, description: "keep the K most likely tokens, 0 for all of them"},
  topP: {
    type: "number",
    default: 1,
    above: 0,
    max: 1,
    description: "keep the smallest set of most likely tokens whose probability reaches P, 1 for all of them"
  },
  seed: {type: "integer", default: 0, description: "seed of the sampling"}
} as const satisfies Record<string, NumberSpec>;

/** The generation options as `model.generate` takes them, every one given. */
export interface GenerationSettings {
  maxNewTokens: number;
  doSample: boolean;
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
}

/**
 * Generation options with their defaults filled in and their ranges checked (`name` spells an option in the
 * error: the API's `maxNewTokens`, the CLI's `--max-new-tokens`).
 */
export function generationOptions(
  given: Partial<GenerationSettings>,
  name: (option: keyof GenerationSettings) => string = (option) => option
): GenerationSettings {
  const settings = {doSample: given.doSample ?? false} as GenerationSettings;
  for (const key of Object.keys(GENERATION) as (keyof typeof GENERATION)[])
    settings[key] = checkOption(GENERATION[key], given[key], name(key));
  if (settings.doSample && !(settings.temperature > 0))
    throw new WorkbenchError(
      `${name("temperature")} must be above 0 when sampling, got ${settings.temperature} ` +
        `(for greedy decoding, leave out ${name("doSample")})`
    );
  return settings;
}

// ---------------------------------------------------------------------------------------------------------
// The logit lens (analysis/lens.ts, the lens page and cell, the CLI's lens)

export const LOGIT_LENS = {
  prompt: "The Eiffel Tower is in the city of",
  k: {type: "integer", default: 5, min: 1, description: "tokens kept per layer and position"},
  // All layers in one MatMul held `[L, T, V]` logits and as much again (SmolLM2-135M: +118 MiB of WASM heap for a
  // 10-token prompt, 1.5 GB for 128 tokens); a group at a time holds a group's worth and reads the unembedding
  // once a group (graph/hooks.ts `lensOutputs`).
  layersAtOnce: {type: "integer", default: 8, min: 1, description: "layers unembedded in one MatMul"}
} as const satisfies {prompt: string; k: NumberSpec; layersAtOnce: NumberSpec};

// ---------------------------------------------------------------------------------------------------------
// Activation patching and head ablation (analysis/patching.ts, inside-model.ts, the pages and cells, the CLI)

export const PATCHING = {
  kind: {
    type: "choice",
    choices: ["resid", "attn", "mlp"],
    default: "resid",
    description: "the block patched: resid is the layer's output, attn and mlp the block outputs the layer adds"
  },
  /** Tracked ids when none are given: each run's this many most likely (`defaultIds`). */
  each: 4,
  /** Each run's most likely next tokens kept for a view that opens the run. */
  top: 5,
  /** At most this many tokens per packed session run: a bound on its memory. */
  maxTokens: 512,
  /**
   * The same bound for a model with one graph (WASM: runtime/model.ts `oneGraph`), whose every run makes every hook
   * point (they are that graph's outputs, and onnxruntime computes them whether fetched or not): ~85 MB of them at
   * 64 tokens for SmolLM2-135M, ~900 MB at 512.
   */
  oneGraphMaxTokens: 64,
  /**
   * Clean/corrupt pairs; the first whose two prompts have as many tokens in the model's tokenizer is the default:
   * the indirect-object pair (equal in gpt2 and SmolLM2), then pairs that stay equal in smaller vocabularies.
   */
  pairs: [
    {
      clean: "When Mary and John went to the store, John gave a drink to",
      corrupt: "When Mary and John went to the store, Mary gave a drink to",
      answers: [" Mary", " John"]
    },
    {
      clean: "Tom and Sam went to the park. Sam gave the ball to",
      corrupt: "Tom and Sam went to the park. Tom gave the ball to",
      answers: [" Tom", " Sam"]
    },
    {clean: "The city Paris is in France", corrupt: "The city Rome is in France", answers: [" Paris", " Rome"]}
  ],
  /** Head ablation's prompt (and the attention cell's). */
  ablationPrompt: "a is a & b is b & y is"
} as const;

// ---------------------------------------------------------------------------------------------------------
// Steering (analysis/steering.ts, inside-model.ts, the steering page, the CLI's generate --steer)

export const STEERING = {
  alpha: {
    type: "number",
    default: 4,
    description: "how many times the vector is added; negative steers towards the other prompt"
  },
  /** ActAdd's pair (Turner et al., 2023): two one-token words of a large vocabulary, and a prompt. */
  words: {from: " Love", to: " Hate", prompt: "I think that you are"},
  /**
   * For a small vocabulary, sentences of the kind its training text has: a vocabulary of a few hundred tokens
   * (stories260K's 512, trained on TinyStories) spells " Love" and " Hate" out in pieces and knows neither as
   * one idea.
   */
  sentences: {from: "She was happy", to: "She was sad", prompt: "Once upon a time"},
  /** Under this many tokens a vocabulary counts as small (byte-level BPEs have 50 000 and more). */
  smallVocabulary: 4096
} as const;

/**
 * A model's steering defaults, from its config alone (no model id, no family): the middle layer's output, and
 * `STEERING.sentences` for a small vocabulary, else ActAdd's words.
 */
export function steeringDefaults(config: {numLayers: number; vocabSize: number}) {
  const texts = config.vocabSize < STEERING.smallVocabulary ? STEERING.sentences : STEERING.words;
  return {
    ...texts,
    alpha: STEERING.alpha.default,
    layer: Math.floor(config.numLayers / 2),
    maxNewTokens: GENERATION.maxNewTokens.default
  };
}

// ---------------------------------------------------------------------------------------------------------
// The embeddable cells' other inputs (src/cells/)

export const CELLS = {
  nextToken: {prompt: "Once upon a time, there was a little", k: 10},
  attention: {prompt: PATCHING.ablationPrompt, layer: 2, head: 3}
} as const;

// ---------------------------------------------------------------------------------------------------------
// Checking

/** `spec`'s range in words: "a whole number ≥ 1", "a number in (0, 1]". */
export function describeRange(spec: NumberSpec): string {
  const what = spec.type === "integer" ? "a whole number" : "a number";
  const low = spec.above !== undefined ? `(${spec.above}` : spec.min !== undefined ? `[${spec.min}` : undefined;
  if (low !== undefined && spec.max !== undefined) return `${what} in ${low}, ${spec.max}]`;
  if (spec.above !== undefined) return `${what} > ${spec.above}`;
  if (spec.min !== undefined) return `${what} ≥ ${spec.min}`;
  if (spec.max !== undefined) return `${what} ≤ ${spec.max}`;
  return spec.type === "integer" ? what : "a finite number";
}

/** `value` (its default where undefined) if `spec` accepts it; else an error naming the option, the value and the range. */
export function checkOption(spec: NumberSpec, value: number | undefined, name: string): number;
export function checkOption<C extends string>(spec: ChoiceSpec<C>, value: string | undefined, name: string): C;
export function checkOption(spec: OptionSpec, value: number | string | undefined, name: string): number | string {
  if (value === undefined) return spec.default;
  if (spec.type === "choice") {
    if (!(spec.choices as readonly string[]).includes(value as string))
      throw new WorkbenchError(`${name} must be one of ${spec.choices.join(", ")}; got ${JSON.stringify(value)}`);
    return value;
  }
  const n = value as number;
  const fits =
    typeof n === "number" &&
    Number.isFinite(n) &&
    (spec.type === "number" || Number.isInteger(n)) &&
    (spec.min === undefined || n >= spec.min) &&
    (spec.above === undefined || n > spec.above) &&
    (spec.max === undefined || n <= spec.max);
  if (!fits)
    throw new WorkbenchError(
      `${name} must be ${describeRange(spec)}, got ${typeof value === "number" ? value : JSON.stringify(value)}`
    );
  return n;
}
