// Page 5, precomputed for each site model: attention versus MLP parameters per layer and in total, and the
// attention weights of every head of the default layer (10, clamped) for the lecture's prompt, and every
// layer's attention block as its steps (`self_attn.source`) with their shapes for that prompt.
import {ATTENTION_DEFAULTS, attentionSource, attentionTraceOf, defaultLayerHead, parameterShares} from "../../../src/analysis/attention.js";
import {matrix} from "../../../src/analysis/index.js";
import {precompute} from "../site-models.js";

const round = (v: number) => Number(v.toPrecision(4));

export default precompute({
  file: "attention.json",
  head: {defaults: ATTENTION_DEFAULTS},
  async compute(model) {
    const {layer, head} = defaultLayerHead(model.config);
    const source = await attentionSource(model, ATTENTION_DEFAULTS.prompt);
    const trace = attentionTraceOf(source, model.config);
    const weights = trace.layers[layer]!;
    const T = trace.pieces.length;
    return {
      numLayers: model.config.numLayers,
      numHeads: model.config.numHeads,
      numKeyValueHeads: model.config.numKeyValueHeads,
      shares: parameterShares(model.counts()),
      prompt: trace.prompt,
      pieces: trace.pieces,
      layer,
      head,
      // steps[layer]: {path, name, shape}, in forward order
      steps: source.steps,
      // heads[h][query][key]
      heads: Array.from({length: weights.shape[1]!}, (_, h) => {
        const {data} = matrix(weights, 0, h);
        return Array.from({length: T}, (_, q) => Array.from(data.subarray(q * T, (q + 1) * T), round));
      })
    };
  }
});
