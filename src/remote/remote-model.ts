/**
 * A model that runs on NDIF (the National Deep Inference Fabric: hosted Llama-3.1-8B/70B/405B and others) through
 * the relay (relay/PROTOCOL.md; src/remote/relay.ts is its client). It is a `LanguageModel`, as the in-process
 * `Model` and the pages' `WorkerModel` are: its config comes from the model's own config.json through the same
 * `normalizeConfig` and `architectureFor`, so its hook points, module tree and parameters carry the same names as
 * a local model of its family, and it tokenizes here with the model's own tokenizer.json (the relay takes ids).
 *
 * What runs where:
 * - `trace` → the relay's `trace` experiment (hook paths, edits with number values, positions sliced on NDIF);
 * - `generate` → `generate` (the new tokens stream through `onToken` once the job is done);
 * - `analyse("lensView" | "patchingView" | "ablationView", …)` → `lens`, `patching`, `ablation`, whose results
 *   have the fields of `logitLens`, `patchSweep` and `ablateHeads`, and go to the same view code as theirs
 *   (analysis/inside-model.ts: `lensViewOf`, `patchingViewOf`, `ablationViewOf`);
 * - the analyses that only trace run here over the remote trace; the others are refused by name.
 * Weights stay on NDIF: `weight()` is an error.
 */
import {architectureFor, normalizeConfig, type Architecture, type ModelConfig} from "../arch/index.js";
import {ModelStructure} from "../runtime/model-structure.js";
import {topK} from "../analysis/index.js";
import {
  ablationViewOf,
  defaultAnswers,
  lensViewOf,
  patchingViewOf,
  type AblationView,
  type LensView,
  type PatchingView
} from "../analysis/inside-model.js";
import type {LogitLens} from "../analysis/lens.js";
import {PATCH_KINDS, type AblationSweep, type PatchKind, type PatchSweep} from "../analysis/patching.js";
import {LOGIT_LENS, PATCHING, checkOption, generationOptions} from "../defaults.js";
import {WorkbenchError} from "../errors.js";
import {LOGITS} from "../graph/names.js";
import {checkHubId} from "../hub/ids.js";
import type {Edit} from "../runtime/edits.js";
import {textStream, type Generation} from "../runtime/generate.js";
import {
  ANALYSES,
  type AnalysisArgs,
  type AnalysisName,
  type AnalysisResult,
  type LanguageModel,
  type LanguageModelGenerateOptions,
  type Trace
} from "../runtime/language-model.js";
import type {Tensor} from "../runtime/tensor.js";
import {tracer} from "../runtime/trace.js";
import {REMOTE_ORIGIN} from "../runtime/weights.js";
import {Tokenizer, type Encoding} from "../tokenizer.js";
import {Relay, type Experiment, type JobProgress, type RelayOptions, type RelayResult} from "./relay.js";

export {DEFAULT_RELAY, type JobProgress} from "./relay.js";

/** The prefix that names a remote model: `ndif:meta-llama/Llama-3.1-8B`. */
export const NDIF_PREFIX = "ndif:";

export interface RemoteLoadOptions extends RelayOptions {
  /** Each job's state and queue position, as it changes (also settable later as `model.onJob`). */
  onJob?: (progress: JobProgress) => void;
  signal?: AbortSignal;
}

/** The analyses that only trace: they run here, each of their traces a job on NDIF. */
const TRACING_ANALYSES = new Set<AnalysisName>([
  "analyseTokens",
  "anatomyTrace",
  "attentionSource",
  "attentionTrace",
  "contextTrace",
  "defaultPair",
  "firstToken"
]);

/** Read the model's config and tokenizer through the relay; `id` is a Hub id, with or without `ndif:`. */
export async function loadRemoteModel(id: string, options: RemoteLoadOptions = {}): Promise<RemoteModel> {
  const repo = checkHubId(id.startsWith(NDIF_PREFIX) ? id.slice(NDIF_PREFIX.length) : id);
  const relay = new Relay(options);
  const {signal} = options;
  await relay.health(signal);
  const config = normalizeConfig(
    await relay.modelFile(repo, "config.json", {signal}),
    `${repo}'s config.json (from the relay)`
  );
  const tokenizerConfig =
    (await relay.modelFile<Record<string, unknown>>(repo, "tokenizer_config.json", {signal, optional: true})) ?? {};
  const tokenizer = Tokenizer.fromJson(await relay.modelFile(repo, "tokenizer.json", {signal}), tokenizerConfig);
  return new RemoteModel(repo, config, tokenizer, relay, options.onJob);
}

export class RemoteModel extends ModelStructure implements LanguageModel {
  readonly backend: string;
  readonly weightsOrigin = `${REMOTE_ORIGIN}: the Hub checkpoint, run on NDIF's servers`;
  readonly arch: Architecture;
  /** How many jobs have completed on NDIF. */
  runs = 0;
  /** Called with each job's state and queue position (the pages' status line, the CLI's stderr). */
  onJob?: (progress: JobProgress) => void;
  private readonly hooks: Set<string>;
  /** Jobs in flight: `dispose` cancels them. */
  private readonly running = new Set<AbortController>();

  constructor(
    readonly id: string,
    readonly config: ModelConfig,
    readonly tokenizer: Tokenizer,
    readonly relay: Relay,
    onJob?: (progress: JobProgress) => void
  ) {
    super();
    this.arch = architectureFor(config);
    this.backend = `NDIF via relay ${relay.address}`;
    this.hooks = new Set([...this.arch.hookPoints(), LOGITS]);
    this.onJob = onJob;
  }

  tokenize(text: string): Encoding {
    return this.tokenizer.encode(text);
  }

  pieces(ids: number[]): string[] {
    return ids.map((id) => this.tokenizer.idToPiece(id));
  }

  weight(path: string): Promise<Tensor> {
    return Promise.reject(
      new WorkbenchError(
        `${this.id} runs on NDIF: its weights (${path}) stay there; trace hook points instead, or load the model ` +
          `locally to read weights`
      )
    );
  }

  /** A prompt tokenized (or ids taken as they are), checked against the vocabulary and the context length. */
  encodeInput(input: string | number[]): {ids: number[]; tokens: string[]} {
    let ids: number[], tokens: string[];
    if (typeof input === "string") {
      ({ids, tokens} = this.tokenizer.encode(input));
      if (ids.length === 0)
        throw new WorkbenchError(`the prompt ${JSON.stringify(input)} tokenizes to no tokens: type some text`);
    } else if (Array.isArray(input)) {
      ids = input;
      if (ids.length === 0) throw new WorkbenchError("no token ids to run");
      tokens = ids.map((id) => this.tokenizer.idToToken(id) ?? `<${id}>`);
    } else
      throw new WorkbenchError(
        `the input is a prompt (a string) or an array of token ids, got ${input === null ? "null" : typeof input}`
      );
    for (const id of ids)
      if (!Number.isInteger(id) || id < 0 || id >= this.config.vocabSize)
        throw new WorkbenchError(
          `token id ${id} is outside ${this.id}'s vocabulary (0 to ${this.config.vocabSize - 1})`
        );
    if (ids.length > this.config.maxPositions)
      throw new WorkbenchError(
        `the prompt is ${ids.length} tokens long; ${this.id} takes at most ${this.config.maxPositions} positions`
      );
    return {ids, tokens};
  }

  /** As `Model.prepareInput`: the CLI calls it on either model. */
  async prepareInput(input: string | number[]): Promise<{ids: number[]; tokens: string[]}> {
    return this.encodeInput(input);
  }

  /** One forward pass on NDIF (`Trace` says what it takes); `positions` are sliced there, before the download. */
  readonly trace: Trace = tracer(async (input, paths, edits, {signal, positions}) => {
    paths.forEach((path) => this.checkHook(path, "trace"));
    const {ids, tokens} = this.encodeInput(input);
    for (const p of positions ?? [])
      if (!Number.isInteger(p) || p < -ids.length || p >= ids.length)
        throw new WorkbenchError(`trace: position ${p} is outside the prompt's ${ids.length} positions`);
    const params = {
      input_ids: ids,
      hooks: paths,
      ...(positions && {positions}),
      ...(edits.length && {edits: edits.map((edit, i) => this.remoteEdit(edit, i))})
    };
    const result = await this.job("trace", params, signal);
    const tensors = new Map<string, Tensor>();
    const T = positions?.length ?? ids.length;
    for (const path of paths) tensors.set(path, expectTensor(result, path, [1, T], this, "trace"));
    return {tensors, input_ids: ids, tokens, sliced: true};
  });

  /**
   * Continue a prompt on NDIF. The new tokens stream through `onToken` once the job is done (NDIF answers with
   * the whole generation); `signal` cancels the job, and the generation then ends "aborted" with nothing new.
   * Sampling draws from NDIF's own generator: a seed gives the same tokens there, not the local engine's.
   */
  async generate(prompt: string | number[], options: LanguageModelGenerateOptions = {}): Promise<Generation> {
    const {onToken, signal, edits, stopAtEos = true, useCache: _cache, ...rest} = options;
    if (edits?.length)
      throw new WorkbenchError(
        `generation with edits (steering) is not available on NDIF through the relay: its generate experiment takes no edits`
      );
    if (!stopAtEos)
      throw new WorkbenchError(`generation past the end-of-sequence token is not available on NDIF through the relay`);
    const settings = generationOptions(rest);
    const {ids} = this.encodeInput(prompt);
    const decode = (sequence: number[]) => this.tokenizer.decode(sequence, {skipSpecialTokens: true});
    const params = {
      input_ids: ids,
      max_new_tokens: settings.maxNewTokens,
      do_sample: settings.doSample,
      ...(settings.doSample && {
        temperature: settings.temperature,
        top_k: settings.topK,
        top_p: settings.topP,
        seed: settings.seed
      })
    };
    let result: RelayResult;
    try {
      result = await this.job("generate", params, signal);
    } catch (error) {
      if (signal?.aborted) return {input_ids: ids, new_ids: [], text: decode(ids), stopped: "aborted"};
      throw error;
    }
    const newIds = Array.from(expectTensor(result, "ids", [undefined], this, "generate").data);
    const finish = result.header.finish;
    if (finish !== "length" && finish !== "eos")
      throw malformedResult(
        this,
        "generate",
        `its header's "finish" is ${JSON.stringify(finish)}, not "length" or "eos"`
      );
    const stream = textStream(this, ids);
    const sequence = [...ids];
    for (const [index, id] of newIds.entries()) {
      if (signal?.aborted)
        return {input_ids: ids, new_ids: sequence.slice(ids.length), text: decode(sequence), stopped: "aborted"};
      sequence.push(id);
      const text = stream(sequence, index === newIds.length - 1);
      onToken?.({id, text, index, piece: this.tokenizer.idToPiece(id)});
    }
    return {
      input_ids: ids,
      new_ids: newIds,
      text: decode(sequence),
      stopped: finish === "eos" ? "eos" : "max_new_tokens"
    };
  }

  /** The logit lens on NDIF (the relay's `lens`), with the fields of `logitLens`'s answer. */
  async logitLens(input: string | number[], options: {k?: number; signal?: AbortSignal} = {}): Promise<LogitLens> {
    const k = checkOption({...LOGIT_LENS.k, max: this.config.vocabSize}, options.k, "the lens's k");
    const {ids, tokens} = this.encodeInput(input);
    const result = await this.job("lens", {input_ids: ids, k}, options.signal);
    const L = this.config.numLayers;
    const shape = [L, ids.length, k];
    return {
      input_ids: ids,
      tokens,
      hooks: headerHooks(result, L, this, "lens"),
      k,
      topIds: expectTensor(result, "top_ids", shape, this, "lens"),
      topLogprobs: expectTensor(result, "top_logprobs", shape, this, "lens")
    };
  }

  /** One patching sweep on NDIF (the relay's `patching`): `patchSweep`'s fields, tracking `ids` (two tokens). */
  async patchSweep(
    clean: string | number[],
    corrupt: string | number[],
    kind: PatchKind,
    options: {ids: [number, number]; top?: number; signal?: AbortSignal}
  ): Promise<PatchSweep & {top: NonNullable<PatchSweep["top"]>}> {
    if (!PATCH_KINDS.includes(kind))
      throw new WorkbenchError(`unknown patching kind ${String(kind)}: use ${PATCH_KINDS.join(", ")}`);
    const c = this.encodeInput(clean);
    const x = this.encodeInput(corrupt);
    if (c.ids.length !== x.ids.length)
      throw new WorkbenchError(
        `the clean and corrupt prompts must have as many tokens to patch position by position: clean is ${c.ids.length} ` +
          `(${JSON.stringify(c.tokens)}), corrupt ${x.ids.length} (${JSON.stringify(x.tokens)})`
      );
    const ids = this.checkAnswers(options.ids);
    const top = options.top ?? PATCHING.top;
    const result = await this.job(
      "patching",
      {clean_ids: c.ids, corrupt_ids: x.ids, kind, answers: ids, top},
      options.signal
    );
    const [L, T, V] = [this.config.numLayers, c.ids.length, this.config.vocabSize];
    return {
      kind,
      clean_ids: c.ids,
      corrupt_ids: x.ids,
      clean_tokens: c.tokens,
      corrupt_tokens: x.tokens,
      ...sweepOf(result, [L, T], ids, top, this, "patching"),
      clean: expectTensor(result, "clean", [V], this, "patching").data,
      corrupt: expectTensor(result, "corrupt", [V], this, "patching").data
    };
  }

  /** Every head knocked out in turn on NDIF (the relay's `ablation`): `ablateHeads`'s fields, tracking `ids`. */
  async ablateHeads(
    input: string | number[],
    options: {ids: [number, number]; top?: number; signal?: AbortSignal}
  ): Promise<AblationSweep & {top: NonNullable<AblationSweep["top"]>}> {
    const {ids: inputIds, tokens} = this.encodeInput(input);
    const ids = this.checkAnswers(options.ids);
    const top = options.top ?? PATCHING.top;
    const result = await this.job("ablation", {input_ids: inputIds, answers: ids, top}, options.signal);
    const [L, H, V] = [this.config.numLayers, this.config.numHeads, this.config.vocabSize];
    return {
      input_ids: inputIds,
      tokens,
      ...sweepOf(result, [L, H], ids, top, this, "ablation"),
      base: expectTensor(result, "base", [V], this, "ablation").data
    };
  }

  /**
   * One of `ANALYSES`, with the arguments that follow its model: the lens, patching and ablation views from the
   * relay's experiments, the analyses that only trace over the remote trace; the others are refused by name.
   */
  analyse<K extends AnalysisName>(name: K, ...args: AnalysisArgs<K>): Promise<AnalysisResult<K>> {
    const run = async (): Promise<unknown> => {
      if (name === "lensView") return this.lensView(...(args as unknown as AnalysisArgs<"lensView">));
      if (name === "patchingView") return this.patchingView(...(args as unknown as AnalysisArgs<"patchingView">));
      if (name === "ablationView") return this.ablationView(...(args as unknown as AnalysisArgs<"ablationView">));
      if (TRACING_ANALYSES.has(name))
        return (ANALYSES[name] as unknown as (model: RemoteModel, ...rest: unknown[]) => unknown)(this, ...args);
      if (!Object.hasOwn(ANALYSES, name))
        throw new WorkbenchError(`unknown analysis ${String(name)}: one of ${Object.keys(ANALYSES).join(", ")}`);
      throw new WorkbenchError(
        `${String(name)} is not available on a remote model (${this.id} on NDIF): the relay's experiments are ` +
          `trace, generate, lens, patching and ablation`
      );
    };
    return run() as Promise<AnalysisResult<K>>;
  }

  private async lensView(prompt: string, k: number = LOGIT_LENS.k.default): Promise<LensView> {
    return lensViewOf(await this.logitLens(prompt, {k}), prompt, (id) => this.tokenizer.idToPiece(id));
  }

  private async patchingView(
    clean: string,
    corrupt: string,
    {
      answers,
      kinds = PATCH_KINDS,
      top = PATCHING.top,
      onProgress,
      signal
    }: NonNullable<AnalysisArgs<"patchingView">[2]> & {signal?: AbortSignal} = {}
  ): Promise<PatchingView> {
    const ids =
      answers ?? defaultAnswers(await this.nextTokenLogits(clean, signal), await this.nextTokenLogits(corrupt, signal));
    const sweeps = [];
    for (const kind of kinds) {
      const runs = this.config.numLayers * this.encodeInput(corrupt).ids.length;
      onProgress?.(kind, 0, runs);
      sweeps.push(await this.patchSweep(clean, corrupt, kind, {ids, top, signal}));
      onProgress?.(kind, runs, runs);
    }
    return patchingViewOf(clean, corrupt, sweeps, ids, (id) => this.tokenizer.idToPiece(id));
  }

  private async ablationView(
    prompt: string,
    {
      answers,
      top = PATCHING.top,
      onProgress,
      signal
    }: NonNullable<AnalysisArgs<"ablationView">[1]> & {
      signal?: AbortSignal;
    } = {}
  ): Promise<AblationView> {
    const ids = answers ?? (topK(await this.nextTokenLogits(prompt, signal), 2) as [number, number]);
    const runs = this.config.numLayers * this.config.numHeads;
    onProgress?.(0, runs);
    const sweep = await this.ablateHeads(prompt, {ids, top, signal});
    onProgress?.(runs, runs);
    return ablationViewOf(prompt, sweep, ids, (id) => this.tokenizer.idToPiece(id));
  }

  /** The next-token logits after `text`: one trace of the last position's logits (a `[V]` download). */
  async nextTokenLogits(text: string, signal?: AbortSignal): Promise<Float32Array> {
    return (await this.trace(text, [LOGITS], {positions: [-1], signal}))[LOGITS].data;
  }

  /** A view of this model that is the model itself: jobs run as they are asked for. */
  lane(_name: string): RemoteModel {
    return this;
  }

  /** Cancel the jobs still running on NDIF. */
  dispose(): void {
    for (const controller of this.running) controller.abort(new DOMException("the model was closed", "AbortError"));
    this.running.clear();
  }

  /** A job on NDIF, cancelled by `signal` or by `dispose`, its progress reported through `onJob`. */
  private async job(experiment: Experiment, params: object, signal?: AbortSignal): Promise<RelayResult> {
    const controller = new AbortController();
    const stop = () => controller.abort(signal?.reason);
    if (signal?.aborted) stop();
    signal?.addEventListener("abort", stop, {once: true});
    this.running.add(controller);
    try {
      const result = await this.relay.run(this.id, experiment, params, {
        signal: controller.signal,
        onProgress: (progress) => this.onJob?.(progress)
      });
      this.runs++;
      return result;
    } finally {
      this.running.delete(controller);
      signal?.removeEventListener("abort", stop);
    }
  }

  private checkHook(path: string, what: string): void {
    if (this.hooks.has(path)) return;
    if (this.arch.parameters().some((p) => p.name === path))
      throw new WorkbenchError(`${what}: ${path} is a weight; ${this.id} runs on NDIF, where its weights stay`);
    const layers = this.config.numLayers;
    const prefix = this.arch.roles.layer(0).replace(/0$/, "");
    const m = path.startsWith(prefix) ? /^(\d+)\./.exec(path.slice(prefix.length)) : null;
    const hint =
      m && Number(m[1]) >= layers
        ? `${this.id} has layers 0 to ${layers - 1}`
        : `hook points look like ${this.arch.roles.resid(0)}; model.hookPoints() lists them all`;
    throw new WorkbenchError(`${what}: unknown hook point ${path}: ${hint}`);
  }

  /** An edit as the relay takes it: a number value, positions and a last-axis range (PROTOCOL.md, `trace`). */
  private remoteEdit(edit: Edit, i: number): object {
    const where = `edits[${i}] at ${edit.hook}`;
    this.checkHook(edit.hook, where);
    if (typeof edit.value !== "number")
      throw new WorkbenchError(
        `${where}: a remote trace takes number values only (the relay sends no tensors to NDIF)`
      );
    if (edit.index !== undefined)
      throw new WorkbenchError(`${where}: index selections are not available remotely; use positions or range`);
    return {
      hook: edit.hook,
      op: edit.op,
      value: edit.value,
      ...(edit.positions && {positions: edit.positions}),
      ...(edit.range && {range: edit.range})
    };
  }

  private checkAnswers(ids: readonly number[]): [number, number] {
    if (!Array.isArray(ids) || ids.length !== 2)
      throw new WorkbenchError(
        `the relay's sweeps track two tokens (the metric's answer and its other), got ${JSON.stringify(ids)}`
      );
    for (const id of ids)
      if (!Number.isInteger(id) || id < 0 || id >= this.config.vocabSize)
        throw new WorkbenchError(`token id ${id} is outside the vocabulary (0 to ${this.config.vocabSize - 1})`);
    return [ids[0], ids[1]];
  }
}

const malformedResult = (model: RemoteModel, experiment: Experiment, what: string) =>
  new WorkbenchError(`${model.id}, ${experiment} job: the relay's result is malformed: ${what}`);

/** A result's tensor `name`, checked against the shape expected (`undefined`: any length on that axis; a prefix checks the leading axes). */
function expectTensor(
  result: RelayResult,
  name: string,
  shape: (number | undefined)[],
  model: RemoteModel,
  experiment: Experiment
): Tensor {
  const tensor = result.tensors.get(name);
  if (!tensor) throw malformedResult(model, experiment, `it has no tensor ${name}`);
  const fits =
    (shape.length === tensor.shape.length || (experiment === "trace" && tensor.shape.length >= shape.length)) &&
    shape.every((n, i) => n === undefined || n === tensor.shape[i]);
  if (!fits)
    throw malformedResult(
      model,
      experiment,
      `tensor ${name} has shape [${tensor.shape.join(", ")}], expected [${shape.map((n) => n ?? "n").join(", ")}${experiment === "trace" ? ", …" : ""}]`
    );
  return tensor;
}

/**
 * A sweep's hooks (one per layer), the answers' logits (`[layers, rows, 2]`) and the top tokens (`[layers, rows,
 * top]`), as the local sweeps give them (`sweepTensors` in analysis/patching.ts), in the same field order.
 */
function sweepOf(
  result: RelayResult,
  [L, rows]: [number, number],
  ids: [number, number],
  top: number,
  model: RemoteModel,
  experiment: "patching" | "ablation"
) {
  return {
    hooks: headerHooks(result, L, model, experiment),
    ids,
    logits: expectTensor(result, "logits", [L, rows, 2], model, experiment),
    top: {
      ids: expectTensor(result, "top_ids", [L, rows, top], model, experiment),
      logits: expectTensor(result, "top_logits", [L, rows, top], model, experiment)
    }
  };
}

/** The header's `hooks`: one path per layer. */
function headerHooks(result: RelayResult, layers: number, model: RemoteModel, experiment: Experiment): string[] {
  const hooks = result.header.hooks;
  if (!Array.isArray(hooks) || hooks.length !== layers || !hooks.every((h) => typeof h === "string"))
    throw malformedResult(model, experiment, `its header's "hooks" is not a list of ${layers} hook paths`);
  return hooks as string[];
}
