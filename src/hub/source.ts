/**
 * Where a model's files come from: a local folder (see node.ts) or a base URL such as a Hugging Face
 * repository. Universal code: it runs in the browser and in Node, and imports nothing from `node:`.
 *
 * A URL source is three parts, each in its own file: http.ts (requests, redirects, retries, where the token
 * goes), download.ts (the resumable, checked download) and cache.ts (what a cache is; the browser's).
 */
import {WorkbenchError} from "../errors.js";
import {defaultCache, type FileCache} from "./cache.js";
import {downloadFile, downloadRange, isWhole} from "./download.js";
import {HubError} from "./errors.js";
import {errorText, hubHttp, type HttpOptions} from "./http.js";
import {checkHubId, checkRevision, encodeFilePath} from "./ids.js";

export interface Progress {
  file: string;
  loaded: number;
  total?: number;
}

export interface ReadOptions {
  onProgress?: (p: Progress) => void;
  signal?: AbortSignal;
}

export interface ModelSource {
  /** What the user passed. */
  readonly id: string;
  /** The resolved folder path or base URL. */
  readonly location: string;
  has(file: string): Promise<boolean>;
  /** The whole file. */
  read(file: string, opts?: ReadOptions): Promise<Uint8Array>;
  /** Bytes [start, end); fewer when the file ends before `end`. */
  readRange(file: string, start: number, end: number, opts?: ReadOptions): Promise<Uint8Array>;
  size(file: string): Promise<number | undefined>;
}

export interface HubOptions {
  revision?: string;
  endpoint?: string;
}

export const DEFAULT_ENDPOINT = "https://huggingface.co";

/** The URL of one file of a Hub repository, each part checked and URL-encoded (`refs/pr/1` → `refs%2Fpr%2F1`). */
export function hubUrl(
  id: string,
  file: string,
  {revision = "main", endpoint = DEFAULT_ENDPOINT}: HubOptions = {}
): string {
  checkHubId(id);
  checkRevision(revision);
  const repo = id.split("/").map(encodeURIComponent).join("/");
  return `${endpoint.replace(/\/+$/, "")}/${repo}/resolve/${encodeURIComponent(revision)}/${encodeFilePath(file)}`;
}

export interface UrlSourceOptions extends HttpOptions {
  /** Where whole files are kept; by default the Cache API when the platform has it; `false` for none. */
  cache?: FileCache | false;
}

/**
 * A source over `${baseUrl}/${file}`: a file is read from the cache when it is there and whole, else downloaded
 * (http.ts says how requests are made, download.ts how a file is checked), and cached once it is checked.
 */
export function urlSource(id: string, baseUrl: string, opts: UrlSourceOptions = {}): ModelSource {
  const location = baseUrl.replace(/\/+$/, "");
  const cache = opts.cache === false ? undefined : (opts.cache ?? defaultCache(location));
  const http = hubHttp(id, location, opts);

  return {
    id,
    location,

    async has(file) {
      if ((await cache?.size(file)) !== undefined) return true;
      return (await http.head(file)) !== undefined;
    },

    async size(file) {
      const cached = await cache?.size(file);
      if (cached !== undefined) return cached;
      if (http.knownSize(file) === undefined) await http.head(file);
      return http.knownSize(file);
    },

    async read(file, readOpts = {}) {
      const cached = await cache?.get(file);
      if (cached && isWhole(file, cached)) {
        readOpts.onProgress?.({file, loaded: cached.length, total: cached.length});
        return cached;
      }
      if (cached) {
        // Cached by a version that did not check downloads: taken out, and fetched again.
        http.notice(`${id}/${file}: the cached copy is damaged; downloading it again`);
        await cache?.remove?.(file);
      }
      const bytes = await downloadFile(http, cache, file, readOpts);
      if (cache) {
        try {
          await cache.put(file, bytes);
        } catch (error) {
          throw new HubError(
            "cache-write",
            `${id}/${file}: downloaded, but it could not be written to the cache (${errorText(error)}): free some space or make the cache folder writable`,
            {cause: error}
          );
        }
      }
      return bytes;
    },

    async readRange(file, start, end, readOpts = {}) {
      if (end <= start) return new Uint8Array(0);
      const cached = (await cache?.getRange?.(file, start, end)) ?? (await cache?.get(file))?.slice(start, end);
      return cached ?? downloadRange(http, file, start, end, readOpts);
    }
  };
}

export async function readText(source: ModelSource, file: string, opts?: ReadOptions): Promise<string> {
  return new TextDecoder().decode(await source.read(file, opts));
}

export async function readJson<T = unknown>(source: ModelSource, file: string, opts?: ReadOptions): Promise<T> {
  const text = await readText(source, file, opts);
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw new WorkbenchError(`${source.id}/${file}: invalid JSON (${(error as Error).message})`, {cause: error});
  }
}
