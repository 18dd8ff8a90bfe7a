/**
 * The registry: one family per `model_type`. Adding a family is one file in this folder and one line here (and,
 * only for a family whose modules are not named as Llama's, its line in roles.ts: the hook names pages read with no
 * graph code loaded).
 */
import {WorkbenchError} from "../errors.js";
import {type ModelConfig} from "./config.js";
import {gemma3} from "./gemma3.js";
import {gpt2} from "./gpt2.js";
import {gptNeox} from "./gpt-neox.js";
import {llama} from "./llama.js";
import {mistral} from "./mistral.js";
import {qwen2} from "./qwen2.js";
import {qwen3} from "./qwen3.js";
import {rolesFor} from "./roles.js";
import type {Architecture, Family} from "./types.js";

// Each family takes back only the configs its own normalize() made, so its config type is its own business:
// `any` here stands for "whichever config type this family reads".
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const FAMILIES: Family<any>[] = [gpt2, llama, mistral, qwen2, qwen3, gptNeox, gemma3];

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const byModelType = new Map<string, Family<any>>(FAMILIES.flatMap((f) => f.modelTypes.map((t) => [t, f] as const)));

/** The `model_type` values lm-workbench runs. */
export const MODEL_TYPES: readonly string[] = [...byModelType.keys()];

function familyOf(modelType: unknown, file = "config.json"): Family {
  const family = typeof modelType === "string" ? byModelType.get(modelType) : undefined;
  if (!family) {
    throw new WorkbenchError(
      `${file}: model_type ${JSON.stringify(modelType)} is not supported; lm-workbench runs ${MODEL_TYPES.map((t) => JSON.stringify(t)).join(", ")} checkpoints`
    );
  }
  return family;
}

/** config.json, checked and read into one shape by its family. */
export function normalizeConfig(raw: unknown, file = "config.json"): ModelConfig {
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw new WorkbenchError(`${file}: not a JSON object`);
  const c = raw as Record<string, unknown>;
  return familyOf(c.model_type, file).normalize(c, file);
}

/** The architecture for a config that `normalizeConfig` read. */
export function architectureFor(config: ModelConfig): Architecture {
  return familyOf(config.modelType).architecture(config);
}

// Each family builds its graph with the names roles.ts gives its model_type (which pages read without graph code).
for (const family of FAMILIES) {
  for (const type of family.modelTypes) {
    if (rolesFor({modelType: type}) !== family.roles)
      throw new Error(`src/arch/roles.ts: model_type ${type} is not named as its family's modules are (OWN_NAMES)`);
  }
}

export {rolesFor} from "./roles.js";

export {eosIds, type ModelConfig} from "./config.js";
export type {Architecture, Parameter, Component, Roles, Family} from "./types.js";
