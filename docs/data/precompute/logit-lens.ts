// "Inside the model": the logit lens of the default prompt for each site model (top 5 per layer and position).
import {LENS_DEFAULTS, lensView} from "../../../src/analysis/inside-model.js";
import {precompute} from "../site-models.js";

export default precompute({
  file: "logit-lens.json",
  head: {defaults: LENS_DEFAULTS},
  async compute(model) {
    return {numLayers: model.config.numLayers, ...(await lensView(model, LENS_DEFAULTS.prompt, LENS_DEFAULTS.k))};
  }
});
