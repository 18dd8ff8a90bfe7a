/**
 * Names every decoder graph shares, whatever the architecture: the logits output, the key/value cache, and the
 * inputs and outputs of edits, the logit lens and packed runs (graph/hooks.ts). No imports: the runtime and the
 * embeddable cells read these without loading the graph builder.
 */

/** The logits, as nnsight names the unembedding's output. */
export const LOGITS = "lm_head.output";

/** Graph input and output names of the key/value cache. */
export const cacheNames = (layer: number) => ({
  pastKey: `past_key_values.${layer}.key`,
  pastValue: `past_key_values.${layer}.value`,
  presentKey: `present.${layer}.key`,
  presentValue: `present.${layer}.value`
});

/** Graph input names of edit `k` (its position in `GraphOptions.edits`). */
export const editInputs = (k: number) => ({
  value: `edit.${k}.value`,
  from: (axis: number) => `edit.${k}.axis${axis}.from`,
  to: (axis: number) => `edit.${k}.axis${axis}.to`
});

/**
 * The inputs of the edit slot at `hook` in a model's one graph (`GraphOptions.editSlots`): `on` (bool; every
 * run feeds it, false where it writes nothing) switches it on; then `x := x · scale + value` where every axis's index lies inside one of its intervals,
 * `bounds` int64 `[4, n, 2]` holding the `[from, to)` intervals of axes 0, 1, 2 and -1 (`SLOT_AXES`).
 */
export const slotInputs = (hook: string) => ({
  on: `edit@${hook}.on`,
  scale: `edit@${hook}.scale`,
  value: `edit@${hook}.value`,
  bounds: `edit@${hook}.bounds`
});

/** The axes an edit slot selects along, in `bounds` order. */
export const SLOT_AXES = [0, 1, 2, -1] as const;

/** The lens switch in a model's one graph: the lens outputs are made only where it is fed true. */
export const LENS_ON = "lens.on";

/** The logit lens: `k` in, and out the top-k log-probabilities and ids `[L, T, k]` and the full logits `[L, T, V]`. */
export const LENS = {
  k: "lens.k",
  topLogprobs: "lens.top_logprobs",
  topIds: "lens.top_ids",
  logits: "lens.logits"
} as const;

/**
 * A packed run's inputs: `position_ids` int64 `[T]` (each token's position in its own sequence), `attention_mask`
 * bool `[T, P + T]` (true where a query may not look), `logits_index` int64 `[n]` (the rows whose logits to make).
 */
export const PACKED = {positions: "position_ids", mask: "attention_mask", logitsIndex: "logits_index"} as const;
