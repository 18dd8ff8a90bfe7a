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
 * The inputs of the edit slots of a model's one graph (`GraphOptions.editSlots`), all slots in three tensors, since
 * onnxruntime-web spends ~5 µs a run on every input it is fed (~9 ms for one input per slot setting on SmolLM2):
 * `on` bool `[slots]`, a slot's switch; `values` float32, every switched-on slot's numbers one after another;
 * `table` int64 `[slots, SLOT_ROW.length]`, where each slot's lie (`SLOT_ROW`). A slot switched on holds three
 * tensors of its hook's shape, made by JavaScript (runtime/one-graph.ts): `scale`, `value` and a `mask` (1 where the
 * edit's selection holds), and writes `x := x · scale + value` where the mask is 1.
 */
export const SLOTS = {on: "edits.on", values: "edits.values", table: "edits.table"} as const;

/** A slot's row of `SLOTS.table`: where its numbers start and end in `values` (scale, value and mask, in order). */
export const SLOT_ROW = {start: 0, end: 1, length: 2} as const;

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
