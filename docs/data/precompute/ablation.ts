// "Inside the model": every attention head of each site model knocked out in turn on the induction prompt.
import {ABLATION_DEFAULTS, ablationView} from "../../../src/analysis/inside-model.js";
import {precompute} from "../site-models.js";

export default precompute({
  file: "ablation.json",
  head: {defaults: ABLATION_DEFAULTS},
  async compute(model) {
    return {
      numLayers: model.config.numLayers,
      numHeads: model.config.numHeads,
      ...(await ablationView(model, ABLATION_DEFAULTS.prompt))
    };
  }
});
