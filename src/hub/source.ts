/**
 * Where a model's files come from: a local folder (see node.ts) or a base URL such as a Hugging Face
 * repository. Universal code: it runs in the browser and in Node, and imports nothing from `node:`.
 */
import {WorkbenchError} from "../errors.js";

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

/** A store of whole files, keyed by file name: the browser's Cache API, or a folder on disk in Node. */
export interface FileCache {
  /** The size of the cached file, undefined when it is not cached. */
  size(file: string): Promise<number | undefined>;
  get(file: string): Promise<Uint8Array | undefined>;
  /** Bytes [start, end) of a cached file, when the cache can read part of a file. */
  getRange?(file: string, start: number, end: number): Promise<Uint8Array | undefined>;
  put(file: string, bytes: Uint8Array): Promise<void>;
}

export interface HubOptions {
  revision?: string;
  endpoint?: string;
}

/** The URL of one file of a Hub repository. */
export function hubUrl(id: string, file: string, {revision = "main", endpoint = "https://huggingface.co"}: HubOptions = {}): string {
  return `${endpoint.replace(/\/+$/, "")}/${id}/resolve/${revision}/${file}`;
}

export interface UrlSourceOptions {
  fetch?: typeof fetch;
  /** Where whole files are kept; by default the Cache API when the platform has it; `false` for none. */
  cache?: FileCache | false;
}

/** A source over `${baseUrl}/${file}`. */
export function urlSource(id: string, baseUrl: string, opts: UrlSourceOptions = {}): ModelSource {
  const fetchFn = opts.fetch ?? globalThis.fetch.bind(globalThis);
  const location = baseUrl.replace(/\/+$/, "");
  const cache = opts.cache === false ? undefined : (opts.cache ?? defaultCache(location));
  const sizes = new Map<string, number>(); // learned from responses, so size() after a read costs nothing
  const urlOf = (file: string) => `${location}/${file}`;

  async function request(file: string, init: RequestInit): Promise<Response> {
    const url = urlOf(file);
    let response: Response;
    try {
      response = await fetchFn(url, init);
    } catch (error) {
      if (init.signal?.aborted) throw init.signal.reason ?? error;
      throw new WorkbenchError(`${id}/${file}: could not fetch ${url} (${(error as Error).message})`, {cause: error});
    }
    const total = totalSize(response);
    if (total !== undefined) sizes.set(file, total);
    return response;
  }

  function failure(file: string, response: Response): WorkbenchError {
    return new WorkbenchError(`${id}/${file}: HTTP ${response.status} from ${urlOf(file)}`);
  }

  async function head(file: string): Promise<Response | undefined> {
    const response = await request(file, {method: "HEAD"});
    if (response.status === 404) return undefined;
    if (!response.ok) throw failure(file, response);
    return response;
  }

  return {
    id,
    location,

    async has(file) {
      if ((await cache?.size(file)) !== undefined) return true;
      return (await head(file)) !== undefined;
    },

    async size(file) {
      const cached = await cache?.size(file);
      if (cached !== undefined) return cached;
      if (!sizes.has(file)) await head(file);
      return sizes.get(file);
    },

    async read(file, readOpts = {}) {
      const cached = await cache?.get(file);
      if (cached) {
        readOpts.onProgress?.({file, loaded: cached.length, total: cached.length});
        return cached;
      }
      const response = await request(file, {signal: readOpts.signal});
      if (!response.ok) throw failure(file, response);
      const bytes = await readBody(response, file, readOpts);
      await cache?.put(file, bytes);
      return bytes;
    },

    async readRange(file, start, end, readOpts = {}) {
      if (end <= start) return new Uint8Array(0);
      const cached = (await cache?.getRange?.(file, start, end)) ?? (await cache?.get(file))?.slice(start, end);
      if (cached) return cached;
      const headers = {Range: `bytes=${start}-${end - 1}`};
      const response = await request(file, {headers, signal: readOpts.signal});
      if (response.status === 416) return new Uint8Array(0); // start is past the end of the file
      if (!response.ok) throw failure(file, response);
      const bytes = await readBody(response, file, readOpts);
      // A server that ignores Range sends the whole file with 200.
      return response.status === 206 ? bytes : bytes.slice(start, end);
    }
  };
}

/** Reads a response body chunk by chunk, reporting progress and stopping when the signal aborts. */
async function readBody(response: Response, file: string, {onProgress, signal}: ReadOptions): Promise<Uint8Array> {
  const length = response.headers.get("content-length");
  const total = length === null ? undefined : Number(length);
  if (!response.body) {
    const bytes = new Uint8Array(await response.arrayBuffer());
    onProgress?.({file, loaded: bytes.length, total: bytes.length});
    return bytes;
  }
  const reader = response.body.getReader();
  // With the size known, chunks go straight into one buffer: a 500 MB checkpoint is not held twice.
  // (A compressed body is longer than its Content-Length: then chunks are gathered and joined.)
  let whole = total !== undefined && !response.headers.get("content-encoding") ? new Uint8Array(total) : undefined;
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  try {
    for (;;) {
      signal?.throwIfAborted();
      const {done, value} = await reader.read();
      if (done) break;
      if (whole && loaded + value.length <= whole.length) whole.set(value, loaded);
      else {
        if (whole) chunks.push(whole.subarray(0, loaded)), (whole = undefined);
        chunks.push(value);
      }
      loaded += value.length;
      onProgress?.({file, loaded, total});
    }
  } catch (error) {
    await reader.cancel().catch(() => {});
    throw error;
  }
  if (loaded === 0) onProgress?.({file, loaded: 0, total});
  // A body shorter than its Content-Length comes back as what arrived; the safetensors checks name the gap.
  if (whole) return loaded === whole.length ? whole : whole.subarray(0, loaded);
  return concat(chunks, loaded);
}

function concat(chunks: Uint8Array[], length: number): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/** The size of the whole file: from Content-Range (`bytes 0-99/1234`) or, for a plain 200, Content-Length. */
function totalSize(response: Response): number | undefined {
  const range = response.headers.get("content-range");
  const match = range?.match(/\/(\d+)\s*$/);
  if (match) return Number(match[1]);
  const length = response.headers.get("content-length");
  if (response.status === 200 && length !== null) return Number(length);
  return undefined;
}

function defaultCache(baseUrl: string): FileCache | undefined {
  return typeof globalThis.caches === "undefined" ? undefined : browserCache(baseUrl);
}

/** Whole files kept in the browser's Cache API, under their URL. */
export function browserCache(baseUrl: string, name = "lm-workbench"): FileCache {
  const match = async (file: string) => (await caches.open(name)).match(`${baseUrl}/${file}`);
  return {
    async size(file) {
      const length = (await match(file))?.headers.get("content-length");
      return length == null ? undefined : Number(length);
    },
    async get(file) {
      const response = await match(file);
      return response ? new Uint8Array(await response.arrayBuffer()) : undefined;
    },
    async put(file, bytes) {
      const headers = {"content-length": String(bytes.length)};
      await (await caches.open(name)).put(`${baseUrl}/${file}`, new Response(bytes as BodyInit, {headers}));
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
