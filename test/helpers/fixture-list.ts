/**
 * The parity fixtures (test/fixtures, whose README.md says what each one tests): the one list that every test
 * and the GPU bench (bench/gpu/parity.ts, bench/gpu/pack.sh) take, so that a new family's fixture is one line
 * here. Imports nothing, so the bench's bundle can carry it (test/helpers/fixtures.ts imports vitest).
 */

/** Each fixture and its family (the config's `model_type`): one mini per family, and stories260K, a trained Llama. */
export const FIXTURE_FAMILIES = {
  "mini-gpt2": "gpt2",
  "mini-llama": "llama",
  stories260K: "llama",
  "mini-qwen2": "qwen2",
  "mini-qwen3": "qwen3",
  "mini-pythia": "gpt_neox",
  "mini-gemma3": "gemma3_text"
} as const;

export type FixtureName = keyof typeof FIXTURE_FAMILIES;

/** Every fixture, in the order above. */
export const FIXTURES = Object.keys(FIXTURE_FAMILIES) as FixtureName[];

/** One fixture of each family, the first listed (the mini one for Llama): the sites built "with every family". */
export const ONE_PER_FAMILY: FixtureName[] = FIXTURES.filter(
  (name, i) => FIXTURES.findIndex((other) => FIXTURE_FAMILIES[other] === FIXTURE_FAMILIES[name]) === i
);
