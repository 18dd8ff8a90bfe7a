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
 * The input of the edit slot at hook point `path` in a model's one graph (`GraphOptions.editSlots`): float32, the
 * slot's `scale` and `value` stacked along the first axis, each of the hook's shape (`[2·batch, tokens, …]`), and
 * the slot writes `x · scale + value`; or `[1, 0]`, which leaves `x` as it is (every run that does not edit there).
 * Both are made by JavaScript (runtime/one-graph.ts).
 */
export const editSlotInput = (path: string) => `${path}.edit`;

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
