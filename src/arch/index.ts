/** The architecture for a config: `gpt2` or `llama` (SmolLM2 is a Llama). */
import {type ModelConfig} from "./config.ts";
import {gpt2} from "./gpt2.ts";
import {llama} from "./llama.ts";
import type {Architecture} from "./types.ts";

export function architectureFor(config: ModelConfig): Architecture {
  return config.modelType === "gpt2" ? gpt2(config) : llama(config);
}

export {normalizeConfig, eosIds, type ModelConfig} from "./config.ts";
export type {Architecture, Parameter, Component} from "./types.ts";
