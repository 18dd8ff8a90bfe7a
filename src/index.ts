/** The universal API: everything that runs in the browser and in Node alike. */
export {createModel, Model, type CreateOptions, type LoadProgress, type OrtModule} from "./runtime/model.ts";
export type {GenerateOptions, Generation} from "./runtime/generate.ts";
export type {Tensor} from "./runtime/tensor.ts";
export {Tokenizer, type Encoding} from "./tokenizer.ts";
export {WorkbenchError} from "./errors.ts";
export * from "./analysis/index.ts";
export {normalizeConfig, architectureFor, type ModelConfig, type Parameter} from "./arch/index.ts";
export {urlSource, hubUrl, type ModelSource, type Progress} from "./hub/source.ts";
