/** The universal API: everything that runs in the browser and in Node alike. */
export {createModel, Model, type CreateOptions, type LoadProgress} from "./runtime/model.js";
export type {LanguageModel} from "./runtime/language-model.js";
export type {Ort} from "./runtime/ort.js";
export type {GenerateOptions, Generation} from "./runtime/generate.js";
export type {Tensor} from "./runtime/tensor.js";
export {Tokenizer, type Encoding} from "./tokenizer.js";
export {WorkbenchError} from "./errors.js";
export * from "./analysis/index.js";
export {normalizeConfig, architectureFor, type ModelConfig, type Parameter} from "./arch/index.js";
export {urlSource, hubUrl, type ModelSource, type Progress} from "./hub/source.js";
export {
  RemoteModel,
  loadRemoteModel,
  NDIF_PREFIX,
  DEFAULT_RELAY,
  type JobProgress,
  type RemoteLoadOptions
} from "./remote/remote-model.js";
