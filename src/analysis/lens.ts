/**
 * The logit lens (nostalgebraist, 2020): read every layer's residual stream through the model's own final norm
 * and unembedding, as if the model stopped there. The graph does it for every position and a group of layers at a
 * time and keeps the top k (ONNX TopK), so only `[layers, T, k]` comes back, not `[layers, T, vocabulary]`.
 */
import {LENS} from "../graph/names.js";
import type {Model, TraceInput} from "../runtime/model.js";
import type {Tensor} from "../runtime/tensor.js";
import {LOGIT_LENS, checkOption} from "../defaults.js";

export interface LogitLensOptions {
  /** How many tokens per (layer, position), up to the vocabulary's size; default `LOGIT_LENS.k`. */
  k?: number;
  /** Also bring back the full logits `[L, T, V]` (for small vocabularies and tests). */
  logits?: boolean;
  /**
   * How many layers the graph unembeds in one MatMul (default `LOGIT_LENS.layersAtOnce`): fewer hold
   * less memory (a group's `[G, T, V]` logits at a time) and read the unembedding more often.
   */
  layersAtOnce?: number;
}

export interface LogitLens extends TraceInput {
  /** The hook point read at each layer: the layer's output (`roles.resid`). */
  hooks: string[];
  k: number;
  /** Token ids `[L, T, k]`, most likely first. */
  topIds: Tensor;
  /** Their log-probabilities under the lens, `[L, T, k]`. */
  topLogprobs: Tensor;
  /** `[L, T, V]`, when asked for. */
  logits?: Tensor;
}

export async function logitLens(
  model: Model,
  input: string | number[],
  options: LogitLensOptions = {}
): Promise<LogitLens> {
  const k = checkOption({...LOGIT_LENS.k, max: model.config.vocabSize}, options.k, "the lens's k");
  const layersAtOnce = checkOption(LOGIT_LENS.layersAtOnce, options.layersAtOnce, "the lens's layersAtOnce");
  const {ids, tokens} = model.encodeInput(input);
  const fetch: string[] = [LENS.topIds, LENS.topLogprobs, ...(options.logits ? [LENS.logits] : [])];
  const {outputs} = await model.run(ids, undefined, fetch, false, {
    // No hook point exposed: the lens graph stays as lean as onnxruntime can fuse it.
    // The full logits only when asked for: without them the lens holds a few layers' logits at a time.
    structure: {
      lens: true,
      hooks: [],
      ...(options.logits ? {lensLogits: true} : {}),
      // The default is the graph's own (and the one graph's): only another number makes a structure of its own.
      ...(layersAtOnce !== LOGIT_LENS.layersAtOnce.default ? {lensLayersAtOnce: layersAtOnce} : {})
    },
    feeds: {[LENS.k]: {type: "int64", data: BigInt64Array.of(BigInt(k)), dims: [1]}}
  });
  const L = model.config.numLayers;
  return {
    input_ids: ids,
    tokens,
    hooks: Array.from({length: L}, (_, i) => model.arch.roles.resid(i)),
    k,
    topIds: outputs.get(LENS.topIds)!,
    topLogprobs: outputs.get(LENS.topLogprobs)!,
    logits: outputs.get(LENS.logits)
  };
}
