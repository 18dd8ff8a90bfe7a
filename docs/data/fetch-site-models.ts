/**
 * Before `npm run build` (package.json's "prebuild"): fetch the site's models (LMW_SITE_MODELS) from the Hub
 * (LMW_HUB_ENDPOINT, else https://huggingface.co) into the data/models cache, with progress on stderr, so that
 * the data loaders precompute with trained weights. A model already here with its weights is not fetched again.
 * Offline, or for a model the Hub refuses, each one is one line saying what the build does instead — random
 * weights on the config and tokenizer that are here, or leaving the model out — and the build goes on: this
 * script never fails it.
 *
 * Not a data loader (no .json in its name): run as `tsx docs/data/fetch-site-models.ts`.
 */
import {existsSync} from "node:fs";
import path from "node:path";
import {fileURLToPath} from "node:url";
import {HubError} from "../../src/hub/errors.js";
import {fetchModel, type FetchModelOptions} from "../../src/hub/fetch-model.js";
import {checkHubId} from "../../src/hub/ids.js";
import {findModelFolder} from "../../src/hub/node.js";
import {DEFAULT_ENDPOINT} from "../../src/hub/source.js";
import {formatBytes} from "../../src/units.js";
import {DEFAULT_SITE_MODELS} from "./site-models.js";

export interface FetchSiteOptions extends Pick<FetchModelOptions, "endpoint" | "cacheDir" | "fetch"> {
  /** Where the lines go; default stderr. */
  log?: (line: string) => void;
  /** Folders with models by name; default LMW_MODELS then data/models. */
  modelsPath?: string[];
}

export type SiteFetchOutcome = "had" | "fetched" | "random" | "left out";

/** Each model's outcome, by id. Never throws. */
export async function fetchSiteModels(ids: string[], opts: FetchSiteOptions = {}): Promise<Record<string, SiteFetchOutcome>> {
  const log = opts.log ?? ((line: string) => void process.stderr.write(line + "\n"));
  const endpoint = opts.endpoint ?? process.env.LMW_HUB_ENDPOINT ?? DEFAULT_ENDPOINT;
  const outcomes: Record<string, SiteFetchOutcome> = {};
  for (const id of ids) {
    const local = findModelFolder(id, opts.modelsPath);
    if (local && hasWeights(local)) {
      outcomes[id] = "had";
      continue;
    }
    const instead = local ? `the site is built with random weights on the config and tokenizer in ${local}` : "the site is built without it";
    try {
      checkHubId(id);
    } catch {
      log(`site-models: ${id}: not a Hub id and not in a local model folder; ${instead}`);
      outcomes[id] = local ? "random" : "left out";
      continue;
    }
    try {
      const progress = throttled(log, id);
      const fetched = await fetchModel(id, {endpoint, cacheDir: opts.cacheDir, fetch: opts.fetch, onProgress: progress, onNotice: (m) => log(`site-models: ${m}`)});
      log(`site-models: ${id}: fetched from ${endpoint} into ${fetched.folder}${fetched.weights ? "" : " (the Hub has no weights for it)"}`);
      outcomes[id] = fetched.weights ? "fetched" : local ? "random" : "left out";
    } catch (error) {
      log(`site-models: ${id}: not fetched (${reason(error, endpoint)}); ${instead}`);
      outcomes[id] = local ? "random" : "left out";
    }
  }
  return outcomes;
}

function hasWeights(folder: string): boolean {
  return existsSync(path.join(folder, "model.safetensors")) || existsSync(path.join(folder, "model.safetensors.index.json"));
}

/** Why, in a few words: the line is one line. */
function reason(error: unknown, endpoint: string): string {
  if (error instanceof HubError) {
    if (error.code === "network") return `${endpoint} could not be reached: offline?`;
    if (error.code === "gated") return "gated: set HF_TOKEN to a token with access";
    if (error.code === "not-found") return `not found on ${endpoint}`;
    if (error.code === "rate-limited") return "rate-limited by the Hub: build again later";
  }
  return error instanceof Error ? error.message : String(error);
}

/** Download progress as a line every 2 s or so, and one at the end of each file. */
function throttled(log: (line: string) => void, id: string) {
  let last = 0;
  return ({file, loaded, total}: {file: string; loaded: number; total?: number}) => {
    const now = Date.now();
    if (now - last < 2000 && loaded !== total) return;
    last = now;
    log(`site-models: ${id}: ${file} ${formatBytes(loaded, total)}`);
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const ids = (process.env.LMW_SITE_MODELS ?? DEFAULT_SITE_MODELS).split(",").map((s) => s.trim()).filter(Boolean);
  await fetchSiteModels(ids);
}
