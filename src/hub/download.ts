/**
 * Downloading a file so that what is kept is the file: a connection that drops, or a body that ends early, is
 * taken up again where it stopped (a Range request), a bounded number of times; a download that still fails
 * leaves its beginning (`.partial` on disk) for the next run to resume, when the Hub names the file by sha256.
 * What arrived is checked — the size and sha256 the Hub gave, that a JSON file parses and that a safetensors
 * file's tensors fit — before anyone caches it, so nothing half-written or wrong is ever taken for the file.
 * Universal: imports nothing from `node:`.
 */
import {formatBytes} from "../units.js";
import {HubError} from "./errors.js";
import type {FileCache} from "./cache.js";
import {errorText, isPlain, plainLength, rangeStart, type Http} from "./http.js";
import {parseHeader} from "./safetensors.js";
import type {ReadOptions} from "./source.js";

/**
 * The whole file, checked (size, sha256 where the Hub gave one, content), resumed from a beginning `cache`
 * kept when an earlier download stopped. Not put in the cache: that is the caller's, once this returns.
 */
export async function downloadFile(
  http: Http,
  cache: FileCache | undefined,
  file: string,
  {signal, onProgress}: ReadOptions = {}
): Promise<Uint8Array> {
  const {id, retries} = http;
  const kept = await cache?.partial?.(file);
  let fetched = await http.request(file, "GET", kept ? `bytes=${kept.bytes.length}-` : undefined, signal);
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
      fetched = await http.request(file, "GET", undefined, signal);
    }
  }
  if (!fetched.response.ok) throw http.failure(file, fetched);
  const {size, sha256} = fetched;
  const body = new Body(size ?? plainLength(fetched.response));
  if (resumed) {
    body.prefill(kept.bytes);
    http.notice(
      `${id}/${file}: resuming at ${formatBytes(kept.bytes.length, kept.size)}, where an earlier download stopped`
    );
  }

  /** Keeps what arrived of a file the Hub names by sha256, for the next run to resume; whether it did. */
  async function keepBeginning(): Promise<boolean> {
    if (!cache?.keepPartial || size === undefined || sha256 === undefined || body.loaded === 0 || body.loaded >= size)
      return false;
    try {
      await cache.keepPartial(file, {bytes: body.bytes(), size, sha256});
      return true;
    } catch {
      return false; // keeping it is a convenience: the download's own error is what the user needs
    }
  }

  for (let attempt = 1; ; attempt++) {
    let dropped: unknown;
    try {
      await body.pump(fetched.response, signal, (loaded) => onProgress?.({file, loaded, total: size ?? body.hint}));
    } catch (error) {
      if (signal?.aborted) {
        await keepBeginning();
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
    const at = formatBytes(body.loaded, size);
    if (attempt > retries) {
      const next = (await keepBeginning())
        ? "the part that arrived is kept, and the next try resumes there"
        : "nothing was cached; try again";
      throw new HubError(
        dropped ? "network" : "incomplete",
        `${id}/${file}: ${why} at ${at}, ${attempt} times: ${next}`,
        {
          cause: dropped
        }
      );
    }
    // Resume where it stopped when the server says it can; a server that answers the Range with 200 sends
    // the whole file again, and we start over.
    const resumable = body.loaded > 0 && fetched.response.headers.get("accept-ranges") === "bytes";
    http.notice(
      `${id}/${file}: ${why} at ${at}; ${resumable ? "resuming" : "starting again"} (${attempt} of ${retries})`
    );
    fetched = await http.request(file, "GET", resumable ? `bytes=${body.loaded}-` : undefined, signal);
    if (fetched.response.status === 206 && rangeStart(fetched.response) === body.loaded) continue;
    if (fetched.response.status === 200) {
      body.restart();
      continue;
    }
    if (!fetched.response.ok) throw http.failure(file, fetched);
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

/** Bytes [start, end) of a file (fewer when it ends before), tried again when the connection drops. */
export async function downloadRange(
  http: Http,
  file: string,
  start: number,
  end: number,
  {signal, onProgress}: ReadOptions = {}
): Promise<Uint8Array> {
  const {id, retries} = http;
  for (let attempt = 1; ; attempt++) {
    const fetched = await http.request(file, "GET", `bytes=${start}-${end - 1}`, signal);
    const {response} = fetched;
    if (response.status === 416) return new Uint8Array(0); // start is past the end of the file
    if (!response.ok) throw http.failure(file, fetched);
    if (response.status === 206 && rangeStart(response) !== start)
      throw new HubError(
        "http",
        `${id}/${file}: asked for bytes from ${start}, got ${response.headers.get("content-range")}`
      );
    const body = new Body(plainLength(response));
    try {
      await body.pump(response, signal, (loaded) => onProgress?.({file, loaded, total: body.hint}));
    } catch (error) {
      if (signal?.aborted) throw signal.reason ?? error;
      if (attempt > retries)
        throw new HubError(
          "network",
          `${id}/${file}: the connection dropped reading bytes ${start}–${end} (${errorText(error)}), ${attempt} times; try again`,
          {cause: error}
        );
      http.notice(`${id}/${file}: the connection dropped; trying again (${attempt} of ${retries})`);
      continue;
    }
    const bytes = body.bytes();
    // A server that ignores Range sends the whole file with 200.
    return response.status === 206 ? bytes : bytes.slice(start, end);
  }
}

/** Whether a cached copy passes the checks a download does (one cached by an older version may not). */
export function isWhole(file: string, bytes: Uint8Array): boolean {
  try {
    checkContent("", file, bytes);
    return true;
  } catch {
    return false;
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

function hex(buffer: ArrayBuffer): string {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}
