// The models shipped with the site, for the browser (docs/components/workbench.ts): which names it
// ships, under which folder, and whether trained weights ship (else the site runs them with random weights).
import {siteModels} from "../data/site-models.js";

const models = siteModels().map(({id, name, files, weights}) => ({id, name, files, weights}));
process.stdout.write(JSON.stringify({models}, null, 2) + "\n");
