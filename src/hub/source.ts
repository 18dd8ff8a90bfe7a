/**
 * Where a model's files come from: a local folder (see node.ts) or a base URL such as a Hugging Face
 * repository. Universal code: it runs in the browser and in Node, and imports nothing from `node:`.
 */
import {WorkbenchError} from "../errors.js";
import {HubError} from "./errors.js";
import {checkHubId, checkRevision, encodeFilePath} from "./ids.js";
import {parseHeader} from "./safetensors.js";

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
  /** Forget a file (a damaged copy left by an older version, found on reading it). */
  remove?(file: string): Promise<void>;
  /**
   * The beginning of a download that failed, kept apart from the files (never read as one) so that a later run
   * resumes it instead of starting over; only for a file the Hub names by sha256, so that a kept beginning is
   * never joined to another version's end. `undefined` clears it.
   */
  keepPartial?(file: string, partial: KeptBeginning | undefined): Promise<void>;
  partial?(file: string): Promise<KeptBeginning | undefined>;
}

/** The first bytes of a file whose download stopped, and what the Hub said the whole file is. */
export interface KeptBeginning {
  bytes: Uint8Array;
  size: number;
  sha256: string;
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

export interface UrlSourceOptions {
  fetch?: typeof fetch;
  /** Where whole files are kept; by default the Cache API when the platform has it; `false` for none. */
  cache?: FileCache | false;
  /**
   * A Hugging Face access token for gated or private models. It goes in an `Authorization: Bearer` header to
   * the source's own origin only: never into a URL, and never to the other origin (the Hub's CDN) that the
   * Hub redirects large files to.
   */
  token?: string;
  /** What a user does to give a token, for the "gated" errors: "set HF_TOKEN" in Node, "paste a token" on a page. */
  tokenHint?: string;
  /** How many times a 429 or a dropped connection is tried again (default 3). */
  retries?: number;
  /** The longest `Retry-After` waited, in seconds (default 30); a longer one fails at once, saying when to try. */
  maxRetryWait?: number;
  /** Told what is happening while nothing else would say: "rate-limited, retrying in 2 s", "resuming at 12 MB". */
  onNotice?: (message: string) => void;
}

/** One answer, after redirects, with what the redirects told about the file. */
interface Fetched {
  response: Response;
  url: string;
  /** The whole file's size, exact: the Hub's X-Linked-Size, or a Content-Range's total. */
  size?: number;
  /** The whole file's sha256, where the Hub gave one (X-Linked-Etag, or an ETag that is a sha256). */
  sha256?: string;
}

/** In Node, redirects are followed by hand: the Hub's X-Linked-* headers are on the 302, and only we decide where the token goes. */
const FOLLOW_BY_HAND =
  typeof (globalThis as {process?: {versions?: {node?: string}}}).process?.versions?.node === "string";
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 10;

/** A source over `${baseUrl}/${file}`. */
export function urlSource(id: string, baseUrl: string, opts: UrlSourceOptions = {}): ModelSource {
  const fetchFn = opts.fetch ?? globalThis.fetch.bind(globalThis);
  const location = baseUrl.replace(/\/+$/, "");
  const origin = new URL(location).origin;
  const cache = opts.cache === false ? undefined : (opts.cache ?? defaultCache(location));
  const retries = opts.retries ?? 3;
  const maxRetryWait = opts.maxRetryWait ?? 30;
  const tokenHint = opts.tokenHint ?? "give a Hugging Face access token";
  const notice = (message: string) => opts.onNotice?.(message);
  const sizes = new Map<string, number>(); // learned from responses, so size() after a read costs nothing
  const urlOf = (file: string) => `${location}/${encodeFilePath(file)}`;

  /** One request, following redirects; the token only ever goes to the source's own origin. */
  async function follow(
    file: string,
    method: string,
    range: string | undefined,
    signal?: AbortSignal
  ): Promise<Fetched> {
    let url = urlOf(file);
    let size: number | undefined;
    let sha256: string | undefined;
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = {};
      if (range) headers.Range = range;
      if (opts.token && new URL(url).origin === origin) headers.Authorization = `Bearer ${opts.token}`;
      let response: Response;
      try {
        response = await fetchFn(url, {method, headers, signal, redirect: FOLLOW_BY_HAND ? "manual" : "follow"});
      } catch (error) {
        if (signal?.aborted) throw signal.reason ?? error;
        const why = (error as Error & {cause?: Error}).cause?.message ?? (error as Error).message;
        throw new HubError(
          "network",
          `${id}/${file}: could not fetch ${url} (${why}): check the network connection, or use a local folder`,
          {cause: error}
        );
      }
      const linkedSize = response.headers.get("x-linked-size");
      if (linkedSize !== null && /^\d+$/.test(linkedSize)) size ??= Number(linkedSize);
      // The Hub's hash of an LFS file: X-Linked-Etag, or the ETag of the Hub's own answer (its redirect carries the
      // sha256 as ETag too). Another origin's ETag (a CDN's, a static host's) is not taken for a sha256 even
      // when it looks like one. In a browser the redirect is followed out of sight, so no hash: size and
      // content are still checked.
      sha256 ??=
        sha256Of(response.headers.get("x-linked-etag")) ??
        (new URL(url).origin === origin ? sha256Of(response.headers.get("etag")) : undefined);
      const next = response.headers.get("location");
      if (FOLLOW_BY_HAND && REDIRECTS.has(response.status) && next) {
        await response.body?.cancel();
        if (hop >= MAX_REDIRECTS)
          throw new HubError("http", `${id}/${file}: more than ${MAX_REDIRECTS} redirects from ${urlOf(file)}`);
        url = new URL(next, url).href;
        continue;
      }
      size ??= totalSize(response);
      if (size !== undefined && response.ok) sizes.set(file, size);
      return {response, url, size, sha256};
    }
  }

  /** `follow`, waiting out 429s (and 503s) as the server asks, a bounded number of times. */
  async function request(file: string, method: string, range?: string, signal?: AbortSignal): Promise<Fetched> {
    for (let attempt = 1; ; attempt++) {
      const fetched = await follow(file, method, range, signal);
      const {status} = fetched.response;
      if (status !== 429 && status !== 503) return fetched;
      await fetched.response.body?.cancel();
      const wait = retryAfter(fetched.response) ?? 2 ** (attempt - 1);
      const host = new URL(fetched.url).host;
      if (attempt > retries || wait > maxRetryWait) {
        throw new HubError(
          "rate-limited",
          `${id}/${file}: rate-limited by ${host} (HTTP ${status}${attempt > 1 ? `, ${attempt} times` : ""}): try again in ${wait} s`
        );
      }
      notice(`${id}/${file}: rate-limited by ${host}, retrying in ${wait} s (${attempt} of ${retries})`);
      await sleep(wait * 1000, signal);
    }
  }

  /** The error for an answer that is not the file, saying what to do. */
  function failure(file: string, {response, url}: Fetched): HubError {
    const where = `${id}/${file}: HTTP ${response.status} from ${url}`;
    const code = response.headers.get("x-error-code");
    if (response.status === 401 || response.status === 403) {
      if (code === "RepoNotFound")
        return new HubError("not-found", `${where}: not found — no repository ${id}, or a private one (${tokenHint})`);
      if (opts.token)
        return new HubError(
          "gated",
          `${where}: the token was refused: check it, and accept ${id}'s conditions on its model page with the account it belongs to`
        );
      return new HubError(
        "gated",
        `${where}: ${id} is gated or private: ${tokenHint}, from an account that has accepted its conditions on the model page`
      );
    }
    if (response.status === 404) {
      const what =
        code === "RepoNotFound"
          ? `no repository ${id} (or no such revision)`
          : code === "EntryNotFound"
            ? `${id} has no file ${file}`
            : "no such file";
      return new HubError("not-found", `${where}: not found — ${what}; check the model id and revision`);
    }
    return new HubError("http", where);
  }

  async function head(file: string): Promise<Fetched | undefined> {
    const fetched = await request(file, "HEAD");
    if (fetched.response.status === 404) return undefined;
    if (!fetched.response.ok) throw failure(file, fetched);
    return fetched;
  }

  /**
   * The whole file. A connection that drops, or a body that ends before the size the Hub announced, is taken
   * up again where it stopped (a Range request) or from the start when the server cannot resume, a bounded
   * number of times. The result is checked — size, sha256 where the Hub gave one, and that a JSON file is JSON
   * and a safetensors file is whole — before it is cached, so a half or wrong file is never taken for the file.
   */
  async function download(file: string, readOpts: ReadOptions): Promise<Uint8Array> {
    const {signal, onProgress} = readOpts;
    const kept = await cache?.partial?.(file);
    let fetched = await request(file, "GET", kept ? `bytes=${kept.bytes.length}-` : undefined, signal);
    const resumed =
      kept &&
      fetched.response.status === 206 &&
      rangeStart(fetched.response) === kept.bytes.length &&
      fetched.sha256 === kept.sha256 &&
      fetched.size === kept.size;
    if (kept && !resumed) {
      // Another version of the file by now, or a server that cannot resume: the kept beginning is no use.
      await cache?.keepPartial?.(file, undefined);
      if (fetched.response.status !== 200) {
        await fetched.response.body?.cancel();
        fetched = await request(file, "GET", undefined, signal);
      }
    }
    if (!fetched.response.ok) throw failure(file, fetched);
    const {size, sha256} = fetched;
    const body = new Body(size ?? plainLength(fetched.response));
    if (resumed) {
      body.prefill(kept.bytes);
      notice(
        `${id}/${file}: resuming at ${mb(kept.bytes.length)} of ${mb(kept.size)}, where an earlier download stopped`
      );
    }
    for (let attempt = 1; ; attempt++) {
      let dropped: unknown;
      try {
        await body.pump(fetched.response, signal, (loaded) => onProgress?.({file, loaded, total: size ?? body.hint}));
      } catch (error) {
        if (signal?.aborted) {
          await keepBeginning(file, body, size, sha256);
          throw signal.reason ?? error;
        }
        dropped = error;
      }
      const short =
        size !== undefined
          ? body.loaded < size
          : body.hint !== undefined && body.loaded < body.hint && !dropped && isPlain(fetched.response);
      if (!dropped && !short) break;
      const why = dropped ? `the connection dropped (${errorText(dropped)})` : `the body ended early`;
      const at = `${mb(body.loaded)}${size !== undefined ? ` of ${mb(size)}` : ""}`;
      if (attempt > retries) {
        const saved = await keepBeginning(file, body, size, sha256);
        const next = saved
          ? "the part that arrived is kept, and the next try resumes there"
          : "nothing was cached; try again";
        throw new HubError(
          dropped ? "network" : "incomplete",
          `${id}/${file}: ${why} at ${at}, ${attempt} times: ${next}`,
          {cause: dropped}
        );
      }
      // Resume where it stopped when the server says it can; a server that answers the Range with 200 sends
      // the whole file again, and we start over.
      const resumable = body.loaded > 0 && fetched.response.headers.get("accept-ranges") === "bytes";
      notice(`${id}/${file}: ${why} at ${at}; ${resumable ? "resuming" : "starting again"} (${attempt} of ${retries})`);
      fetched = await request(file, "GET", resumable ? `bytes=${body.loaded}-` : undefined, signal);
      if (fetched.response.status === 206 && rangeStart(fetched.response) === body.loaded) continue;
      if (fetched.response.status === 200) {
        body.restart();
        continue;
      }
      if (!fetched.response.ok) throw failure(file, fetched);
      throw new HubError(
        "http",
        `${id}/${file}: asked to resume at byte ${body.loaded}, got ${fetched.response.headers.get("content-range") ?? "no Content-Range"}`
      );
    }
    if (resumed) await cache?.keepPartial?.(file, undefined);
    const bytes = body.bytes();
    if (size !== undefined && bytes.length !== size)
      throw new HubError(
        "corrupt",
        `${id}/${file}: received ${bytes.length} bytes, the Hub says the file has ${size}: nothing was cached; try again`
      );
    if (sha256 && globalThis.crypto?.subtle) {
      const got = hex(await globalThis.crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
      if (got !== sha256)
        throw new HubError(
          "corrupt",
          `${id}/${file}: the download's sha256 is ${got}, the Hub's is ${sha256}: it was damaged on the way; nothing was cached; try again`
        );
    }
    checkContent(id, file, bytes);
    onProgress?.({file, loaded: bytes.length, total: bytes.length});
    return bytes;
  }

  /** Keeps what arrived of a file the Hub names by sha256, for the next run to resume; whether it did. */
  async function keepBeginning(
    file: string,
    body: Body,
    size: number | undefined,
    sha256: string | undefined
  ): Promise<boolean> {
    if (!cache?.keepPartial || size === undefined || sha256 === undefined || body.loaded === 0 || body.loaded >= size)
      return false;
    try {
      await cache.keepPartial(file, {bytes: body.bytes(), size, sha256});
      return true;
    } catch {
      return false; // keeping it is a convenience: the download's own error is what the user needs
    }
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
      if (cached && isWhole(file, cached)) {
        readOpts.onProgress?.({file, loaded: cached.length, total: cached.length});
        return cached;
      }
      if (cached) {
        // Cached by a version that did not check downloads: taken out, and fetched again.
        notice(`${id}/${file}: the cached copy is damaged; downloading it again`);
        await cache?.remove?.(file);
      }
      const bytes = await download(file, readOpts);
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
      if (cached) return cached;
      for (let attempt = 1; ; attempt++) {
        const fetched = await request(file, "GET", `bytes=${start}-${end - 1}`, readOpts.signal);
        const {response} = fetched;
        if (response.status === 416) return new Uint8Array(0); // start is past the end of the file
        if (!response.ok) throw failure(file, fetched);
        if (response.status === 206 && rangeStart(response) !== start)
          throw new HubError(
            "http",
            `${id}/${file}: asked for bytes from ${start}, got ${response.headers.get("content-range")}`
          );
        const body = new Body(plainLength(response));
        try {
          await body.pump(response, readOpts.signal, (loaded) =>
            readOpts.onProgress?.({file, loaded, total: body.hint})
          );
        } catch (error) {
          if (readOpts.signal?.aborted) throw readOpts.signal.reason ?? error;
          if (attempt > retries)
            throw new HubError(
              "network",
              `${id}/${file}: the connection dropped reading bytes ${start}–${end} (${errorText(error)}), ${attempt} times; try again`,
              {cause: error}
            );
          notice(`${id}/${file}: the connection dropped; trying again (${attempt} of ${retries})`);
          continue;
        }
        const bytes = body.bytes();
        // A server that ignores Range sends the whole file with 200.
        return response.status === 206 ? bytes : bytes.slice(start, end);
      }
    }
  };
}

/**
 * A body being received: into one buffer when its length is known (a 500 MB checkpoint is not held twice),
 * else chunk by chunk. A compressed body is longer than its Content-Length: then the chunks are gathered too.
 */
class Body {
  loaded = 0;
  private whole?: Uint8Array;
  private chunks: Uint8Array[] = [];

  constructor(readonly hint: number | undefined) {
    this.restart();
  }

  restart(): void {
    this.loaded = 0;
    this.chunks = [];
    this.whole = this.hint !== undefined ? new Uint8Array(this.hint) : undefined;
  }

  /** Start from bytes that arrived before (a kept beginning). */
  prefill(bytes: Uint8Array): void {
    this.restart();
    this.add(bytes, () => {});
  }

  async pump(response: Response, signal: AbortSignal | undefined, progress: (loaded: number) => void): Promise<void> {
    if (!response.body) return this.add(new Uint8Array(await response.arrayBuffer()), progress);
    const reader = response.body.getReader();
    try {
      for (;;) {
        signal?.throwIfAborted();
        const {done, value} = await reader.read();
        if (done) return;
        this.add(value, progress);
      }
    } catch (error) {
      await reader.cancel().catch(() => {});
      throw error;
    }
  }

  private add(value: Uint8Array, progress: (loaded: number) => void): void {
    if (this.whole && this.loaded + value.length <= this.whole.length) this.whole.set(value, this.loaded);
    else {
      if (this.whole) (this.chunks.push(this.whole.subarray(0, this.loaded)), (this.whole = undefined));
      this.chunks.push(value);
    }
    this.loaded += value.length;
    progress(this.loaded);
  }

  bytes(): Uint8Array {
    if (this.whole) return this.loaded === this.whole.length ? this.whole : this.whole.subarray(0, this.loaded);
    return concat(this.chunks, this.loaded);
  }
}

/**
 * Whether a downloaded file is what its name says, before anything keeps it: a JSON file parses (an HTML page
 * sent with 200 by a captive portal or a proxy does not), a safetensors file has a header whose tensors fit.
 */
function checkContent(id: string, file: string, bytes: Uint8Array): void {
  if (file.endsWith(".json")) {
    let text: string;
    try {
      text = new TextDecoder("utf-8", {fatal: true}).decode(bytes);
    } catch (error) {
      throw new HubError(
        "corrupt",
        `${id}/${file}: the download is not UTF-8 text, so not the JSON file: nothing was cached`,
        {cause: error}
      );
    }
    if (/^\s*</.test(text))
      throw new HubError(
        "corrupt",
        `${id}/${file}: the server sent an HTML page instead of the file (a captive portal or a proxy's error page?): nothing was cached; sign in to the network or try again`
      );
    try {
      JSON.parse(text);
    } catch (error) {
      throw new HubError(
        "corrupt",
        `${id}/${file}: invalid JSON (${(error as Error).message}) — truncated or not the model's file: nothing was cached; try again`,
        {cause: error}
      );
    }
  } else if (file.endsWith(".safetensors")) {
    try {
      parseHeader(bytes, file, bytes.length);
    } catch (error) {
      throw new HubError(
        "corrupt",
        `${id}/${file}: the download is not a whole safetensors file (${(error as Error).message}): nothing was cached; try again`,
        {cause: error}
      );
    }
  }
}

function isWhole(file: string, bytes: Uint8Array): boolean {
  try {
    checkContent("", file, bytes);
    return true;
  } catch {
    return false;
  }
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

/** The size of the whole file from a Content-Range (`bytes 0-99/1234`). */
function totalSize(response: Response): number | undefined {
  const match = response.headers.get("content-range")?.match(/\/(\d+)\s*$/);
  if (match) return Number(match[1]);
  return response.status === 200 && isPlain(response) ? plainLength(response) : undefined;
}

/** The Content-Length, where the body is sent as it is (uncompressed: then it is the body's length). */
function plainLength(response: Response): number | undefined {
  const length = response.headers.get("content-length");
  return length !== null && /^\d+$/.test(length) && isPlain(response) ? Number(length) : undefined;
}

/**
 * Whether the body is sent uncompressed. A browser hides Content-Encoding from a cross-origin page unless the
 * server exposes it, so only a body we can see is identity is held to its Content-Length.
 */
function isPlain(response: Response): boolean {
  const encoding = response.headers.get("content-encoding");
  return encoding === null ? !isCrossOriginBrowserResponse(response) : encoding === "identity";
}

function isCrossOriginBrowserResponse(response: Response): boolean {
  return response.type === "cors";
}

function rangeStart(response: Response): number | undefined {
  const match = response.headers.get("content-range")?.match(/^bytes (\d+)-/);
  return match ? Number(match[1]) : undefined;
}

/** The sha256 in an ETag such as `"<64 hex>"` (the Hub's LFS etags); undefined for any other ETag. */
function sha256Of(etag: string | null): string | undefined {
  const match = etag?.match(/^(?:W\/)?"?([0-9a-f]{64})"?$/i);
  return match?.[1].toLowerCase();
}

/** Retry-After in seconds: a number of seconds or an HTTP date. */
function retryAfter(response: Response): number | undefined {
  const value = response.headers.get("retry-after");
  if (value === null) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    signal?.throwIfAborted();
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener("abort", aborted);
      resolve();
    }
    function aborted() {
      clearTimeout(timer);
      reject(signal!.reason);
    }
    signal?.addEventListener("abort", aborted, {once: true});
  });
}

function hex(buffer: ArrayBuffer): string {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}

function errorText(error: unknown): string {
  const e = error as Error & {cause?: Error & {code?: string}};
  return e?.cause?.code ?? e?.cause?.message ?? e?.message ?? String(error);
}

function mb(bytes: number): string {
  return bytes < 1e6 ? `${bytes} bytes` : `${(bytes / 1e6).toFixed(1)} MB`;
}

function defaultCache(baseUrl: string): FileCache | undefined {
  return typeof globalThis.caches === "undefined" ? undefined : browserCache(baseUrl);
}

/** Marks a Cache API entry as a whole, checked file; entries without it (written by older versions) are not trusted. */
const COMPLETE_HEADER = "x-lmw-complete";

/**
 * Whole files kept in the browser's Cache API, under their URL (which holds the endpoint and the revision, so
 * `v2` never answers for `main`). An entry is put only once its body is complete and checked.
 */
export function browserCache(baseUrl: string, name = "lm-workbench"): FileCache {
  const keyOf = (file: string) => `${baseUrl}/${encodeFilePath(file)}`;
  const match = async (file: string) => {
    const cache = await caches.open(name);
    const response = await cache.match(keyOf(file));
    if (response && response.headers.get(COMPLETE_HEADER) !== "1") {
      await cache.delete(keyOf(file));
      return undefined;
    }
    return response;
  };
  return {
    async size(file) {
      const length = (await match(file))?.headers.get("content-length");
      return length == null ? undefined : Number(length);
    },
    async get(file) {
      const response = await match(file);
      if (!response) return undefined;
      const bytes = new Uint8Array(await response.arrayBuffer());
      return bytes.length === Number(response.headers.get("content-length")) ? bytes : undefined;
    },
    async remove(file) {
      await (await caches.open(name)).delete(keyOf(file));
    },
    async put(file, bytes) {
      const headers = {"content-length": String(bytes.length), [COMPLETE_HEADER]: "1"};
      await (await caches.open(name)).put(keyOf(file), new Response(bytes as BodyInit, {headers}));
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
