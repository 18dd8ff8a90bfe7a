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
 * The inputs of the edit slots of a model's one graph (`GraphOptions.editSlots`), all slots in four tensors, since
 * onnxruntime-web spends ~5 µs a run on every input it is fed (~9 ms for one input per slot setting on SmolLM2):
 * `on` bool `[slots]`, a slot's switch; `values` float32, every switched-on slot's `scale` and `value` one after
 * another; `bounds` int64, their intervals; `table` int64 `[slots, SLOT_ROW.length]`, where each slot's lie (`SLOT_ROW`).
 * A slot switched on writes `x := x · scale + value` where the index along each of `SLOT_AXES` lies inside one of
 * its intervals.
 */
export const SLOTS = {on: "edits.on", values: "edits.values", bounds: "edits.bounds", table: "edits.table"} as const;

/**
 * A slot's row of `SLOTS.table`: where its scale and value start in `values` and how many numbers they hold, their
 * shapes right-aligned in four dims padded with 1s (a hook point has at most four axes), and where its bounds start
 * in `bounds` with how many intervals each axis has (`[axes, n, 2]`).
 */
export const SLOT_ROW = {
  scale: 0,
  scaleLength: 1,
  scaleDims: 2,
  value: 6,
  valueLength: 7,
  valueDims: 8,
  bounds: 12,
  intervals: 13,
  length: 14
} as const;

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
