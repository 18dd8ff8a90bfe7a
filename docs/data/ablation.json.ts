// "Inside the model": every attention head of each site model knocked out in turn on the induction prompt.
import {ABLATION_DEFAULTS, ablationView} from "../../src/analysis/inside-model.js";
import {loadSiteModel, siteModels} from "./site-models.js";

const models = [];
for (const {id, name} of siteModels()) {
  const model = await loadSiteModel(id);
  models.push({id, name, weightsOrigin: model.weightsOrigin, numLayers: model.config.numLayers, numHeads: model.config.numHeads, ...(await ablationView(model, ABLATION_DEFAULTS.prompt))});
}
process.stdout.write(JSON.stringify({defaults: ABLATION_DEFAULTS, models}) + "\n");
