/**
 * Fetching a whole model from the Hub into the local cache, as `npm run build` does for the site's models:
 * config, tokenizer and weights (one file or shards), each checked before it is kept (see source.ts), then
 * the folder marked complete so that it is found as a model folder from then on. Node only.
 */
import {existsSync} from "node:fs";
import {writeFile} from "node:fs/promises";
import path from "node:path";
import {HubError} from "./errors.js";
import {CACHE_MARKER, diskCache, hubCacheFolder} from "./node.js";
import {DEFAULT_ENDPOINT, hubUrl, readJson, urlSource, type Progress} from "./source.js";

export interface FetchModelOptions {
  /** Default `LMW_HUB_ENDPOINT`, else https://huggingface.co. */
  endpoint?: string;
  revision?: string;
  /** Default data/models. */
  cacheDir?: string;
  /** Default `HF_TOKEN`. */
  token?: string;
  fetch?: typeof fetch;
  onProgress?: (p: Progress) => void;
  onNotice?: (message: string) => void;
}

export interface FetchedModel {
  /** Where the files are: data/models/<id> for the real Hub's main branch. */
  folder: string;
  /** The files fetched or already there. */
  files: string[];
  /** Whether the folder now has trained weights. */
  weights: boolean;
}

const INDEX = "model.safetensors.index.json";

/**
 * Every file the workbench needs of Hub model `id`, into its cache folder. Files already there (a config and
 * tokenizer shipped with the repository, an earlier download) are not fetched again. Throws a HubError
 * (code "network" when the Hub cannot be reached) and leaves nothing half-written.
 */
export async function fetchModel(id: string, opts: FetchModelOptions = {}): Promise<FetchedModel> {
  const revision = opts.revision ?? "main";
  const endpoint = opts.endpoint ?? process.env.LMW_HUB_ENDPOINT ?? DEFAULT_ENDPOINT;
  const folder = hubCacheFolder(id, {revision, endpoint, cacheDir: opts.cacheDir});
  // A folder that already is a model folder (no marker) is filled in place and stays one.
  const shipped = existsSync(path.join(folder, "config.json")) && !existsSync(path.join(folder, CACHE_MARKER));
  const cache = diskCache(folder, {id, revision, endpoint}, {mark: !shipped});
  const base = hubUrl(id, "", {revision, endpoint}).replace(/\/$/, "");
  const source = urlSource(id, base, {
    cache,
    fetch: opts.fetch,
    token: opts.token ?? (process.env.HF_TOKEN || undefined),
    tokenHint: "set HF_TOKEN to a Hugging Face access token",
    onNotice: opts.onNotice
  });
  // Progress for what is downloaded, not for the files already here.
  const read = async (file: string) =>
    source.read(file, (await cache.size(file)) === undefined ? {onProgress: opts.onProgress} : {});

  const files = ["config.json", "tokenizer.json"];
  for (const file of files) await read(file);
  if (await source.has("tokenizer_config.json"))
    (files.push("tokenizer_config.json"), await read("tokenizer_config.json"));
  let weights = true;
  if (await source.has("model.safetensors")) {
    files.push("model.safetensors");
    await read("model.safetensors");
  } else if (await source.has(INDEX)) {
    files.push(INDEX);
    const index = await readJson<{weight_map?: Record<string, string>}>(source, INDEX);
    const shards = [...new Set(Object.values(index.weight_map ?? {}))];
    if (shards.length === 0) throw new HubError("corrupt", `${id}/${INDEX}: weight_map names no shards`);
    for (const shard of shards) (files.push(shard), await read(shard));
  } else {
    weights = false;
  }
  if (!shipped) {
    const marker = path.join(folder, CACHE_MARKER);
    await writeFile(marker, JSON.stringify({id, revision, endpoint, complete: true, files}, null, 2) + "\n");
  }
  return {folder, files, weights};
}
