// The site's models as the anatomy pages describe them: config (without the raw file), parameter counts,
// the PyTorch-style module tree, the parameter list, and where the weights come from.
import {loadSiteModel, siteModels} from "./site-models.js";

const models = [];
for (const {id} of siteModels()) {
  const model = await loadSiteModel(id);
  const {raw: _raw, ...config} = model.config;
  models.push({
    id,
    config,
    counts: model.counts(),
    moduleTree: model.moduleTree(),
    parameters: model.parameters(),
    weightsOrigin: model.weightsOrigin
  });
}
process.stdout.write(JSON.stringify({models}) + "\n");
