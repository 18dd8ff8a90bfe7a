// The logit-lens cell (src/cells/lens.ts) as a module of this site: `import {define} from
// "<site>/embed/lens.js"`. Inputs: model, prompt, k; shows heatmap.
export {default as define} from "../src/cells/lens.js";
