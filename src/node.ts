/**
 * The Node entry: `loadModel` resolves a model name, folder, URL or Hub id (see hub/node.ts) and runs it on
 * onnxruntime-node — or, with `runtime: "web"`, on onnxruntime-web's WASM backend, the browser's engine; or,
 * with `runtime: "webgpu"`, on onnxruntime-web's WebGPU backend over Dawn (runtime/webgpu-node.ts).
 */
import {totalmem} from "node:os";
import {WorkbenchError} from "./errors.js";
import {resolveSource, type ResolveOptions} from "./hub/node.js";
import {createModel, type CreateOptions, type Model} from "./runtime/model.js";
import type {Ort} from "./runtime/ort.js";
import {DEFAULT_ENCODE_TIMEOUT_MS, sourceEncoder} from "./tokenizer-worker.js";
import {NDIF_PREFIX, loadRemoteModel, type RemoteLoadOptions, type RemoteModel} from "./remote/remote-model.js";

/**
 * "node" (default): onnxruntime-node; "web": onnxruntime-web's WASM; "webgpu": its WebGPU backend (the JSEP
 * build, as in the browser) on Dawn; "webgpu-native": its C++ WebGPU execution provider on Dawn.
 */
export const RUNTIMES = ["node", "web", "webgpu", "webgpu-native"] as const;
export type Runtime = (typeof RUNTIMES)[number];
export const isWebGPU = (runtime: string): runtime is "webgpu" | "webgpu-native" =>
  runtime === "webgpu" || runtime === "webgpu-native";

export interface LoadOptions
  extends
    Omit<CreateOptions, "ort">,
    Pick<ResolveOptions, "revision" | "endpoint" | "modelsPath" | "cacheDir" | "token"> {
  runtime?: Runtime;
  /**
   * Prompts are tokenized in a worker thread and stopped after this long (default 10 s), so that a tokenizer
   * regex that backtracks without bound ends in an error instead of hanging; 0 tokenizes on this thread.
   */
  encodeTimeoutMs?: number;
}

/**
 * A model by name, folder, URL or Hub id, run here; or, named `ndif:<Hub id>` (`ndif:meta-llama/Llama-3.1-8B`),
 * a `RemoteModel` that runs on NDIF through the relay (src/remote/), with `relay` (default
 * http://127.0.0.1:8765) and `apiKey` (default the environment's NDIF_API_KEY).
 */
export async function loadModel(id: `ndif:${string}`, options?: LoadOptions & RemoteLoadOptions): Promise<RemoteModel>;
export async function loadModel(id: string, options?: LoadOptions): Promise<Model>;
export async function loadModel(
  id: string,
  options: LoadOptions & RemoteLoadOptions = {}
): Promise<Model | RemoteModel> {
  if (id.startsWith(NDIF_PREFIX)) {
    const {relay, apiKey = process.env.NDIF_API_KEY, pollMs, onJob, signal} = options;
    return loadRemoteModel(id, {relay, apiKey, pollMs, onJob, signal});
  }
  const {
    runtime = "node",
    revision,
    endpoint,
    modelsPath,
    cacheDir,
    token,
    encodeTimeoutMs = DEFAULT_ENCODE_TIMEOUT_MS,
    ...rest
  } = options;
  // Retries and resumed downloads are told through onProgress, as the download's own messages are.
  const onNotice = rest.onProgress && ((message: string) => rest.onProgress!({stage: "download", message}));
  const source = await resolveSource(id, {revision, endpoint, modelsPath, cacheDir, token, onNotice});
  const encodeText = encodeTimeoutMs > 0 ? sourceEncoder(source, encodeTimeoutMs) : undefined;
  return createModel(source, {
    ...(await ortRuntime(runtime)),
    // On WebGPU generation runs on the lean decode graph (runtime/decode.ts); the native provider's
    // GroupQueryAttention writes its cache in place.
    cacheInPlace: runtime === "webgpu-native",
    memoryBudget: {bytes: totalmem(), where: "this machine"},
    encodeText,
    ...rest
  });
}

/**
 * onnxruntime set up for a runtime: the module, its execution providers and the sentence saying which it
 * is. The benchmark's floors use it too, so they see the same threads. WebGPU without an adapter is an error.
 */
export async function ortRuntime(runtime: Runtime): Promise<{ort: Ort; executionProviders: string[]; backend: string}> {
  if (isWebGPU(runtime)) {
    const {nodeWebGPU} = await import("./runtime/webgpu-node.js");
    const web = await nodeWebGPU(runtime === "webgpu" ? "jsep" : "native");
    if (web.backend !== "webgpu") throw new WorkbenchError(`runtime "${runtime}": ${web.reason}`);
    return {ort: web.ort, executionProviders: ["webgpu"], backend: web.reason};
  }
  if (runtime === "web") {
    const ort = await import("onnxruntime-web");
    ort.env.wasm.numThreads = 1;
    return {ort, executionProviders: ["wasm"], backend: "onnxruntime-web (wasm)"};
  }
  disableOrtTelemetry();
  return {
    ort: await import("onnxruntime-node"),
    executionProviders: ["cpu"],
    backend: "onnxruntime-node (cpu)"
  };
}

/**
 * onnxruntime-node (1.2x+ on Linux) starts Microsoft's telemetry client with its first session unless
 * `ORT_DISABLE_TELEMETRY` is set. The client queues events in ~/.cache/Microsoft/DeveloperTools/.onnxruntime/
 * onnxruntime.db, leaves an empty /tmp/mat-debug-<pid>.log per process, and parses /proc/self/cmdline with a
 * std::regex whose recursion overflows the stack on a long command line: a ~30,000-character prompt given as
 * an argument crashed the CLI with SIGSEGV, whatever its token count. Set before the native module loads (the
 * variable is read through getenv, which sees what process.env sets); a user's own setting is left alone.
 */
export function disableOrtTelemetry(): void {
  process.env.ORT_DISABLE_TELEMETRY ??= "1";
}

export {Model} from "./runtime/model.js";
export * from "./index.js";
