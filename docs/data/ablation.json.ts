// "Inside the model": every attention head of each site model knocked out in turn on the induction prompt.
import {ABLATION_DEFAULTS, ablationView} from "../../src/analysis/inside-model.js";
import {perSiteModel} from "./site-models.js";

const models = await perSiteModel(async (model) => ({
  numLayers: model.config.numLayers,
  numHeads: model.config.numHeads,
  ...(await ablationView(model, ABLATION_DEFAULTS.prompt))
}));
process.stdout.write(JSON.stringify({defaults: ABLATION_DEFAULTS, models}) + "\n");
