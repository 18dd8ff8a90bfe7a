/**
 * HTTP to one model's base URL, and its policy: redirects followed by hand in Node (so the Hub's X-Linked-*
 * headers on the 302 are read, and so that we alone decide where the token goes), 429 and 503 waited out as
 * Retry-After says, a bounded number of times, and the token sent in an `Authorization` header to the source's
 * own origin only: never in a URL, never to the CDN the Hub redirects large files to. Errors name the model,
 * the file, the status and what to do. Universal: imports nothing from `node:`.
 */
import {HubError} from "./errors.js";
import {encodeFilePath} from "./ids.js";

export interface HttpOptions {
  fetch?: typeof fetch;
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
export interface Fetched {
  response: Response;
  url: string;
  /** The whole file's size, exact: the Hub's X-Linked-Size, or a Content-Range's total. */
  size?: number;
  /** The whole file's sha256, where the Hub gave one (X-Linked-Etag, or an ETag that is a sha256). */
  sha256?: string;
}

/** Requests for the files of one model, under one base URL. */
export interface Http {
  /** The model id, for messages. */
  readonly id: string;
  /** How many times a failed transfer is tried again. */
  readonly retries: number;
  notice(message: string): void;
  /** One request, redirects followed and 429s waited out; any other status is the caller's to judge. */
  request(file: string, method: string, range?: string, signal?: AbortSignal): Promise<Fetched>;
  /** HEAD: undefined for a 404, a HubError for any other failure. */
  head(file: string): Promise<Fetched | undefined>;
  /** The error for an answer that is not the file, saying what to do. */
  failure(file: string, fetched: Fetched): HubError;
  /** The whole file's size, when an answer has told it (so `size()` after a read costs nothing). */
  knownSize(file: string): number | undefined;
}

/** In Node, redirects are followed by hand: the Hub's X-Linked-* headers are on the 302, and only we decide where the token goes. */
const FOLLOW_BY_HAND =
  typeof (globalThis as {process?: {versions?: {node?: string}}}).process?.versions?.node === "string";
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 10;

/** Requests for `${location}/${file}` on behalf of model `id`. */
export function hubHttp(id: string, location: string, opts: HttpOptions = {}): Http {
  const fetchFn = opts.fetch ?? globalThis.fetch.bind(globalThis);
  const origin = new URL(location).origin;
  const retries = opts.retries ?? 3;
  const maxRetryWait = opts.maxRetryWait ?? 30;
  const tokenHint = opts.tokenHint ?? "give a Hugging Face access token";
  const notice = (message: string) => opts.onNotice?.(message);
  const sizes = new Map<string, number>();
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

  return {id, retries, notice, request, head, failure, knownSize: (file) => sizes.get(file)};
}

/** The first byte a 206 answer holds, from its Content-Range (`bytes 100-199/1234` → 100). */
export function rangeStart(response: Response): number | undefined {
  const match = response.headers.get("content-range")?.match(/^bytes (\d+)-/);
  return match ? Number(match[1]) : undefined;
}

/** The Content-Length, where the body is sent as it is (uncompressed: then it is the body's length). */
export function plainLength(response: Response): number | undefined {
  const length = response.headers.get("content-length");
  return length !== null && /^\d+$/.test(length) && isPlain(response) ? Number(length) : undefined;
}

/**
 * Whether the body is sent uncompressed. A browser hides Content-Encoding from a cross-origin page unless the
 * server exposes it, so only a body we can see is identity is held to its Content-Length.
 */
export function isPlain(response: Response): boolean {
  const encoding = response.headers.get("content-encoding");
  const crossOriginInBrowser = response.type === "cors";
  return encoding === null ? !crossOriginInBrowser : encoding === "identity";
}

/** What went wrong with a request, shortly: the system's code (ECONNRESET) where there is one. */
export function errorText(error: unknown): string {
  const e = error as Error & {cause?: Error & {code?: string}};
  return e?.cause?.code ?? e?.cause?.message ?? e?.message ?? String(error);
}

/** The size of the whole file from a Content-Range (`bytes 0-99/1234`), or a plain 200's Content-Length. */
function totalSize(response: Response): number | undefined {
  const match = response.headers.get("content-range")?.match(/\/(\d+)\s*$/);
  if (match) return Number(match[1]);
  return response.status === 200 && isPlain(response) ? plainLength(response) : undefined;
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
