// "Inside the model": the three patching sweeps (resid, attn, mlp) of each site model's default clean/corrupt
// pair (the indirect-object pair where it tokenizes to equal lengths), under the default logit difference.
import {defaultPair, patchingView} from "../../../src/analysis/inside-model.js";
import {precompute} from "../site-models.js";

export default precompute({
  file: "patching.json",
  async compute(model) {
    const {clean, corrupt, answers} = defaultPair(model);
    return {numLayers: model.config.numLayers, ...(await patchingView(model, clean, corrupt, {answers}))};
  }
});
