// The next-token cell (src/cells/next-token.ts) as a module of this site: `import {define} from
// "<site>/embed/next-token.js"`. Inputs: model, prompt, k; shows nextTokens.
export {default as define} from "../src/cells/next-token.js";
