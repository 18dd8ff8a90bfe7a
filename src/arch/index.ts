/** The architecture for a config: `gpt2` or `llama` (SmolLM2 is a Llama). */
import {type ModelConfig} from "./config.js";
import {gpt2} from "./gpt2.js";
import {llama} from "./llama.js";
import type {Architecture} from "./types.js";

export function architectureFor(config: ModelConfig): Architecture {
  return config.modelType === "gpt2" ? gpt2(config) : llama(config);
}

export {normalizeConfig, eosIds, type ModelConfig} from "./config.js";
export type {Architecture, Parameter, Component} from "./types.js";
