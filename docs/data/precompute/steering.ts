// "Inside the model": steered continuations for each site model at its default layer, for a few coefficients,
// each with the plain continuation beside it (computed once: it does not depend on alpha).
import {steerDefaults, steeringView} from "../../../src/analysis/inside-model.js";
import {precompute} from "../site-models.js";

export const ALPHAS = [-4, -2, -1, 0, 1, 2, 4];

export default precompute({
  file: "steering.json",
  head: {alphas: ALPHAS},
  async compute(model) {
    // The prompts, alpha and layer (the middle one) for this model, from its config (src/defaults.ts).
    const {layer, ...defaults} = steerDefaults(model);
    const runs = [];
    let plain: string | undefined;
    for (const alpha of ALPHAS) {
      const run = await steeringView(model, {...defaults, alpha, layer, plain: plain === undefined});
      plain ??= run.plain;
      runs.push({...run, plain});
    }
    return {numLayers: model.config.numLayers, defaults: {...defaults, layer}, runs};
  }
});
