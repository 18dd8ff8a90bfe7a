/**
 * A loaded model: config, tokenizer, weights, and an onnxruntime session over the graph of its architecture.
 * `trace` runs one forward pass and hands back the tensors asked for by module path; `generate` continues a
 * prompt, with a key/value cache.
 *
 * Universal: the caller passes the onnxruntime module (onnxruntime-node in Node, onnxruntime-web in the
 * browser, or onnxruntime-web's WASM in Node), so this file runs anywhere.
 */
import type {InferenceSession, Tensor as OrtTensor} from "onnxruntime-common";
import {type Architecture, architectureFor, normalizeConfig, type ModelConfig} from "../arch/index.js";
import {LOGITS, cacheNames} from "../arch/types.js";
import {cacheOutputs, type Cache} from "./cache.js";
import {WorkbenchError} from "../errors.js";
import {openCheckpoint} from "../hub/checkpoint.js";
import {type ModelSource, type Progress, readJson} from "../hub/source.js";
import {Tokenizer, type Encoding} from "../tokenizer.js";
import {generate, type Generation} from "./generate.js";
import type {Tensor} from "./tensor.js";
import {tracer} from "./trace.js";
import {
  ANALYSES,
  type AnalysisArgs,
  type AnalysisName,
  type AnalysisResult,
  type LanguageModel,
  type LanguageModelGenerateOptions,
  type Trace
} from "./language-model.js";
import {planEdits, type Edit, type Feed} from "./edits.js";
import {idleFeeds, oneGraphFeeds} from "./one-graph.js";
import type {GraphOptions} from "../graph/hooks.js";
import {WeightInputs, type EncodedModel} from "../graph/onnx.js";
import {checkpointWeights, randomWeights, type Weights} from "./weights.js";
import {checkFits, memoryNeeded, type MemoryBudget} from "./limits.js";
import type {EncodeText} from "../tokenizer-worker.js";
import {LeanDecoder, sharesShadersAcrossModels} from "./decode.js";
import {ModelStructure} from "./model-structure.js";
import {localWindowHonoured} from "../graph/decode.js";
import {gpuDevice, readBack, type Ort} from "./ort.js";
import {formatBytes} from "../units.js";

export type LoadStage = "config" | "download" | "graph" | "session" | "ready";
export interface LoadProgress {
  stage: LoadStage;
  /** For downloads: the file, bytes done and total. */
  file?: string;
  loaded?: number;
  total?: number;
  message: string;
}

export interface CreateOptions {
  ort: Ort;
  /** e.g. ["webgpu", "wasm"] or ["cpu"]. */
  executionProviders?: InferenceSession.SessionOptions["executionProviders"];
  /** Where a folder has no weights (or to ignore them): "random" draws them from `seed`. */
  init?: "checkpoint" | "random";
  seed?: number;
  onProgress?: (p: LoadProgress) => void;
  signal?: AbortSignal;
  /** More onnxruntime session options, passed as they are. */
  sessionOptions?: InferenceSession.SessionOptions;
  /** A name for the backend, shown to users ("onnxruntime-node (cpu)", "WebGPU", "WASM"). */
  backend?: string;
  /**
   * Where a graph holds its weights as initializers (the lean decode graph on WebGPU), free their JS memory as
   * soon as the session holds its own copy (onnxruntime-web copies them into its WASM heap or onto the GPU),
   * instead of whenever the garbage collector gets to it. Weights fed as inputs (`sharedWeights`) are the model's
   * one copy and are never released. onnxruntime-web only (WASM, WebGPU): it reads each weight as it copies it,
   * which is when a weight given as a function is made; onnxruntime-node reads the buffers itself, so there the
   * option is ignored (its weights would read as zeros).
   */
  releaseWeights?: boolean;
  /**
   * Feed the weights to every graph of the model as inputs, from one set of buffers (graph/onnx.ts
   * `WeightInputs`), rather than give each session its own copy as initializers: one copy of the weights per
   * model whatever the number of edit structures, lens and patching graphs (docs/performance.md measures both).
   * Default: on, except on WebGPU, where weights live on the GPU and inputs would cross to it every run.
   */
  sharedWeights?: boolean;
  /**
   * Keep a bf16/fp16 checkpoint's weights at 2 bytes (float16 inputs widened by a Cast in the graph) where float16
   * holds their values; activations and outputs stay float32. With shared weights only. Default: on WASM only,
   * where it saves memory (a tab's constraint) at some speed; on onnxruntime-node each session's memory arena keeps
   * the widened copies the Casts make, so the process ends up larger and slower (docs/performance.md measures both).
   */
  keepPrecision?: boolean;
  /**
   * With shared weights, the main graph (trace, generation) holds them as initializers — its session's copy, made
   * once — and only the other structures' graphs read them as inputs. Default: on WASM, where a fed input is copied
   * into the heap on every run (false there: the least memory, the slowest steps); off on onnxruntime-node, where
   * true trades a second copy for MatMul weights packed once (docs/performance.md).
   */
  mainWeightsAsInitializers?: boolean;
  /**
   * One graph, hence one session and one copy of the weights, for every run: the main graph has an edit slot at
   * every hook point and the logit lens behind a switch (graph/hooks.ts `editSlots`), so traces, generation, the
   * lens, patching sweeps, steering and ablation all run on it; only edits a slot cannot express (two at one hook
   * point) open a session of their own, with its own copy. For WASM, where onnxruntime-web copies a fed input into
   * its heap on every run and a session's initializers into the heap once: a tab that runs every analysis peaks
   * ~700 MB lower on SmolLM2-135M and ~2.6 GB lower on Qwen2.5-0.5B. Default: on WASM for a model whose float32
   * weights pass `ONE_GRAPH_FROM_BYTES`; its session takes longer to make (SmolLM2-135M in a tab: 8.3 s against
   * 4.6 s), which a small model's second copy is not worth (docs/performance.md, "The tab, on one graph").
   */
  oneGraph?: boolean;
  /**
   * Tokenize prompts with this instead of on the calling thread: in Node, a worker with a time limit
   * (tokenizer-worker.ts), so that a tokenizer regex that backtracks without bound ends in an error.
   */
  encodeText?: EncodeText & {dispose?(): Promise<void>};
  /**
   * Run generation on the lean decode graph (runtime/decode.ts) on WebGPU. `cacheInPlace` is onnxruntime-web's
   * native WebGPU provider, whose GroupQueryAttention writes a fixed-capacity cache in place: there the lean graph
   * is the default. The JSEP build's returns the cache anew each step, and there the lean graph runs only when
   * asked for (`leanDecode: true`), one model to an onnxruntime instance (runtime/decode.ts `sharesShadersAcrossModels`).
   */
  leanDecode?: boolean;
  cacheInPlace?: boolean;
  /**
   * Record the lean decode step once and replay it (onnxruntime's graph capture; runtime/decode.ts says what it
   * takes): the native provider only (`cacheInPlace`). The prompt then goes in one token a run, and generations
   * longer than `CAPTURE_CAPACITY` positions run on the traced graph.
   */
  graphCapture?: boolean;
  /**
   * Positions of key/value cache the lean decoder (native provider, uncaptured) makes at the least (default 256):
   * short generations after one another reuse one set of buffers; a longer one makes it again, larger.
   */
  cachePositions?: number;
  /** How much memory the model may take (Node: the machine's; a tab: 4 GB); larger configs are refused up front. */
  memoryBudget?: MemoryBudget;
  /**
   * Settled before the model makes any session: another session being made on the same runtime (the pages' worker
   * warms onnxruntime up with one while the model loads), since the native WebGPU provider refuses to make a session
   * while another is being made ("another WebGPU EP inference session is being created").
   */
  sessionsAfter?: Promise<unknown>;
}

export async function createModel(source: ModelSource, options: CreateOptions): Promise<Model> {
  const {cachePositions} = options;
  if (cachePositions !== undefined && !(Number.isInteger(cachePositions) && cachePositions > 0))
    throw new WorkbenchError(`cachePositions: a whole number of positions above 0, not ${cachePositions}`);
  const report = options.onProgress ?? (() => {});
  report({stage: "config", message: `reading ${source.id}: config and tokenizer`});
  const config = normalizeConfig(await readJson(source, "config.json", {signal: options.signal}));
  const tokenizerConfig = (await source.has("tokenizer_config.json"))
    ? await readJson<Record<string, unknown>>(source, "tokenizer_config.json", {signal: options.signal})
    : {};
  if (!(await source.has("tokenizer.json"))) throw new WorkbenchError(`${source.location}: tokenizer.json is missing`);
  const tokenizer = Tokenizer.fromJson(
    await readJson(source, "tokenizer.json", {signal: options.signal}),
    tokenizerConfig
  );
  const arch = architectureFor(config);
  checkFits(arch, source.id, options.memoryBudget);

  const checkpoint = options.init === "random" ? undefined : await openCheckpoint(source, {signal: options.signal});
  if (!checkpoint && options.init !== "random") {
    throw new WorkbenchError(
      `${source.location}: no weights (model.safetensors or model.safetensors.index.json); ` +
        `load it with init: "random" (CLI: --init random) to inspect the architecture with random weights`
    );
  }
  const weights = checkpoint ? checkpointWeights(arch, checkpoint) : randomWeights(arch, options.seed ?? 0);

  const onDownload = (p: Progress) =>
    report({
      stage: "download",
      ...p,
      message: `downloading ${p.file}: ${formatBytes(p.loaded, p.total || undefined)}`
    });
  const weight = await weights.loadAll({onProgress: onDownload, signal: options.signal});
  report({stage: "graph", message: `building the ${config.architecture} graph`});
  const oneGraph = options.oneGraph ?? oneGraphByDefault(memoryNeeded(arch).parameters, options);
  // The weights every graph of this model will read as inputs: filled by this first graph, reused by the others.
  const shared =
    !oneGraph && (options.sharedWeights ?? !onWebGPU(options))
      ? new WeightInputs(weights.halfPrecision && (options.keepPrecision ?? onWasm(options)))
      : undefined;
  // On WASM a fed input is copied into onnxruntime's heap on every run (538 MB a step for SmolLM2-135M: generation
  // 3× slower in Chromium), so the main graph — trace and generation, the hot path — holds the weights as
  // initializers, copied once; the other structures' graphs (lens, patching, edits) read the shared inputs.
  const mainAsInitializers = shared !== undefined && (options.mainWeightsAsInitializers ?? onWasm(options));
  const encoded = arch.buildGraph(
    weight,
    oneGraph ? {editSlots: true, packed: true} : {weights: shared, weightsAsInitializers: mainAsInitializers}
  );
  report({stage: "session", message: `creating the onnxruntime session (${options.backend ?? "default backend"})`});
  // The shared weights stay: the other graphs will read them.
  const session = await openSession(encoded, options, releases(options) && !shared);
  report({stage: "ready", message: `${source.id} is ready`});
  return new Model(source, config, arch, tokenizer, weights, session, options, shared, encoded.editSlots);
}

/**
 * On WASM, a model with at least this many bytes of float32 weights runs on one graph (`CreateOptions.oneGraph`):
 * gpt2 (498 MB), SmolLM2-135M and larger, where a second copy of the weights is what a tab cannot spare; the mini
 * fixtures and stories260K (1 MB) keep the layout whose session is faster to make.
 */
export const ONE_GRAPH_FROM_BYTES = 100e6;

/** Whether a model of `parameters` runs on one graph when `CreateOptions.oneGraph` is not given. */
export function oneGraphByDefault(parameters: number, options: Pick<CreateOptions, "executionProviders">): boolean {
  return onWasm(options) && 4 * parameters >= ONE_GRAPH_FROM_BYTES;
}

/** Whether to free the weights as onnxruntime copies them (`releaseWeights`): asked for, and onnxruntime-web. */
function releases(options: Pick<CreateOptions, "executionProviders" | "releaseWeights">): boolean {
  return options.releaseWeights === true && (onWasm(options) || onWebGPU(options));
}

/** Whether the sessions run on WebGPU (an execution provider named "webgpu", alone or with options). */
function onWebGPU(options: Pick<CreateOptions, "executionProviders">): boolean {
  return JSON.stringify(options.executionProviders ?? []).includes("webgpu");
}

/** Whether the sessions run on onnxruntime-web's WASM backend (the CPU backend of a tab). */
function onWasm(options: Pick<CreateOptions, "executionProviders">): boolean {
  return !onWebGPU(options) && JSON.stringify(options.executionProviders ?? []).includes("wasm");
}

/**
 * An onnxruntime session over an encoded graph, with the engine's options for that backend. `release`: free each
 * weight's JavaScript memory once onnxruntime has its own copy (`releaseWeights`), weight by weight as it copies
 * them (`releasedAsCopied`) and the rest when the session is made.
 */
async function openSession(encoded: EncodedModel, options: CreateOptions, release = false): Promise<InferenceSession> {
  await options.sessionsAfter?.catch(() => undefined);
  const onGpu = onWebGPU(options);
  // A lazy weight that fails to be made fails inside onnxruntime's read, which says only "memory copy": its own
  // error is kept to be thrown instead.
  let madeError: unknown;
  const externalData = release
    ? releasedAsCopied(encoded.externalData, (error) => (madeError ??= error))
    : encoded.externalData;
  const session = await options.ort.InferenceSession.create(encoded.model, {
    externalData,
    executionProviders: options.executionProviders,
    // On WebGPU every output stays on the GPU: the key/value cache between generation steps (no round trip),
    // and the fetched hook points until `runNow` downloads them together (one copy and one map, not one each).
    preferredOutputLocation: onGpu ? "gpu-buffer" : undefined,
    graphOptimizationLevel: "all",
    logSeverityLevel: 3, // errors only: ort's warnings (shape ops placed on the CPU, by design) are not the user's problem
    ...options.sessionOptions
  }).catch((error: unknown) => {
    throw madeError ?? error;
  });
  // (A lazy weight's bytes were made and freed as it was read: asking for its `data` now would make them again.)
  if (release) releaseBuffers(encoded.externalData.filter((e) => !e.lazy).map((e) => e.data.buffer));
  return session;
}

/**
 * What a run adds to the plain forward pass: the graph structure it needs (edits, the logit lens, packed
 * sequences — one session per structure, built on first use) and the inputs that structure takes.
 */
export interface RunExtras {
  structure: Omit<GraphOptions, "hooks"> & {hooks?: string[]};
  feeds: Record<string, Feed>;
  /** Edits' selections to check against the run's shapes (edits.ts, `EditPlan.check`): the run fetches `hooks`. */
  check?: {hooks: string[]; run(shapeOf: (hook: string) => number[] | undefined): void};
}

export type {TraceInput, TraceOptions} from "./language-model.js";

/** The model in this thread (the data loaders, the CLI, the pages' worker); `LanguageModel` says what it answers. */
export class Model extends ModelStructure implements LanguageModel {
  /** How many times the session has run: a slider that only re-slices a trace leaves it unchanged. */
  runs = 0;
  readonly backend: string;
  private readonly hooks: Set<string>;
  private readonly parameterNames: Set<string>;
  /** The last run asked for: the next one starts after it. */
  private queue: Promise<unknown> = Promise.resolve();
  /** Sessions for runs with a structure of their own (edits, lens, packed), by that structure. */
  private readonly variants = new Map<string, Promise<InferenceSession>>();
  private lean?: Promise<LeanDecoder | undefined>;
  /** Why the lean decode graph's session could not be made, if it could not. */
  leanError?: Error;
  /** The shared weights as onnxruntime tensors, by graph input name: made once, fed to every run of every session. */
  private readonly weightFeeds = new Map<string, OrtTensor>();
  /** With one graph (`CreateOptions.oneGraph`): the hook points that have an edit slot in it, in slot order. */
  private readonly slots?: readonly string[];
  /** …and their shapes, with one token (`probeSlots`). */
  private slotShapes?: Map<string, number[]>;
  /** …and what every run feeds the lens switch and the slots it does not use (`idleFeeds`), made once. */
  private readonly idle = new Map<string, OrtTensor>();

  constructor(
    readonly source: ModelSource,
    readonly config: ModelConfig,
    readonly arch: Architecture,
    readonly tokenizer: Tokenizer,
    private readonly weights: Weights,
    private readonly session: InferenceSession,
    private readonly options: CreateOptions,
    /** The weights as inputs shared by all this model's graphs (`CreateOptions.sharedWeights`); else undefined. */
    private readonly shared?: WeightInputs,
    /** The main graph's edit slots (`CreateOptions.oneGraph`), in slot order. */
    editSlots?: readonly string[]
  ) {
    super();
    this.backend = options.backend ?? "onnxruntime";
    for (const [name, {data, dims}] of shared?.inputNames() ?? []) {
      const tensor =
        data instanceof Uint16Array
          ? new options.ort.Tensor("float16", data, dims)
          : new options.ort.Tensor("float32", data, dims);
      this.weightFeeds.set(name, tensor);
    }
    // The logits answer to `lm_head.output` in every family, whatever its unembedding is called (GPT-NeoX: embed_out).
    this.hooks = new Set([...arch.hookPoints(), LOGITS]);
    this.parameterNames = new Set(arch.parameters().map((p) => p.name));
    if (editSlots?.length) {
      this.slots = editSlots;
      for (const [name, feed] of Object.entries(idleFeeds(editSlots)))
        this.idle.set(name, new options.ort.Tensor(feed.type as "float32", feed.data as Float32Array, feed.dims));
    }
  }

  get id(): string {
    return this.source.id;
  }

  /** Whether every run goes through one graph with edit slots (`CreateOptions.oneGraph`). */
  get oneGraph(): boolean {
    return this.slots !== undefined;
  }

  /** "checkpoint" or "random (seed N)": say which when showing numbers. */
  get weightsOrigin(): string {
    return this.weights.origin;
  }

  /**
   * The bytes of weights this model holds in JavaScript for its sessions: with shared weights, its one copy
   * (float16 where kept at 2 bytes); 0 where each session holds its own (WebGPU).
   */
  get weightBytes(): number {
    return this.shared?.bytes ?? 0;
  }

  /** A weight by its checkpoint name with the module prefix, e.g. `model.layers.10.mlp.gate_proj.weight`. */
  async weight(path: string): Promise<Tensor> {
    const p = this.arch.parameters().find((q) => q.name === path);
    if (!p)
      throw new WorkbenchError(`unknown weight ${path}: weights are named like ${this.arch.roles.mlpIn(0)}.weight`);
    return {shape: p.shape, data: await this.weights.load(path)};
  }

  tokenize(text: string): Encoding {
    return this.tokenizer.encode(text);
  }

  pieces(ids: number[]): string[] {
    return ids.map((id) => this.tokenizer.idToPiece(id));
  }

  /** One forward pass in this thread (`Trace` says what it takes); picked weights are read from the checkpoint. */
  readonly trace: Trace = tracer(
    async (input, paths, edits) => {
      for (const path of paths) this.checkPath(path);
      const {ids, tokens} = await this.prepareInput(input);
      const hooks = paths.filter((p) => this.hooks.has(p));
      const tensors = edits.length
        ? (await this.run(ids, undefined, hooks, false, this.editExtras(edits))).outputs
        : await this.forward(ids, hooks);
      for (const path of paths.filter((p) => this.parameterNames.has(p))) tensors.set(path, await this.weight(path));
      return {tensors, input_ids: ids, tokens};
    },
    (path) => this.hooks.has(path)
  );

  /**
   * The structure and inputs of a run with `edits` (token positions counted from `offset`, where a generation
   * step starts). Every hook point stays exposed, so that reads see the edited values. `check`: the run checks
   * the edits' indices against the hooks' shapes (`tokens`: the sequence length positions count in); false: not.
   */
  editExtras(edits: Edit[], offset = 0, check: {tokens?: number} | false = {}): RunExtras {
    for (const edit of edits) {
      if (!this.hooks.has(edit.hook)) {
        if (this.parameterNames.has(edit.hook))
          throw new WorkbenchError(`${edit.hook} is a weight: edits write into hook points (activations)`);
        this.checkPath(edit.hook);
      }
    }
    const plan = planEdits(edits, (hook) => this.arch.aliasOf(hook) ?? hook);
    const checked = check && plan.checked.length ? plan.checked : [];
    return {
      structure: {edits: plan.sites},
      feeds: plan.feeds(offset),
      check: checked.length && check ? {hooks: checked, run: (shapeOf) => plan.check(shapeOf, check.tokens)} : undefined
    };
  }

  /** The raw forward pass: token ids in, the named hook tensors out. One `session.run`. */
  async forward(ids: number[], hooks: string[]): Promise<Map<string, Tensor>> {
    for (const h of hooks) this.checkPath(h);
    const result = await this.run(ids, undefined, hooks);
    return result.outputs;
  }

  /**
   * Run the session on new tokens after a cache (none: an empty one). Runs wait for one another: an
   * onnxruntime session runs one call at a time (onnxruntime-web refuses a second: "Session already
   * started"), and two cells of a page may ask at once.
   */
  run(
    ids: number[],
    cache: Cache | undefined,
    fetch: string[],
    keepCache = false,
    extras?: RunExtras
  ): Promise<{outputs: Map<string, Tensor>; cache?: Cache}> {
    const result = this.queue.then(() => this.runNow(ids, cache, fetch, keepCache, extras));
    this.queue = result.catch(() => undefined);
    return result;
  }

  private async runNow(
    ids: number[],
    cache: Cache | undefined,
    fetch: string[],
    keepCache: boolean,
    extras?: RunExtras
  ): Promise<{outputs: Map<string, Tensor>; cache?: Cache}> {
    const {ort} = this.options;
    // With one graph, a run's structure becomes that graph's inputs, where its slots can express it.
    const past = cache ? Number(cache[0].key.dims[2]) : 0;
    if (this.slots && extras?.structure.edits?.length && !this.slotShapes) this.slotShapes = await this.probeSlots(ids);
    // A slotted hook's shape in this run: its tokens along axis 1 (every hook point is [batch, tokens, …]).
    const shapeOf = (hook: string) => this.slotShapes?.get(hook)?.map((d, axis) => (axis === 1 ? ids.length : d));
    const slotted =
      this.slots && oneGraphFeeds(this.slots, ids.length, past, extras?.structure, extras?.feeds, shapeOf);
    const session = extras && !slotted ? await this.sessionFor(extras.structure) : this.session;
    const {numLayers, numKeyValueHeads, headDim} = this.config;
    const feeds: Record<string, OrtTensor> = {
      input_ids: new ort.Tensor(
        "int64",
        BigInt64Array.from(ids, (i) => BigInt(i)),
        [1, ids.length]
      )
    };
    const empty = new Float32Array(0);
    for (let i = 0; i < numLayers; i++) {
      const names = cacheNames(i);
      feeds[names.pastKey] = cache?.[i].key ?? new ort.Tensor("float32", empty, [1, numKeyValueHeads, 0, headDim]);
      feeds[names.pastValue] = cache?.[i].value ?? new ort.Tensor("float32", empty, [1, numKeyValueHeads, 0, headDim]);
    }
    // The shared weights, the same tensors for every session and run; the one graph's lens and slots, idle unless
    // the run uses them.
    for (const name of session.inputNames) {
      const fixed = this.weightFeeds.get(name) ?? (session === this.session ? this.idle.get(name) : undefined);
      if (fixed) feeds[name] = fixed;
    }
    const presentNames = keepCache ? cacheOutputs(numLayers) : [];
    for (const [name, feed] of Object.entries(slotted || extras?.feeds || {})) {
      feeds[name] = new ort.Tensor(feed.type as "float32", feed.data as Float32Array, feed.dims);
    }
    const graphName = (path: string) => this.arch.aliasOf(path) ?? path;
    const fetches = [...new Set([...fetch.map(graphName), ...presentNames, ...(extras?.check?.hooks ?? [])])];
    if (fetches.length === 0) fetches.push(LOGITS);
    this.runs++;
    let results: InferenceSession.ReturnType;
    try {
      results = await session.run(feeds, fetches);
    } catch (error) {
      if (!extras?.structure.edits?.length) throw error;
      const at = [...new Set(extras.structure.edits.map((e) => e.hook))].join(", ");
      throw new WorkbenchError(
        `the run with edits at ${at} failed: ${(error as Error).message} (an edit's value must broadcast against the hook's tensor)`
      );
    }
    const downloaded = await download(
      this.options.ort,
      fetches.filter((n) => !presentNames.includes(n)).map((n) => [n, results[n]] as const)
    );
    extras?.check?.run((hook) => results[hook]?.dims.map(Number));
    const outputs = new Map<string, Tensor>();
    for (const name of fetch) {
      const t = results[graphName(name)];
      const data = downloaded.get(graphName(name)) ?? t.data;
      // int64 outputs (the lens's token ids) come back as numbers like every other tensor: ids are exact in float32.
      outputs.set(name, {
        shape: t.dims.map(Number),
        data: data instanceof BigInt64Array ? Float32Array.from(data, Number) : (data as Float32Array)
      });
    }
    const next = keepCache
      ? Array.from({length: numLayers}, (_, i) => ({
          key: results[cacheNames(i).presentKey],
          value: results[cacheNames(i).presentValue]
        }))
      : undefined;
    return {outputs, cache: next};
  }

  /**
   * The shapes of the one graph's slotted hook points (`CreateOptions.oneGraph`), which its edits' numbers are made
   * in (runtime/one-graph.ts): read off one plain pass of the run's first token, before the first edit.
   */
  private async probeSlots(ids: number[]): Promise<Map<string, number[]>> {
    const {outputs} = await this.runNow(ids.slice(0, 1), undefined, [...this.slots!], false);
    return new Map([...outputs].map(([hook, t]) => [hook, t.shape]));
  }

  /**
   * The session for a run structure, built on first use and kept: the graph with those edit sites, the lens or
   * packed inputs, over the same weights — the shared inputs, where the model has them, so that this session adds
   * no copy of them.
   */
  private sessionFor(structure: RunExtras["structure"]): Promise<InferenceSession> {
    const key = JSON.stringify(structure);
    let session = this.variants.get(key);
    if (!session) {
      session = this.openGraph((weight) => {
        try {
          return this.arch.buildGraph(weight, {...structure, weights: this.shared});
        } catch (error) {
          throw new WorkbenchError((error as Error).message);
        }
      });
      this.variants.set(key, session);
      session.catch(() => this.variants.delete(key));
    }
    return session;
  }

  /**
   * A session over another graph of the same weights. With shared weights the graph only names them (the first
   * graph computed them all), so nothing is read. Otherwise (`fromSource`: a graph with initializers, the lean
   * decode graph) they are read again from the source (the first graph
   * took its copies) and freed once the session holds its own where the runtime copies them.
   */
  private async openGraph(
    build: (weight: (name: string) => Float32Array) => EncodedModel,
    options: CreateOptions = this.options,
    fromSource = !this.shared
  ): Promise<InferenceSession> {
    const weight = !fromSource
      ? (name: string): never => {
          throw new Error(`${this.id}: weight ${name} is not among the shared weights its first graph named`);
        }
      : await this.weights.loadAll({signal: this.options.signal});
    return openSession(build(weight), options, releases(this.options));
  }

  /**
   * The lean decode path (runtime/decode.ts) for this model, made on first use and kept: on WebGPU, for a family
   * with a lean decode graph; undefined elsewhere, or where its session could not be made (`leanError` says why):
   * generation then runs on the traced graph, slower and as right.
   */
  leanDecoder(): Promise<LeanDecoder | undefined> | undefined {
    const inPlace = this.options.cacheInPlace === true;
    const wanted = this.options.leanDecode ?? !sharesShadersAcrossModels({inPlace});
    if (!onWebGPU(this.options) || !this.arch.buildDecodeGraph || !wanted) return undefined;
    // A model with sliding windows decodes on the lean graph only where GroupQueryAttention applies them, else on
    // the traced graph.
    const windowed = this.arch.slidingWindows.some((w) => w !== null);
    if (windowed && !localWindowHonoured({cacheInPlace: inPlace})) return undefined;
    if (!this.lean) {
      const build = this.arch.buildDecodeGraph.bind(this.arch);
      const capture = this.options.graphCapture === true && inPlace;
      // ort-web hands enableGraphCapture to the provider only when the provider is named as an object.
      const options: CreateOptions = capture
        ? {
            ...this.options,
            executionProviders: [{name: "webgpu"}],
            sessionOptions: {...this.options.sessionOptions, enableGraphCapture: true}
          }
        : this.options;
      // The lean graph's fused layouts (q, k and v in one matrix) are its own: it holds them as initializers, on the GPU.
      this.lean = this.openGraph(build, options, true)
        .then((session) =>
          LeanDecoder.create(this.options.ort, session, (encoded) => openSession(encoded, this.options), this.arch, {
            inPlace,
            capture,
            minPositions: this.options.cachePositions
          })
        )
        .catch((error: unknown) => {
          this.leanError = error instanceof Error ? error : new Error(String(error));
          return undefined;
        });
    }
    return this.lean;
  }

  /** Continue a prompt. Greedy unless `doSample`; tokens stream through `onToken`, each with its display piece. */
  generate(prompt: string | number[], options: LanguageModelGenerateOptions = {}): Promise<Generation> {
    const {onToken, ...rest} = options;
    return generate(this, prompt, {
      ...rest,
      onToken: onToken && ((token) => onToken({...token, piece: this.tokenizer.idToPiece(token.id)}))
    });
  }

  /** One of `ANALYSES` on this model, in this thread. */
  analyse<K extends AnalysisName>(name: K, ...args: AnalysisArgs<K>): Promise<AnalysisResult<K>> {
    const analysis = ANALYSES[name] as unknown as ((model: Model, ...args: unknown[]) => unknown) | undefined;
    if (typeof analysis !== "function" || !Object.hasOwn(ANALYSES, name))
      return Promise.reject(
        new WorkbenchError(`unknown analysis ${String(name)}: one of ${Object.keys(ANALYSES).join(", ")}`)
      );
    return Promise.resolve(analysis(this, ...args)) as Promise<AnalysisResult<K>>;
  }

  /** Calls in this thread run in the order they are made: nothing waits to be superseded, so a lane is the model. */
  lane(_name: string): Model {
    return this;
  }

  /** `encodeInput`, tokenizing through `encodeText` (a worker with a time limit) where the model has one. */
  async prepareInput(input: string | number[]): Promise<{ids: number[]; tokens: string[]}> {
    const encode = this.options.encodeText;
    if (typeof input !== "string" || !encode) return this.encodeInput(input);
    return this.encodeInput(input, await encode(input));
  }

  /** Tokenize a prompt (or take ids as they are) and check it fits the model. */
  encodeInput(
    input: string | number[],
    encoded?: {ids: number[]; tokens: string[]}
  ): {ids: number[]; tokens: string[]} {
    let ids: number[], tokens: string[];
    if (typeof input !== "string" && !Array.isArray(input))
      throw new WorkbenchError(
        `the input is a prompt (a string) or an array of token ids, got ${input === null ? "null" : typeof input}`
      );
    if (typeof input === "string") {
      ({ids, tokens} = encoded ?? this.tokenizer.encode(input));
      if (ids.length === 0)
        throw new WorkbenchError(`the prompt ${JSON.stringify(input)} tokenizes to no tokens: type some text`);
      // tokenizer.json may know more tokens than the model has embeddings (config.json's vocab_size): such an id
      // would reach onnxruntime's Gather as an index out of range.
      const beyond = ids.findIndex((id) => id >= this.config.vocabSize);
      if (beyond >= 0)
        throw new WorkbenchError(
          `token ${JSON.stringify(tokens[beyond])} has id ${ids[beyond]}, but ${this.id} has vocab_size ${this.config.vocabSize} (config.json): the model has no embedding for it`
        );
    } else {
      ids = input;
      for (const id of ids) {
        if (!Number.isInteger(id) || id < 0 || id >= this.config.vocabSize)
          throw new WorkbenchError(`token id ${id} is outside the vocabulary (0 to ${this.config.vocabSize - 1})`);
      }
      if (ids.length === 0) throw new WorkbenchError("no token ids to run");
      tokens = ids.map((id) => this.tokenizer.idToToken(id) ?? `<${id}>`);
    }
    if (ids.length > this.config.maxPositions)
      throw new WorkbenchError(
        `the prompt is ${ids.length} tokens long; ${this.id} takes at most ${this.config.maxPositions} positions`
      );
    return {ids, tokens};
  }

  private checkPath(path: string): void {
    if (this.hooks.has(path) || this.parameterNames.has(path)) return;
    const layers = this.config.numLayers;
    // The layer index of a path under the family's own layer prefix (`model.layers.`, `transformer.h.`, `gpt_neox.layers.`).
    const prefix = this.arch.roles.layer(0).replace(/0$/, "");
    const m = path.startsWith(prefix) ? /^(\d+)\./.exec(path.slice(prefix.length)) : null;
    const hint =
      m && Number(m[1]) >= layers
        ? `${this.id} has layers 0 to ${layers - 1}`
        : `hook points look like ${this.arch.roles.resid(0)}; model.hookPoints() lists them all`;
    throw new WorkbenchError(`unknown hook point ${path}: ${hint}`);
  }

  async dispose(): Promise<void> {
    await this.options.encodeText?.dispose?.();
    await this.session.release();
    for (const variant of this.variants.values())
      await variant.then(
        (session) => session.release(),
        () => undefined
      );
    this.variants.clear();
    if (this.lean)
      await this.lean.then(
        (lean) => lean?.dispose(),
        () => undefined
      );
    this.lean = undefined;
  }
}

/**
 * Bring outputs that stayed on the GPU (`location: "gpu-buffer"`) to the host in as few round trips as the
 * device allows: one `readBack` for them all (several, where they outgrow its largest buffer). onnxruntime-web's
 * own `getData()` maps each tensor on its own, and a wait for the GPU per tensor made fetching every hook point
 * of SmolLM2-135M ~5× slower than the logits alone. Host-side outputs are left as they are; the GPU tensors are
 * released.
 */
async function download(ort: Ort, tensors: (readonly [string, OrtTensor])[]): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  const onGpu = tensors.filter(([, t]) => t.location === "gpu-buffer");
  if (onGpu.length === 0) return out;
  const device = await gpuDevice(ort);
  const bytesOf = (t: OrtTensor) => t.size * 4;
  // Batches that fit one buffer; a tensor larger than that alone goes through ort.
  const limit = Math.min(device.limits.maxBufferSize, 1 << 30);
  const batches: (readonly [string, OrtTensor])[][] = [];
  let current: (readonly [string, OrtTensor])[] = [];
  let size = 0;
  for (const entry of onGpu) {
    const bytes = bytesOf(entry[1]);
    if (entry[1].type !== "float32" || bytes > limit) {
      out.set(entry[0], (await entry[1].getData(true)) as Float32Array);
      continue;
    }
    if (size + bytes > limit) (batches.push(current), (current = []), (size = 0));
    current.push(entry);
    size += bytes;
  }
  if (current.length) batches.push(current);
  for (const batch of batches) {
    const total = batch.reduce((sum, [, t]) => sum + bytesOf(t), 0);
    const host =
      total === 0
        ? new ArrayBuffer(0)
        : await readBack(
            device,
            batch.map(([, t]) => ({buffer: t.gpuBuffer, bytes: bytesOf(t)}))
          );
    let offset = 0;
    for (const [name, t] of batch) {
      out.set(name, new Float32Array(host, offset, t.size));
      offset += bytesOf(t);
      t.dispose();
    }
  }
  return out;
}

/**
 * The weights as external data that gives each buffer's memory back as soon as onnxruntime has copied it, rather
 * than when the session is made: the two copies (JavaScript's and onnxruntime's heap or GPU) then never both hold
 * every weight, and loading peaks near one copy. onnxruntime-web reads each weight's "file" once, with
 * `subarray`, and copies those bytes before it asks for another (synchronously, inside session creation), so
 * a buffer is freed when a later weight is asked for and every weight on it has been read. A buffer that holds
 * several weights (an fp32 checkpoint's file, viewed rather than copied) is freed after its last one.
 */
export function releasedAsCopied(
  files: EncodedModel["externalData"],
  onMakeError: (error: unknown) => void = () => {}
): EncodedModel["externalData"] {
  const unread = new Map<ArrayBufferLike, number>();
  for (const {data} of files.filter((f) => !f.lazy)) unread.set(data.buffer, (unread.get(data.buffer) ?? 0) + 1);
  let copied: ArrayBufferLike[] = [];
  return files.map((file) => {
    // (`file.data` is not read for a lazy weight: that would make its bytes now.)
    const {path, lazy} = file;
    if (lazy) {
      // Made only now, when onnxruntime asks for it, and freed at the next read like the others: loading never
      // holds a weight both here and in onnxruntime's heap beyond the one being copied.
      const view = new SeenWhenRead(new Uint8Array(lazy.byteLength), () => {
        releaseBuffers(copied);
        let bytes: Uint8Array;
        try {
          bytes = lazy.make();
        } catch (error) {
          onMakeError(error);
          throw error;
        }
        // Freed at the next read where the buffer is this weight's alone (a draw, a transpose, a widened tensor);
        // a view of a larger buffer (an fp32 checkpoint's file) is left to the garbage collector.
        copied = bytes.byteLength === bytes.buffer.byteLength ? [bytes.buffer] : [];
        return bytes;
      });
      return {path, data: view};
    }
    const {data} = file;
    let read = false;
    const view = new SeenWhenRead(data, () => {
      // The bytes handed out before this read have been copied by now.
      releaseBuffers(copied);
      copied = [];
      if (!read) {
        read = true;
        const left = unread.get(data.buffer)! - 1;
        unread.set(data.buffer, left);
        if (left === 0) copied.push(data.buffer);
      }
      return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    });
    return {path, data: view};
  });
}

/**
 * A weight's "file" as onnxruntime-web mounts it: a `Uint8Array` as given, whose `subarray` — how onnxruntime takes
 * the bytes, once per file — answers `read()`'s bytes instead, so the engine sees each read. `read` returns a view
 * of the weight's buffer, or makes the bytes then: a lazy weight (graph/onnx.ts `ExternalFile.lazy`) is mounted as
 * a buffer of its length that nothing writes, which takes no memory (the system hands out zero pages on first touch).
 */
class SeenWhenRead extends Uint8Array {
  constructor(
    view: Uint8Array,
    private readonly read: () => Uint8Array
  ) {
    super(view.buffer as ArrayBuffer, view.byteOffset, view.byteLength);
  }

  override subarray(begin?: number, end?: number): Uint8Array<ArrayBuffer> {
    return (this.read() as Uint8Array<ArrayBuffer>).subarray(begin, end);
  }
}

/**
 * Give the buffers' memory back now: `ArrayBuffer.prototype.transfer(0)` detaches a buffer and frees its
 * store (Chrome 114+, Firefox 122+, Safari 17.4+). Elsewhere (Node 20) the buffer is detached by transferring it
 * to a clone that nothing keeps, whose store the garbage collector frees.
 */
function releaseBuffers(buffers: ArrayBufferLike[]): void {
  for (const buffer of new Set(buffers) as Set<ArrayBuffer & {transfer?: (length: number) => ArrayBuffer}>) {
    const shared = typeof SharedArrayBuffer !== "undefined" && buffer instanceof SharedArrayBuffer;
    if (shared || buffer.byteLength === 0) continue;
    if (typeof buffer.transfer === "function") buffer.transfer(0);
    else structuredClone(buffer, {transfer: [buffer]});
  }
}
