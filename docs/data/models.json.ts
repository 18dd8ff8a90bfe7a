// The site's models as the anatomy pages describe them: config (without the raw file), parameter counts,
// the PyTorch-style module tree, the parameter list, and where the weights come from. From config and
// safetensors headers alone: no weights are read and no session is made.
import {folderSource} from "../../src/hub/node.js";
import {describeModel} from "../../src/runtime/describe.js";
import {randomOrigin} from "../../src/runtime/weights.js";
import {SITE_SEED, siteModels} from "./site-models.js";

const models = [];
for (const {id, folder, weights} of siteModels()) {
  const {config, counts, moduleTree, parameters} = await describeModel(folderSource(id, folder));
  // What the other loaders run a model on (loadSiteModel): its checkpoint, else random weights.
  models.push({id, config, counts, moduleTree, parameters, weightsOrigin: weights ? "checkpoint" : randomOrigin(SITE_SEED)});
}
process.stdout.write(JSON.stringify({models}) + "\n");
