/**
 * The messages between the page (src/runtime/worker-model.ts) and the model's worker (src/runtime/worker.ts).
 * The page sends one `load`, then `call`s, each with its own number, and `abort`s; the worker answers each
 * call with one `result` or `error` (a generation streams `token`s first). Tensors travel as their
 * Float32Array, its buffer transferred, never copied.
 */
import type {ModelConfig, Parameter} from "../arch/index.js";
import type {ParameterCounts} from "../analysis/index.js";
import type {LoadProgress} from "./model.js";

/** What the worker needs to load a model: where its files are and how to run it. */
export interface WorkerLoad {
  op: "load";
  id: string;
  /** Models the site ships, by name → base URL of their files (made absolute before it is sent). */
  bundled: Record<string, string>;
  endpoint?: string;
  /** A Hugging Face token for gated models (sent to the Hub endpoint only; see src/browser.ts). */
  token?: string;
  preferWebGPU?: boolean;
  /** Take a software WebGPU adapter too (the pages' ?backend=webgpu); "auto" leaves it for WASM. */
  allowSoftwareAdapter?: boolean;
  /** Which onnxruntime-web build runs WebGPU (runtime/ort-web.ts; the pages' ?backend=webgpu-jsep: "jsep"). */
  webgpuBuild?: "native" | "jsep";
  init?: "checkpoint" | "random";
  seed?: number;
}

export type WorkerMethod = "encode" | "decode" | "pieces" | "trace" | "weight" | "generate" | "analyse";

export interface WorkerCall {
  op: "call";
  req: number;
  method: WorkerMethod;
  args: unknown[];
}

export interface WorkerAbort {
  op: "abort";
  req: number;
}

export type ToWorker = WorkerLoad | WorkerCall | WorkerAbort;

/** Everything about a model that never changes once it is loaded: sent once, read on the page without a call. */
export interface ModelInfo {
  id: string;
  backend: string;
  /** Whether it runs every structure on one graph (runtime/model.ts `oneGraph`): WASM, 100 MB of weights or more. */
  oneGraph: boolean;
  weightsOrigin: string;
  config: ModelConfig;
  parameters: Parameter[];
  hookPoints: string[];
  moduleTree: string;
  counts: ParameterCounts;
  eosIds: number[];
  bosTokenId?: number;
  eosTokenId?: number;
}

/** An error as the page shows it: its name (WorkbenchError, AbortError, …) and message, never a stack. */
export interface SentError {
  name: string;
  message: string;
  /** What kind of failure, where the error says (a Hub error's "gated", "not-found", …). */
  code?: string;
}

export type FromWorker =
  | {type: "progress"; progress: LoadProgress}
  | {type: "loaded"; info: ModelInfo}
  | {type: "load-error"; error: SentError}
  | {type: "token"; req: number; token: {id: number; text: string; index: number; piece: string}}
  /** A callback of an "analyse" call (its progress, its streamed text), by the option's name, with its arguments. */
  | {type: "event"; req: number; name: string; args: unknown[]}
  /** The call is tokenizing (busy) or done tokenizing: the page holds each such span to the tokenizer's time limit. */
  | {type: "tokenizing"; req: number; busy: boolean}
  | {type: "result"; req: number; value: unknown; runs: number}
  | {type: "error"; req: number; error: SentError; runs: number};
