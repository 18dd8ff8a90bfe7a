// The models shipped with the site, for the browser (docs/components/workbench.ts): which names it
// ships, under which folder, and whether trained weights ship (`weights`; else a page loads the model from the
// Hub, or runs it on random weights). Weights the build had but did not ship (over 50 MB) count as not shipped.
import {siteModels} from "../data/site-models.js";

const models = siteModels().map(({id, name, files}) => ({
  id,
  name,
  files,
  weights: files.includes("model.safetensors")
}));
process.stdout.write(JSON.stringify({models}, null, 2) + "\n");
