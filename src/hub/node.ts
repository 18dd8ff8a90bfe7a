/**
 * Node-only sources: a local folder, and `resolveSource`, which turns what a user typed (a folder, a URL or
 * a model name) into a source — looking in the local model folders first, then on the Hub, whose whole-file
 * downloads are kept on disk under `data/models/<org>/<name>/`.
 */
import {existsSync, readFileSync} from "node:fs";
import {open, readFile, rename, mkdir, stat, writeFile, rm} from "node:fs/promises";
import type {FileHandle} from "node:fs/promises";
import path from "node:path";
import {WorkbenchError} from "../errors.js";
import {HubError} from "./errors.js";
import {checkHubId, checkRevision} from "./ids.js";
import {DEFAULT_ENDPOINT, hubUrl, urlSource} from "./source.js";
import type {FileCache} from "./cache.js";
import type {ModelSource, Progress, ReadOptions} from "./source.js";

/** Files are read in pieces of this size, so that progress and cancellation have somewhere to happen. */
const CHUNK_BYTES = 8 << 20;

/**
 * A folder holding this file is a download cache of a Hub repository: partial (files fetched as they were
 * asked for) unless the marker says `"complete": true` (every file of the model fetched and checked, see
 * fetchModel), and not taken for a model folder until then.
 */
export const CACHE_MARKER = ".lmw-hub-cache.json";

/** A source over a local folder. */
export function folderSource(id: string, dir: string): ModelSource {
  const location = path.resolve(dir);
  const pathOf = (file: string) => safeJoin(location, file, id);

  async function withFile<T>(file: string, use: (handle: FileHandle, size: number) => Promise<T>): Promise<T> {
    let handle: FileHandle;
    try {
      handle = await open(pathOf(file), "r");
    } catch (error) {
      throw new WorkbenchError(`${id}/${file}: not found in ${location}`, {cause: error});
    }
    try {
      return await use(handle, (await handle.stat()).size);
    } finally {
      await handle.close();
    }
  }

  return {
    id,
    location,
    async has(file) {
      return (await fileSize(pathOf(file))) !== undefined;
    },
    async size(file) {
      return fileSize(pathOf(file));
    },
    read(file, opts = {}) {
      return withFile(file, (handle, size) => readSpan(handle, file, 0, size, opts));
    },
    readRange(file, start, end, opts = {}) {
      return withFile(file, (handle, size) =>
        readSpan(handle, file, start, Math.min(end, size), {signal: opts.signal})
      );
    }
  };
}

/** Bytes [start, end) of an open file, read chunk by chunk. */
async function readSpan(
  handle: FileHandle,
  file: string,
  start: number,
  end: number,
  opts: ReadOptions
): Promise<Uint8Array> {
  const total = Math.max(0, end - start);
  const bytes = new Uint8Array(total);
  let loaded = 0;
  while (loaded < total) {
    opts.signal?.throwIfAborted();
    const length = Math.min(CHUNK_BYTES, total - loaded);
    const {bytesRead} = await handle.read(bytes, loaded, length, start + loaded);
    if (bytesRead === 0) break; // the file shrank under us
    loaded += bytesRead;
    opts.onProgress?.({file, loaded, total});
  }
  if (total === 0) opts.onProgress?.({file, loaded: 0, total: 0});
  return loaded === total ? bytes : bytes.subarray(0, loaded);
}

async function fileSize(file: string): Promise<number | undefined> {
  try {
    const info = await stat(file);
    return info.isFile() ? info.size : undefined;
  } catch {
    return undefined;
  }
}

async function isFolder(dir: string): Promise<boolean> {
  try {
    return (await stat(dir)).isDirectory();
  } catch {
    return false;
  }
}

/** `dir/file`, refusing names that would leave `dir`. */
function safeJoin(dir: string, file: string, id: string): string {
  const full = path.resolve(dir, file);
  if (!full.startsWith(dir + path.sep)) throw new WorkbenchError(`${id}: file name ${file} leaves the model folder`);
  return full;
}

/**
 * Whole files kept in a folder; written to a temporary name then renamed, so no half file is ever seen. The
 * folder is marked as a partial Hub cache (CACHE_MARKER, `about` in it) unless `mark` is false: a folder that
 * already is a model folder (data/models/gpt2: a config and a tokenizer shipped without weights) stays one.
 */
export function diskCache(
  dir: string,
  about: Record<string, string> = {},
  {mark = true}: {mark?: boolean} = {}
): FileCache {
  const location = path.resolve(dir);
  const pathOf = (file: string) => safeJoin(location, file, dir);
  return {
    size: (file) => fileSize(pathOf(file)),
    async get(file) {
      if ((await fileSize(pathOf(file))) === undefined) return undefined;
      return new Uint8Array(await readFile(pathOf(file)));
    },
    async getRange(file, start, end) {
      if ((await fileSize(pathOf(file))) === undefined) return undefined;
      return folderSource(dir, location).readRange(file, start, end);
    },
    async remove(file) {
      await rm(pathOf(file), {force: true});
    },
    // A kept beginning: <file>.partial and, beside it, what the whole file is (<file>.partial.json). Names no
    // reader asks for, written whole through a temporary name like the files themselves.
    async keepPartial(file, partial) {
      const target = pathOf(file);
      if (!partial) {
        await Promise.all([rm(`${target}.partial`, {force: true}), rm(`${target}.partial.json`, {force: true})]);
        return;
      }
      await mkdir(path.dirname(target), {recursive: true});
      await writeWhole(`${target}.partial`, partial.bytes);
      await writeWhole(
        `${target}.partial.json`,
        JSON.stringify({size: partial.size, sha256: partial.sha256, bytes: partial.bytes.length}) + "\n"
      );
    },
    async partial(file) {
      const target = pathOf(file);
      try {
        const about = JSON.parse(await readFile(`${target}.partial.json`, "utf8")) as {
          size: number;
          sha256: string;
          bytes: number;
        };
        const bytes = new Uint8Array(await readFile(`${target}.partial`));
        return bytes.length === about.bytes && bytes.length < about.size
          ? {bytes, size: about.size, sha256: about.sha256}
          : undefined;
      } catch {
        return undefined;
      }
    },
    async put(file, bytes) {
      const target = pathOf(file);
      await mkdir(path.dirname(target), {recursive: true});
      const marker = path.join(location, CACHE_MARKER);
      if (mark && (await fileSize(marker)) === undefined)
        await writeFile(marker, JSON.stringify({...about, complete: false}, null, 2) + "\n");
      await writeWhole(target, bytes);
    }
  };
}

/** Writes `target` through a temporary name and a rename, so that no half-written file ever has its name. */
async function writeWhole(target: string, bytes: Uint8Array | string): Promise<void> {
  const temporary = `${target}.${process.pid}.${Date.now()}.tmp`;
  try {
    await writeFile(temporary, bytes);
    await rename(temporary, target);
  } catch (error) {
    await rm(temporary, {force: true});
    throw error;
  }
}

export interface ResolveOptions {
  /** A branch, tag or commit; default main. Each revision (and endpoint) has its own cache folder. */
  revision?: string;
  /** The Hub; default `LMW_HUB_ENDPOINT`, else https://huggingface.co. */
  endpoint?: string;
  /** Folders holding models by name; default `LMW_MODELS` (split on ":") then `data/models`. */
  modelsPath?: string[];
  /** Where Hub downloads are kept, as `<cacheDir>/<org>/<name>/`; default `data/models`. */
  cacheDir?: string;
  fetch?: typeof fetch;
  onProgress?: (p: Progress) => void;
  /** A Hugging Face token for gated models; default `HF_TOKEN`. Sent to the Hub endpoint only. */
  token?: string;
  /** Told about retries and resumed downloads ("rate-limited, retrying in 2 s"). */
  onNotice?: (message: string) => void;
}

/** The default model folders: `LMW_MODELS` (split on ":") then `data/models`. */
export function defaultModelsPath(): string[] {
  const fromEnv = (process.env.LMW_MODELS ?? "").split(":").filter(Boolean);
  return [...fromEnv, "data/models"];
}

/**
 * A source for what the user typed: an existing folder, an http(s) URL, a model name found in one of the
 * model folders (as `<dir>/<id>` or `<dir>/<last part of id>`), or else a Hub repository.
 */
export async function resolveSource(id: string, opts: ResolveOptions = {}): Promise<ModelSource> {
  const source = await findSource(id, opts);
  return opts.onProgress ? withProgress(source, opts.onProgress) : source;
}

/** The source, reporting whole-file reads to `onProgress` unless a read asks otherwise. */
function withProgress(source: ModelSource, onProgress: (p: Progress) => void): ModelSource {
  return {...source, read: (file, readOpts) => source.read(file, {onProgress, ...readOpts})};
}

/**
 * The folder holding model `id` in one of the model folders, as `<dir>/<id>` or `<dir>/<last part of id>`:
 * the first with a config.json that is not a partial Hub download cache.
 */
export function findModelFolder(id: string, modelsPath: string[] = defaultModelsPath()): string | undefined {
  return folderCandidates(id, modelsPath).find(
    (dir) => existsSync(path.join(dir, "config.json")) && !isPartialCache(dir)
  );
}

function isPartialCache(dir: string): boolean {
  const marker = path.join(dir, CACHE_MARKER);
  if (!existsSync(marker)) return false;
  try {
    return JSON.parse(readFileSync(marker, "utf8")).complete !== true;
  } catch {
    return true;
  }
}

/**
 * Where the Hub's files of `id` at `revision` from `endpoint` are kept. The main branch of the real Hub is
 * `<cacheDir>/<org>/<name>/`, beside the models shipped there; any other revision or endpoint gets a folder of
 * its own under `<cacheDir>/.hub/`, so that asking for "v2" after "main" never answers with main's files.
 */
export function hubCacheFolder(
  id: string,
  {
    revision = "main",
    endpoint = DEFAULT_ENDPOINT,
    cacheDir = "data/models"
  }: {revision?: string; endpoint?: string; cacheDir?: string} = {}
): string {
  checkHubId(id);
  checkRevision(revision);
  if (revision === "main" && endpoint.replace(/\/+$/, "") === DEFAULT_ENDPOINT) return path.join(cacheDir, id);
  // The endpoint's host and port, and the revision, as single folder names: "127.0.0.1_8080", "refs%2Fpr%2F1".
  const host = new URL(endpoint).host.replace(/[^A-Za-z0-9.-]/g, "_");
  return path.join(cacheDir, ".hub", host, encodeURIComponent(revision), id);
}

/** Where model `id` may sit in the model folders, in the order they are tried. */
function folderCandidates(id: string, modelsPath: string[]): string[] {
  return [...new Set(modelsPath.flatMap((dir) => [path.join(dir, id), path.join(dir, path.basename(id))]))];
}

/** Looks like a path on disk rather than a Hub id: absolute, or starting with ".", "~" or a drive letter. */
const PATH_LIKE = /^(?:\/|\.{1,2}(?:\/|\\|$)|~|[A-Za-z]:[\\/])/;

async function findSource(id: string, opts: ResolveOptions): Promise<ModelSource> {
  const token = opts.token ?? (process.env.HF_TOKEN || undefined);
  const common = {fetch: opts.fetch, onNotice: opts.onNotice, tokenHint: "set HF_TOKEN to a Hugging Face access token"};
  if (/^https?:\/\//.test(id)) return urlSource(id, id, {...common, cache: false});
  if (await isFolder(id)) return folderSource(id, id);
  if (PATH_LIKE.test(id)) {
    const what = (await fileSize(id)) !== undefined ? "is a file, not a model folder" : "does not exist";
    throw new HubError(
      "not-found",
      `${id} ${what}: give a folder holding config.json (and tokenizer.json, model.safetensors), or a Hub id`
    );
  }
  checkHubId(id);

  const modelsPath = opts.modelsPath ?? defaultModelsPath();
  const folder = findModelFolder(id, modelsPath);
  if (folder) return folderSource(id, folder);

  const revision = checkRevision(opts.revision ?? "main");
  const endpoint = opts.endpoint ?? process.env.LMW_HUB_ENDPOINT ?? DEFAULT_ENDPOINT;
  const baseUrl = hubUrl(id, "", {revision, endpoint}).replace(/\/$/, "");
  const cache = diskCache(hubCacheFolder(id, {revision, endpoint, cacheDir: opts.cacheDir}), {id, revision, endpoint});
  // The token goes to the Hub endpoint's origin only (urlSource keeps it off the CDN the Hub redirects to).
  const source = urlSource(id, baseUrl, {...common, cache, token});
  const looked = () => folderCandidates(id, modelsPath).join(", ") || "no model folders";
  let found: boolean;
  try {
    found = (await cache.size("config.json")) !== undefined || (await source.has("config.json"));
  } catch (error) {
    if (error instanceof HubError && error.code === "network")
      throw new HubError(
        "network",
        `model ${id} is not in ${looked()}, and the Hub could not be reached (${error.message})`,
        {cause: error}
      );
    throw error;
  }
  if (!found) throw new HubError("not-found", `model ${id} not found: looked in ${looked()} and ${baseUrl}`);
  return source;
}
