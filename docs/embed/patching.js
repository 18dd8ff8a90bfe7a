// The activation-patching cell (src/cells/patching.ts) as a module of this site: `import {define} from
// "<site>/embed/patching.js"`. Inputs: model, clean, corrupt, answers, kind; shows heatmap.
export {default as define} from "../src/cells/patching.js";
