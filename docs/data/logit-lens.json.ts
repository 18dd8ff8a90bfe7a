// "Inside the model": the logit lens of the default prompt for each site model (top 5 per layer and position).
import {LENS_DEFAULTS, lensView} from "../../src/analysis/inside-model.js";
import {perSiteModel} from "./site-models.js";

const models = await perSiteModel(async (model) => ({
  numLayers: model.config.numLayers,
  ...(await lensView(model, LENS_DEFAULTS.prompt, LENS_DEFAULTS.k))
}));
process.stdout.write(JSON.stringify({defaults: LENS_DEFAULTS, models}) + "\n");
