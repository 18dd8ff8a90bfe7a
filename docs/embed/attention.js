// The attention-pattern cell (src/cells/attention.ts) as a module of this site: `import {define} from
// "<site>/embed/attention.js"`. Inputs: model, prompt, layer, head; shows heatmap.
export {default as define} from "../src/cells/attention.js";
