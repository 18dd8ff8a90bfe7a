// The Observable runtime and inspector, served by this site so that a page elsewhere can mount its cells
// without a CDN: import {Runtime, Inspector} from "<site>/embed/runtime.js".
// (Imported dynamically: Framework 1.13 mis-resolves an exported module's static imports from node_modules.)
export const {Runtime} = await import("@observablehq/runtime");
export const {Inspector} = await import("@observablehq/inspector");
