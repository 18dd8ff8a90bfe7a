/**
 * The models the site is built with, for the config and the data loaders (Node only; not a data loader).
 *
 *   siteModels()          → [{id, name, folder, files, weights}] for each model in LMW_SITE_MODELS
 *                           (comma-separated; default gpt2,HuggingFaceTB/SmolLM2-135M,stories260K) that
 *                           is found in a local model folder (LMW_MODELS, then data/models, and the Hub
 *                           download `npm run build` made: fetch-site-models.ts); others are skipped with
 *                           a warning on stderr. A folder with trained weights is preferred.
 *   siteModel(name)       → the entry whose `name` (the URL folder: last part of the id) is `name`.
 *   loadSiteModel(id)     → the model on onnxruntime-node: its checkpoint when it has weights, else random
 *                           weights (seed 0); `model.weightsOrigin` says which. Cached per process.
 *   precomputeAll(pages)  → every page's precomputed file (docs/data/precompute/), each site model loaded
 *                           once: per page, one entry per site model, {id, name, weightsOrigin} (what the
 *                           page kit, docs/components/kit.ts, finds an entry by and labels it with) and what
 *                           the page computes from the model.
 *
 * The files a model ships with the site (docs/models/<name>/…) are copied byte for byte from `folder`. Trained
 * weights over SHIP_WEIGHTS_BYTES (gpt2: 548 MB, SmolLM2-135M: 269 MB) are left out unless LMW_SHIP_WEIGHTS=1:
 * a static host has limits (GitHub Pages: 100 MB a file, 1 GB a site), and the pages load those weights from
 * the Hub at run time; the precomputed numbers still come from them, here.
 */
import {existsSync, readFileSync, statSync} from "node:fs";
import path from "node:path";
import {CACHE_MARKER, findModelFolder, hubCacheFolder} from "../../src/hub/node.js";
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
  /** The files shipped (those of MODEL_FILES that the folder has; large weights only with LMW_SHIP_WEIGHTS=1). */
  files: string[];
  /** Whether the build has trained weights (model.safetensors); if not, the numbers use random weights. */
  weights: boolean;
}

/** Trained weights larger than this stay out of dist/ (the pages fetch them from the Hub) unless LMW_SHIP_WEIGHTS=1. */
export const SHIP_WEIGHTS_BYTES = 50e6;

let cached: SiteModel[] | undefined;

export function siteModels(): SiteModel[] {
  if (cached) return cached;
  const ids = (process.env.LMW_SITE_MODELS ?? DEFAULT_SITE_MODELS).split(",").map((s) => s.trim()).filter(Boolean);
  cached = [];
  const ship = process.env.LMW_SHIP_WEIGHTS === "1";
  for (const id of ids) {
    const folder = siteFolder(id);
    if (!folder) {
      process.stderr.write(`site-models: ${id} is not in any local model folder (LMW_MODELS=${process.env.LMW_MODELS ?? ""}); the site is built without it\n`);
      continue;
    }
    const weightsFile = path.join(folder, "model.safetensors");
    const weights = existsSync(weightsFile);
    const shipped = (f: string) => f !== "model.safetensors" || ship || statSync(weightsFile).size <= SHIP_WEIGHTS_BYTES;
    const files = MODEL_FILES.filter((f) => existsSync(path.join(folder, f)) && shipped(f));
    cached.push({id, name: path.basename(id), folder, files, weights});
  }
  return cached;
}

/**
 * Where model `id` is on this machine: a model folder (LMW_MODELS, data/models) or a complete Hub download for
 * LMW_HUB_ENDPOINT (fetch-site-models.ts), the one with trained weights first.
 */
function siteFolder(id: string): string | undefined {
  const local = findModelFolder(id);
  let downloaded: string | undefined;
  try {
    downloaded = hubCacheFolder(id, {endpoint: process.env.LMW_HUB_ENDPOINT || undefined});
  } catch {
    downloaded = undefined; // not a Hub id: only local folders can have it
  }
  // A download is usable when marked complete, or when it went into a model folder shipped without a marker
  // (data/models/gpt2: the real Hub's main branch, filled in place).
  const complete = (dir: string | undefined) => {
    if (dir === undefined || !existsSync(path.join(dir, "config.json"))) return false;
    if (!existsSync(path.join(dir, CACHE_MARKER))) return true;
    try {
      return JSON.parse(readFileSync(path.join(dir, CACHE_MARKER), "utf8")).complete === true;
    } catch {
      return false;
    }
  };
  const candidates = [local, complete(downloaded) ? downloaded : undefined].filter((d): d is string => d !== undefined);
  return candidates.find((dir) => existsSync(path.join(dir, "model.safetensors"))) ?? candidates[0];
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

/** Which model a precomputed entry is for, and its weights: what the page kit finds entries by and labels them with. */
export interface PrecomputedFor {
  id: string;
  name: string;
  weightsOrigin: string;
}

/**
 * One page's precomputed file, `data/precomputed/<file>` on the site (docs/data/precompute/<page>.ts declares it;
 * precomputed.zip.ts makes them all): `head`, the same for every model, then under `list` one entry per site
 * model, {id, name, weightsOrigin} and what `compute` makes of that model.
 */
export interface PagePrecompute<T extends object = object> {
  file: string;
  head?: Record<string, unknown>;
  /** The entries' key in the file (default "models"). */
  list?: string;
  compute(model: Model): Promise<T> | T;
}

/** Declares a page's precomputed file (typed: `compute`'s model is a `Model`). */
export const precompute = <T extends object>(page: PagePrecompute<T>): PagePrecompute<T> => page;

/**
 * Every page's file, computed with each site model loaded once: the model outer (loading a full-size one takes
 * most of the time), the pages inner, and the model released before the next is loaded. Progress on stderr.
 */
export async function precomputeAll(pages: PagePrecompute[]): Promise<Map<string, object>> {
  const entries = new Map(pages.map((page) => [page, [] as object[]]));
  for (const {id, name} of siteModels()) {
    let started = performance.now();
    const seconds = () => `${((performance.now() - started) / 1000).toFixed(1)} s`;
    const model = await loadSiteModel(id);
    process.stderr.write(`precomputed: ${id} (${model.weightsOrigin}) loaded in ${seconds()}\n`);
    try {
      for (const page of pages) {
        started = performance.now();
        entries.get(page)!.push({id, name, weightsOrigin: model.weightsOrigin, ...(await page.compute(model))});
        process.stderr.write(`precomputed: ${id}: ${page.file} in ${seconds()}\n`);
      }
    } finally {
      loaded.delete(siteModel(id).id);
      await model.dispose();
    }
  }
  return new Map(pages.map((page) => [page.file, {...page.head, [page.list ?? "models"]: entries.get(page)}]));
}
