/**
 * What a page, a cell, a data loader or the CLI may ask of a model, wherever it runs: `Model` (runtime/model.ts)
 * runs in this thread, as the data loaders and the CLI use it; `WorkerModel` (runtime/worker-model.ts) sends each
 * call to the model's Web Worker, as the pages use it. Code written against `LanguageModel` runs on either.
 *
 * The one difference shows in the answers' types: a worker's tokenizer answers with promises, `Model`'s at once,
 * so callers `await` what the tokenizer gives (`await` works on either).
 *
 * The analyses (`ANALYSES`: the lecture's and the "Inside the model" pages' computations) run by name through
 * `analyse`: in this thread on a `Model`, in the worker on a `WorkerModel`, where only their plain results cross.
 */
import type {ModelConfig, Parameter} from "../arch/index.js";
import type {ParameterCounts} from "../analysis/index.js";
import {analyseTokens} from "../analysis/tokens.js";
import {anatomyTrace} from "../analysis/anatomy.js";
import {attentionSource, attentionTrace} from "../analysis/attention.js";
import {contextTrace} from "../analysis/context.js";
import {ablationView, defaultPair, firstToken, lensView, patchingView, steeringView} from "../analysis/inside-model.js";
import type {Encoding} from "../tokenizer.js";
import type {Edit} from "./edits.js";
import type {GenerateOptions, Generation} from "./generate.js";
import type {Tensor} from "./tensor.js";
import type {Picked} from "./trace.js";

/** What every trace carries besides the tensors: the ids that ran and their tokens. */
export interface TraceInput {
  input_ids: number[];
  tokens: string[];
}

export interface TraceOptions {
  /**
   * Writes into the model during this run, applied in order before anything downstream reads the hook (reads
   * in `pick` included): a list, or a function of the same root as `pick` (`m => [m.model.layers[1].mlp.output.set(0)]`).
   * `pick` itself may call `.set/.add/.scale` too.
   */
  edits?: Edit[] | ((m: any) => Edit[] | void);
  /** Stops waiting for the run (the page's worker model drops a call not yet started). */
  signal?: AbortSignal;
  /**
   * Keep only these token positions (axis 1 of `[1, T, …]`; negative counts from the end) of every hook point's
   * tensor; weights are left whole. A remote model slices on NDIF, before the download.
   */
  positions?: number[];
}

/**
 * One forward pass over `input` (a prompt or token ids). `pick` chooses what to bring back, by module path:
 * `m => ({resid: m.model.layers[10].output})`, or a list of paths (the result is then keyed by path).
 * Weights may be picked too.
 */
export interface Trace {
  (input: string | number[], paths: string[], options?: TraceOptions): Promise<Record<string, Tensor> & TraceInput>;
  <T>(input: string | number[], pick: (m: any) => T, options?: TraceOptions): Promise<Picked<T> & TraceInput>;
}

/** The token a generation hands to `onToken`: its id, its text, and its display piece (" upon", with its space). */
export interface StreamedToken {
  id: number;
  text: string;
  index: number;
  piece: string;
}

export type LanguageModelGenerateOptions = Omit<GenerateOptions, "onToken"> & {
  onToken?: (token: StreamedToken) => void;
};

/** A model's tokenizer: `Tokenizer` in this thread, the worker's answering with promises. */
export interface LanguageModelTokenizer {
  readonly bosTokenId?: number;
  readonly eosTokenId?: number;
  encode(text: string): Encoding | Promise<Encoding>;
  decode(ids: number[], opts?: {skipSpecialTokens?: boolean}): string | Promise<string>;
  /** A token id's display piece (" Paris" for GPT-2's "ĠParis"). */
  idToPiece(id: number): string | Promise<string>;
}

/**
 * The computations pages and data loaders run on a model, by name (`model.analyse(name, ...args)`): each takes the
 * model first and answers with plain data, so that a worker can send it and a loader store it.
 */
export const ANALYSES = {
  analyseTokens,
  anatomyTrace,
  attentionSource,
  attentionTrace,
  contextTrace,
  lensView,
  patchingView,
  ablationView,
  steeringView,
  defaultPair,
  firstToken
};
export type Analyses = typeof ANALYSES;
export type AnalysisName = keyof Analyses;
/** An analysis's arguments after its model. */
export type AnalysisArgs<K extends AnalysisName> =
  Parameters<Analyses[K]> extends [unknown, ...infer Rest] ? Rest : never;
export type AnalysisResult<K extends AnalysisName> = Awaited<ReturnType<Analyses[K]>>;

export interface LanguageModel {
  readonly id: string;
  /** A name for the backend, shown to users ("WebGPU", "WASM", "onnxruntime-node (cpu)"). */
  readonly backend: string;
  /** "checkpoint" or "random (seed N)": say which when showing numbers. */
  readonly weightsOrigin: string;
  readonly config: ModelConfig;
  readonly tokenizer: LanguageModelTokenizer;
  /** How many forward passes have run: a slider that only re-slices a trace leaves it unchanged. */
  readonly runs: number;

  parameters(): Parameter[];
  counts(): ParameterCounts;
  moduleTree(): string;
  hookPoints(): string[];
  eosIds(): number[];
  tokenize(text: string): Encoding | Promise<Encoding>;
  /** Many ids' display pieces (" Paris"), in one call. */
  pieces(ids: number[]): string[] | Promise<string[]>;
  /** A weight by its checkpoint name with the module prefix, e.g. `model.layers.10.mlp.gate_proj.weight`. */
  weight(path: string): Promise<Tensor>;

  trace: Trace;
  /** Continue a prompt. Greedy unless `doSample`; tokens stream through `onToken`, `signal` stops it. */
  generate(prompt: string | number[], options?: LanguageModelGenerateOptions): Promise<Generation>;
  /**
   * One of `ANALYSES`, with the arguments that follow its model. Callbacks in a trailing options object
   * (onProgress, onToken) are called as it reports; its `signal` stops it.
   */
  analyse<K extends AnalysisName>(name: K, ...args: AnalysisArgs<K>): Promise<AnalysisResult<K>>;
  /**
   * This model for one input of a page (`model.lane("lens")`): on a worker, a call supersedes the lane's older
   * ones still waiting; in this thread calls run as they are made, and a lane is the model itself.
   */
  lane(name: string): LanguageModel;
  dispose(): void | Promise<void>;
}
