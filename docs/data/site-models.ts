/**
 * The models the site is built with, for the config and the data loaders (Node only; not a data loader).
 *
 *   siteModels()          → [{id, name, folder, files, weights}] for each model in LMW_SITE_MODELS
 *                           (comma-separated; default gpt2,HuggingFaceTB/SmolLM2-135M,stories260K) that
 *                           is found in a local model folder (LMW_MODELS, then data/models); others are
 *                           skipped with a warning on stderr.
 *   siteModel(name)       → the entry whose `name` (the URL folder: last part of the id) is `name`.
 *   loadSiteModel(id)     → the model on onnxruntime-node: its checkpoint when it has weights, else random
 *                           weights (seed 0); `model.weightsOrigin` says which. Cached per process.
 *
 * The files a model ships with the site (docs/models/<name>/…) are copied byte for byte from `folder`.
 */
import {existsSync} from "node:fs";
import path from "node:path";
import {findModelFolder} from "../../src/hub/node.js";
import type {Model} from "../../src/runtime/model.js";

export const DEFAULT_SITE_MODELS = "gpt2,HuggingFaceTB/SmolLM2-135M,stories260K";

/** The files a model can ship with: config and tokenizer always, weights where the folder has them. */
export const MODEL_FILES = ["config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"] as const;

export interface SiteModel {
  /** As the reader types it: "HuggingFaceTB/SmolLM2-135M". */
  id: string;
  /** The folder under /models/ on the site: "SmolLM2-135M". */
  name: string;
  /** Where the files are on this machine. */
  folder: string;
  /** The files shipped (those of MODEL_FILES that the folder has). */
  files: string[];
  /** Whether trained weights ship (model.safetensors); if not, the numbers use random weights. */
  weights: boolean;
}

let cached: SiteModel[] | undefined;

export function siteModels(): SiteModel[] {
  if (cached) return cached;
  const ids = (process.env.LMW_SITE_MODELS ?? DEFAULT_SITE_MODELS).split(",").map((s) => s.trim()).filter(Boolean);
  cached = [];
  for (const id of ids) {
    const folder = findModelFolder(id);
    if (!folder) {
      process.stderr.write(`site-models: ${id} is not in any local model folder (LMW_MODELS=${process.env.LMW_MODELS ?? ""}); the site is built without it\n`);
      continue;
    }
    const files = MODEL_FILES.filter((f) => existsSync(path.join(folder, f)));
    cached.push({id, name: path.basename(id), folder, files, weights: files.includes("model.safetensors")});
  }
  return cached;
}

export function siteModel(name: string): SiteModel {
  const model = siteModels().find((m) => m.name === name || m.id === name);
  if (!model) throw new Error(`${name} is not one of the site's models (${siteModels().map((m) => m.id).join(", ")})`);
  return model;
}

/** The site's paths for Framework's `dynamicPaths`: every shipped file of every site model. */
export function siteModelPaths(): string[] {
  return siteModels().flatMap((m) => m.files.map((f) => `/models/${m.name}/${f}`));
}

const loaded = new Map<string, Promise<Model>>();

/** The seed of the random weights a site model without a checkpoint runs on. */
export const SITE_SEED = 0;

/** The model on onnxruntime-node: checkpoint if it has weights, else random weights (seed SITE_SEED). */
export function loadSiteModel(id: string): Promise<Model> {
  const entry = siteModel(id);
  let model = loaded.get(entry.id);
  if (!model) {
    model = import("../../src/node.js").then(({loadModel}) =>
      // By id (so model.id reads "gpt2", not a path), from the folder found above.
      loadModel(entry.id, {modelsPath: [path.dirname(entry.folder)], ...(entry.weights ? {} : {init: "random" as const, seed: SITE_SEED})})
    );
    loaded.set(entry.id, model);
  }
  return model;
}
