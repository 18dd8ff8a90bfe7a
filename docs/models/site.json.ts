// The models shipped with the site, for the browser (docs/components/workbench.ts): which names it
// ships, under which folder, and whether trained weights ship (`weights`; else a page loads the model from the
// Hub, or runs it on random weights). `trained`: whether the build precomputed with trained weights.
import {siteModels} from "../data/site-models.js";

const models = siteModels().map(({id, name, files, weights}) => ({id, name, files, weights: files.includes("model.safetensors"), trained: weights}));
process.stdout.write(JSON.stringify({models}, null, 2) + "\n");
