/**
 * The browser entry: `loadModel` takes a model the site ships (by name), a Hub id, or a base URL, and runs
 * it on onnxruntime-web — WebGPU when the browser has it (its native provider, runtime/ort-web.ts), WASM
 * otherwise — saying which and why. Where a WebGPU session cannot be created (no kernel, a buffer over the
 * adapter's limits) it falls back to WASM and says so.
 */
import {WorkbenchError} from "./errors.js";
import {checkHubId} from "./hub/ids.js";
import {hubUrl, urlSource, type ModelSource} from "./hub/source.js";
import {createModel, type CreateOptions, type Model} from "./runtime/model.js";
import {createWebRuntime, type WebRuntimeOptions} from "./runtime/ort-web.js";
import {TAB_BUDGET} from "./runtime/limits.js";
import {NDIF_PREFIX, loadRemoteModel, type RemoteLoadOptions, type RemoteModel} from "./remote/remote-model.js";

export interface BrowserLoadOptions
  extends Omit<CreateOptions, "ort" | "executionProviders" | "backend">, WebRuntimeOptions {
  /** Models the site ships, by name → base URL of their files (config.json, tokenizer.json, …). */
  bundled?: Record<string, string>;
  /** The Hub (default https://huggingface.co); tests point it at a loopback server. */
  endpoint?: string;
  revision?: string;
  /**
   * A Hugging Face access token, for gated or private models. Sent as a header to the Hub endpoint only —
   * never in a URL, never to a bundled model's or a URL's host, and never to the CDN the Hub redirects large
   * files to (the browser drops Authorization on a redirect to another origin). Keep it in memory or
   * sessionStorage, not in the page's URL.
   */
  token?: string;
}

/** Where a model's files are: a bundled name, an http(s) URL, or else a Hub repository id. */
export function browserSource(
  id: string,
  options: Pick<BrowserLoadOptions, "bundled" | "endpoint" | "revision" | "token"> & {
    onNotice?: (message: string) => void;
  } = {}
): ModelSource {
  const trimmed = id.trim();
  if (!trimmed) throw new WorkbenchError("no model given: type a Hub id such as gpt2 or HuggingFaceTB/SmolLM2-135M");
  const bundled = options.bundled?.[trimmed];
  if (bundled) return urlSource(trimmed, new URL(bundled, location.href).href);
  if (/^https?:\/\//.test(trimmed)) return urlSource(trimmed, trimmed);
  checkHubId(trimmed); // the Hub's own rules: no "..", no query, no third part
  const base = hubUrl(trimmed, "", {endpoint: options.endpoint, revision: options.revision}).replace(/\/$/, "");
  return urlSource(trimmed, base, {
    token: options.token || undefined,
    tokenHint: "paste a Hugging Face access token",
    onNotice: options.onNotice
  });
}

/**
 * A model the site ships, a Hub id or a URL, run in this tab; or, named `ndif:<Hub id>`, a `RemoteModel` that runs
 * on NDIF through the relay (src/remote/): `relay` is its address (default http://127.0.0.1:8765), `apiKey` the
 * NDIF API key, sent to the relay only, in a header.
 */
export async function loadModel(
  id: `ndif:${string}`,
  options?: BrowserLoadOptions & RemoteLoadOptions
): Promise<RemoteModel>;
export async function loadModel(id: string, options?: BrowserLoadOptions): Promise<Model>;
export async function loadModel(
  id: string,
  options: BrowserLoadOptions & RemoteLoadOptions = {}
): Promise<Model | RemoteModel> {
  if (id.startsWith(NDIF_PREFIX)) {
    const {relay, apiKey, pollMs, onJob, signal} = options;
    return loadRemoteModel(id, {relay, apiKey, pollMs, onJob, signal});
  }
  // Retries and resumed downloads are told through onProgress, as the download's own messages are.
  const onNotice = options.onProgress && ((message: string) => options.onProgress!({stage: "download", message}));
  const source = browserSource(id, {...options, onNotice});
  const runtime = await createWebRuntime(options);
  const {ort} = runtime;
  // MLAS would keep a second, prepacked copy of every MatMul weight in the WASM heap. Without it SmolLM2-135M
  // peaks at about 1.7 GB in a tab instead of 1.9 GB; its 10-token forward pass is no slower (~130 ms vs
  // ~165 ms), generation about 10% slower (npm run bench -- --browser).
  const sessionOptions = {
    ...options.sessionOptions,
    extra: {session: {disable_prepacking: "1"}, ...options.sessionOptions?.extra}
  };
  const common = {memoryBudget: TAB_BUDGET, ...options, ort, sessionOptions, releaseWeights: true};
  if (runtime.backend === "webgpu") {
    try {
      return await createModel(source, {
        ...common,
        executionProviders: ["webgpu"],
        backend: runtime.reason,
        // The native provider's GroupQueryAttention writes the lean decoder's cache in place (runtime/decode.ts).
        cacheInPlace: runtime.webgpuBuild === "native"
      });
    } catch (error) {
      if (error instanceof WorkbenchError) throw error; // the model is at fault, not the backend
      const why = error instanceof Error ? error.message : String(error);
      // The WASM session runs on the WASM build: the WebGPU one was loaded for WebGPU alone.
      return createModel(source, {
        ...common,
        ort: (await createWebRuntime({...options, preferWebGPU: false})).ort,
        executionProviders: ["wasm"],
        backend: `WASM: the WebGPU session failed (${why})`
      });
    }
  }
  return createModel(source, {...common, executionProviders: ["wasm"], backend: runtime.reason});
}

export * from "./index.js";
