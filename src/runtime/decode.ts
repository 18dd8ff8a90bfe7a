/**
 * Generation on the lean decode graph (graph/decode.ts), on WebGPU: per step one token id goes up and one comes
 * back (8 bytes); everything else stays on the GPU.
 *
 * How the cache is kept and a step run is the decoder's mode, one small object each: `InPlaceMode` (the native
 * provider, below), `CopyMode` (the JSEP build, whose GroupQueryAttention returns the cache anew each step) and
 * `CapturedMode` (in place, recorded once and replayed). `LeanDecoder` holds one and does the rest: a generation
 * at a time, the next token's readback, sampling's candidates.
 *
 * - The key/value cache is one GPU buffer per layer for keys and one for values, of a fixed capacity, bound as
 *   both the step's past input and its present output. GroupQueryAttention sees one buffer and writes the new
 *   positions in place, in the same kernel that splits q/k/v and applies the rotary: nothing is copied or
 *   allocated per step. The buffers are made for the first generation and made again, larger, only for a
 *   generation that needs more positions (`reserve`).
 * - The token ids and the two lengths GroupQueryAttention takes go up as small host tensors (an upload, not a
 *   round trip).
 * - The greedy choice is the graph's ArgMax. Sampling runs a second, weightless graph on the step's logits where
 *   they lie (graph/decode.ts `buildCandidatesGraph`): the k most likely tokens and softmax's denominator come back,
 *   `4 (1 + 2k)` bytes, and the whole vocabulary's logits only when those candidates cannot cover what top-p keeps.
 * - The prompt is one run; each new token one more.
 *
 * With `capture` (the native provider only), the step is recorded once and replayed (onnxruntime's graph capture,
 * `enableGraphCapture`): a replay dispatches the recorded kernels with their recorded bindings, and nothing of
 * onnxruntime's per-kernel work on the CPU runs again. What that asks of the decoder:
 *
 * - Every run binds the same tensors, and ort-web binds them once, at the session's first run: the ids, the two
 *   lengths, the positions, the next token, the logits and the cache are fixed GPU buffers, rewritten in place
 *   (`queue.writeBuffer`) before each run. They are the outputs of a small session of their own (`fixedTensors`):
 *   a buffer made here would lose its handle in ort-web when the run that registered it ends.
 * - Every run has one shape, one token: the prompt goes in one token a run, each run a replay.
 * - The cache's capacity is fixed (`CAPTURE_CAPACITY`); a longer generation runs on the traced graph.
 * - What a later kernel or the caller reads must be written by a kernel: a graph output made by a Reshape is a
 *   copy, which a replay skips (graph/decode.ts `headLogits`).
 *
 * `npx tsx bench/graph-capture.ts` shows what goes wrong without each of these.
 */
import type {InferenceSession, Tensor as OrtTensor} from "onnxruntime-common";
import type {Architecture} from "../arch/types.js";
import {cacheNames} from "../arch/types.js";
import {buildCandidatesGraph, CANDIDATES, DECODE, paddedHead} from "../graph/decode.js";
import {FLOAT, GraphBuilder, INT32, INT64, type EncodedModel} from "../graph/onnx.js";
import {LOGITS} from "../graph/names.js";
import {gpuDevice, gpuTensor, readBack, type Ort} from "./ort.js";
import {BUFFER_USAGE, type GPUBufferLike, type GPUDeviceLike} from "./webgpu-types.js";

/** What sampling needs of a step, from the GPU: the k most likely tokens, largest logit first. */
export interface Candidates {
  ids: number[];
  /** Their logits, as the model gave them (before the temperature). */
  logits: number[];
  /** log Σ exp(logit / temperature) over the whole vocabulary: a candidate's probability is exp(logit / T − this). */
  logSumExp: number;
}

export interface StepResult {
  /** The greedy choice (the graph's ArgMax); −1 when the step was asked for logits or candidates instead. */
  next: number;
  /** The last position's logits, when asked for (`logits: true`). */
  logits?: Float32Array;
  /** The candidates, when asked for, with the logits still on the GPU: `readLogits` brings them back if needed. */
  candidates?: Candidates;
  readLogits?: () => Promise<Float32Array>;
}

/**
 * Positions of cache made at the least (the default of `CreateOptions.cachePositions`), so that short generations
 * after one another reuse one set of buffers.
 */
export const MIN_CAPACITY = 256;

/**
 * Positions of cache a captured decoder holds, made once (a replay's bindings cannot change): SmolLM2-135M's take
 * 94 MB. Generations longer than this run on the traced graph.
 */
export const CAPTURE_CAPACITY = 2048;

/** Per layer, the keys and the values. */
type KeyValues = {key: OrtTensor; value: OrtTensor}[];

/** A step's logits `[1, V]`, still on the GPU: read them (once) or let them go. */
interface StepLogits {
  tensor: OrtTensor;
  read(): Promise<Float32Array>;
  release(): void;
}

/** What every mode works with: the session of the lean graph and the GPU it runs on. */
interface Context {
  ort: Ort;
  session: InferenceSession;
  device: GPUDeviceLike;
  arch: Architecture;
  /** Positions of cache an in-place decoder makes at the least. */
  minPositions: number;
}

/**
 * How a decoder keeps its cache and runs a step: `CopyMode` (JSEP: the cache returned anew each step),
 * `InPlaceMode` (the native provider: fixed-capacity buffers written in place) or `CapturedMode` (in place,
 * recorded once and replayed).
 */
interface DecodeMode {
  /** Whether GroupQueryAttention writes the cache in place (the native provider, which also has a GPU TopK). */
  readonly inPlace: boolean;
  readonly captured: boolean;
  /** `next_token`'s tensor, bound as the output of every step. */
  readonly nextToken: OrtTensor;
  /** How many positions the cache holds now: a step past it is refused. */
  readonly capacity: number;
  /** Whether a generation of `positions` fits (only a captured cache cannot grow). */
  holds(positions: number): boolean;
  /** An empty cache for a generation of `positions`. */
  start(positions: number): void;
  /** Run `ids` after the `length` positions the cache holds; the last position's logits when asked for. */
  run(ids: number[], length: number, wantLogits: boolean): Promise<StepLogits | undefined>;
  dispose(): Promise<void>;
}

/**
 * One run of an uncaptured mode: the new ids, GroupQueryAttention's two lengths and the positions (where the graph
 * takes them) go up as host tensors; the cache is the past, and in place the present too (GroupQueryAttention
 * writes the new positions into it), else the presents are new tensors, the next step's past.
 */
function runStep(
  {ort, session}: Context,
  {
    ids,
    length,
    cache,
    inPlace,
    nextToken,
    wantLogits
  }: {
    ids: number[];
    length: number;
    cache: KeyValues;
    inPlace: boolean;
    nextToken: OrtTensor;
    wantLogits: boolean;
  }
): Promise<InferenceSession.ReturnType> {
  const total = length + ids.length;
  const feeds: Record<string, OrtTensor> = {
    input_ids: new ort.Tensor("int64", BigInt64Array.from(ids, BigInt), [1, ids.length]),
    [DECODE.seqlensK]: new ort.Tensor("int32", Int32Array.of(total - 1), [1]),
    [DECODE.totalLength]: new ort.Tensor("int32", Int32Array.of(total), [])
  };
  if (session.inputNames.includes(DECODE.positions)) {
    const positions = BigInt64Array.from(ids, (_, k) => BigInt(length + k));
    feeds[DECODE.positions] = new ort.Tensor("int64", positions, [1, ids.length]);
  }
  const fetches: Record<string, OrtTensor | null> = {[DECODE.nextToken]: nextToken};
  cache.forEach(({key, value}, i) => {
    const names = cacheNames(i);
    feeds[names.pastKey] = key;
    feeds[names.pastValue] = value;
    fetches[names.presentKey] = inPlace ? key : null;
    fetches[names.presentValue] = inPlace ? value : null;
  });
  if (wantLogits) fetches[LOGITS] = null;
  return session.run(feeds, fetches as Record<string, OrtTensor>);
}

/** Logits that onnxruntime made for the step: `getData(true)` reads and frees them. */
function ownedLogits(tensor: OrtTensor): StepLogits {
  return {tensor, read: async () => (await tensor.getData(true)) as Float32Array, release: () => tensor.dispose()};
}

/** An int64 `[1]` GPU buffer of our own for `next_token` (the uncaptured modes). */
function nextTokenBuffer({ort, device}: Context): OrtTensor {
  const buffer = device.createBuffer({
    size: 16,
    usage: BUFFER_USAGE.STORAGE | BUFFER_USAGE.COPY_SRC | BUFFER_USAGE.COPY_DST
  });
  return gpuTensor(ort, buffer, "int64", [1]);
}

/**
 * Whether onnxruntime-web reuses compiled shaders across models in one process where the lean graph would run: the
 * JSEP build does (found with onnxruntime-web 1.30, not re-checked since: mini-pythia's lean graph run before
 * stories260K's gives stories260K wrong tokens), the native provider (`inPlace`) does not. Where it does, the lean graph decodes only when asked for
 * (`leanDecode: true`), one model to an onnxruntime instance, as the pages' worker holds.
 */
export function sharesShadersAcrossModels({inPlace}: {inPlace: boolean}): boolean {
  return !inPlace;
}

/**
 * The JSEP build's GroupQueryAttention returns the cache anew each step: the presents of one step are the next
 * one's past, and a generation starts from a cache of no positions (host tensors of no bytes).
 */
class CopyMode implements DecodeMode {
  readonly inPlace = false;
  readonly captured = false;
  readonly capacity = Infinity;
  readonly nextToken: OrtTensor;
  private cache: KeyValues = [];

  constructor(private readonly ctx: Context) {
    this.nextToken = nextTokenBuffer(ctx);
  }

  holds(): boolean {
    return true;
  }

  start(): void {
    const {numLayers, numKeyValueHeads: KV, headDim} = this.ctx.arch.config;
    const empty = () => new this.ctx.ort.Tensor("float32", new Float32Array(0), [1, KV, 0, paddedHead(headDim).P]);
    this.release();
    this.cache = Array.from({length: numLayers}, () => ({key: empty(), value: empty()}));
  }

  async run(ids: number[], length: number, wantLogits: boolean): Promise<StepLogits | undefined> {
    const {cache, nextToken} = this;
    const results = await runStep(this.ctx, {ids, length, cache, inPlace: false, nextToken, wantLogits});
    this.release();
    this.cache = Array.from({length: this.ctx.arch.config.numLayers}, (_, i) => ({
      key: results[cacheNames(i).presentKey],
      value: results[cacheNames(i).presentValue]
    }));
    return wantLogits ? ownedLogits(results[LOGITS]) : undefined;
  }

  private release(): void {
    for (const {key, value} of this.cache) (key.dispose(), value.dispose());
    this.cache = [];
  }

  async dispose(): Promise<void> {
    this.release();
    (this.nextToken.gpuBuffer as GPUBufferLike).destroy();
  }
}

/**
 * The native provider's GroupQueryAttention writes the new positions into the cache it reads: one GPU buffer per
 * layer for keys and one for values, of a fixed capacity, bound as both past and present. They are made for the
 * first generation and made again, larger, only for a generation that needs more positions.
 */
class InPlaceMode implements DecodeMode {
  readonly inPlace = true;
  readonly captured = false;
  readonly nextToken: OrtTensor;
  capacity = 0;
  private cache: KeyValues = [];

  constructor(private readonly ctx: Context) {
    this.nextToken = nextTokenBuffer(ctx);
  }

  holds(): boolean {
    return true;
  }

  /** Make the cache hold at least `positions` (buffers are zero-filled when made). */
  start(positions: number): void {
    if (positions <= this.capacity) return;
    this.release();
    const {numLayers, numKeyValueHeads: KV, headDim, maxPositions} = this.ctx.arch.config;
    const capacity = Math.min(Math.max(positions, this.ctx.minPositions), maxPositions);
    const dims = [1, KV, capacity, paddedHead(headDim).P];
    const size = dims.reduce((a, b) => a * b, 1) * 4;
    const usage = BUFFER_USAGE.STORAGE | BUFFER_USAGE.COPY_SRC | BUFFER_USAGE.COPY_DST;
    const tensor = () => gpuTensor(this.ctx.ort, this.ctx.device.createBuffer({size, usage}), "float32", dims);
    this.cache = Array.from({length: numLayers}, () => ({key: tensor(), value: tensor()}));
    this.capacity = capacity;
  }

  async run(ids: number[], length: number, wantLogits: boolean): Promise<StepLogits | undefined> {
    const {cache, nextToken} = this;
    const results = await runStep(this.ctx, {ids, length, cache, inPlace: true, nextToken, wantLogits});
    return wantLogits ? ownedLogits(results[LOGITS]) : undefined;
  }

  private release(): void {
    for (const {key, value} of this.cache)
      ((key.gpuBuffer as GPUBufferLike).destroy(), (value.gpuBuffer as GPUBufferLike).destroy());
    this.cache = [];
    this.capacity = 0;
  }

  async dispose(): Promise<void> {
    this.release();
    (this.nextToken.gpuBuffer as GPUBufferLike).destroy();
  }
}

/**
 * In place, recorded once and replayed (see above): every run binds the same fixed tensors (`fixedTensors`),
 * rewritten in place before it, one token a run. The session's first run records the step; every later run
 * replays the record. The cache holds `CAPTURE_CAPACITY` positions and cannot grow.
 */
class CapturedMode implements DecodeMode {
  readonly inPlace = true;
  readonly captured = true;
  readonly nextToken: OrtTensor;
  readonly capacity: number;

  private constructor(
    private readonly ctx: Context,
    private readonly fixed: Fixed
  ) {
    this.nextToken = fixed.next;
    this.capacity = Math.min(CAPTURE_CAPACITY, ctx.arch.config.maxPositions);
  }

  static async create(ctx: Context, open: (encoded: EncodedModel) => Promise<InferenceSession>): Promise<CapturedMode> {
    return new CapturedMode(ctx, await fixedTensors(open, ctx.arch, ctx.session.inputNames.includes(DECODE.positions)));
  }

  holds(positions: number): boolean {
    return positions <= this.capacity;
  }

  /** Positions left from an earlier generation are never read: attention reads the first `total_sequence_length`. */
  start(positions: number): void {
    // The buffers are bound for good: they cannot be made again, larger.
    if (positions > this.capacity)
      throw new Error(`the captured decoder's cache holds ${this.capacity} positions, not ${positions}`);
  }

  async run(ids: number[], length: number, wantLogits: boolean): Promise<StepLogits | undefined> {
    const {fixed} = this;
    const feeds: Record<string, OrtTensor> = {
      input_ids: fixed.ids,
      [DECODE.seqlensK]: fixed.seqlensK,
      [DECODE.totalLength]: fixed.totalLength
    };
    if (fixed.positions) feeds[DECODE.positions] = fixed.positions;
    const fetches: Record<string, OrtTensor> = {[DECODE.nextToken]: fixed.next, [LOGITS]: fixed.logits};
    fixed.cache.forEach(({key, value}, i) => {
      const names = cacheNames(i);
      feeds[names.pastKey] = fetches[names.presentKey] = key;
      feeds[names.pastValue] = fetches[names.presentValue] = value;
    });
    const write = (tensor: OrtTensor, data: ArrayBufferView) =>
      this.ctx.device.queue.writeBuffer(tensor.gpuBuffer, 0, data);
    for (const [k, id] of ids.entries()) {
      write(fixed.ids, BigInt64Array.of(BigInt(id)));
      write(fixed.seqlensK, Int32Array.of(length + k));
      write(fixed.totalLength, Int32Array.of(length + k + 1));
      if (fixed.positions) write(fixed.positions, BigInt64Array.of(BigInt(length + k)));
      await this.ctx.session.run(feeds, fetches);
    }
    if (!wantLogits) return undefined;
    // The fixed logits stay where they are (the next replay overwrites them): read into a buffer of their own.
    const bytes = 4 * this.ctx.arch.config.vocabSize;
    return {
      tensor: fixed.logits,
      read: async () => new Float32Array(await readBack(this.ctx.device, [{buffer: fixed.logits.gpuBuffer, bytes}])),
      release: () => {}
    };
  }

  async dispose(): Promise<void> {
    const {owner, cache, ...tensors} = this.fixed;
    for (const tensor of [...Object.values(tensors), ...cache.flatMap(({key, value}) => [key, value])])
      tensor?.dispose();
    await owner.release();
  }
}

export class LeanDecoder {
  /** How many positions the cache holds now. */
  private length = 0;
  private queue: Promise<unknown> = Promise.resolve();
  /** The candidates graph's session, opened the first time a generation samples. */
  private candidateSession?: Promise<InferenceSession>;
  /** The last sampling step's logits, on the GPU until the next step (or the generation's end) lets them go. */
  private lastLogits?: StepLogits;

  private constructor(
    private readonly ctx: Context,
    private readonly mode: DecodeMode,
    /** Opens a session over another graph with the model's options (the candidates graph). */
    private readonly open: (encoded: EncodedModel) => Promise<InferenceSession>,
    /** The small mappable buffer `next_token` is copied to for reading, kept for every step. */
    private readonly staging: GPUBufferLike
  ) {}

  /**
   * The decoder over a session of the architecture's lean decode graph (`buildDecodeGraph`), outputs on the GPU:
   * `inPlace` where GroupQueryAttention writes the cache in place (the native provider), else the JSEP build's copy;
   * with `capture`, a session opened with `enableGraphCapture` (in place only).
   */
  static async create(
    ort: Ort,
    session: InferenceSession,
    open: (encoded: EncodedModel) => Promise<InferenceSession>,
    arch: Architecture,
    {
      inPlace,
      capture = false,
      minPositions = MIN_CAPACITY
    }: {inPlace: boolean; capture?: boolean; minPositions?: number}
  ): Promise<LeanDecoder> {
    const ctx: Context = {ort, session, device: await gpuDevice(ort), arch, minPositions};
    if (capture && !inPlace)
      throw new Error("graph capture needs the cache written in place (the native WebGPU provider)");
    const mode = capture ? await CapturedMode.create(ctx, open) : inPlace ? new InPlaceMode(ctx) : new CopyMode(ctx);
    const staging = ctx.device.createBuffer({size: 16, usage: BUFFER_USAGE.MAP_READ | BUFFER_USAGE.COPY_DST});
    return new LeanDecoder(ctx, mode, open, staging);
  }

  /** Positions the cache holds room for now (in place: made on the first generation, larger for a longer one). */
  get capacity(): number {
    return this.mode.capacity;
  }

  /** Whether a generation of `positions` fits: a captured decoder's cache cannot grow. */
  holds(positions: number): boolean {
    return this.mode.holds(positions);
  }

  /** Whether the decode step is recorded once and replayed (graph capture). */
  get captured(): boolean {
    return this.mode.captured;
  }

  /**
   * Whether sampling's candidates are picked on the GPU: the native provider has a TopK kernel; the JSEP build
   * runs TopK on the CPU, which would read the logits back anyway, and a second time.
   */
  get candidatesOnGpu(): boolean {
    return this.mode.inPlace;
  }

  /**
   * Run `use` alone on this decoder, from an empty cache that holds `positions` (a whole generation: the cache is
   * one): a second generation waits for the first, as the traced path's runs wait for one another.
   */
  exclusive<T>(positions: number, use: () => Promise<T>): Promise<T> {
    const result = this.queue.then(() => {
      this.mode.start(positions);
      this.length = 0;
      return use().finally(() => this.releaseLogits());
    });
    this.queue = result.catch(() => undefined);
    return result;
  }

  /**
   * Feed `ids` after what the cache holds, and return the greedy next token — or, with `logits`, the last
   * position's logits (read back), or with `candidates`, the k most likely tokens at that temperature.
   */
  async step(
    ids: number[],
    {logits = false, candidates}: {logits?: boolean; candidates?: {k: number; temperature: number}} = {}
  ): Promise<StepResult> {
    this.releaseLogits();
    const total = this.length + ids.length;
    if (total > this.mode.capacity)
      throw new Error(`the lean decoder's cache holds ${this.mode.capacity} positions, not ${total}`);
    const out = await this.mode.run(ids, this.length, logits || candidates !== undefined);
    this.length = total;
    if (!out) return {next: await this.readNext()};
    if (logits) {
      const data = await out.read();
      out.release();
      return {next: -1, logits: data};
    }
    this.lastLogits = out;
    return {
      next: -1,
      candidates: await this.candidates(out.tensor, candidates!),
      readLogits: async () => {
        if (this.lastLogits !== out) throw new Error("a step's logits are kept only until the next step");
        this.lastLogits = undefined;
        const data = await out.read();
        out.release();
        return data;
      }
    };
  }

  /** The candidates graph on `logits` (on the GPU): one run, one readback of `4 (1 + 2k)` bytes. */
  private async candidates(logits: OrtTensor, {k, temperature}: {k: number; temperature: number}): Promise<Candidates> {
    const {Tensor} = this.ctx.ort;
    if (!this.candidateSession) {
      this.candidateSession = this.open(buildCandidatesGraph(this.ctx.arch.config.vocabSize));
      this.candidateSession.catch(() => (this.candidateSession = undefined));
    }
    const session = await this.candidateSession;
    const results = await session.run({
      [LOGITS]: logits,
      [CANDIDATES.k]: new Tensor("int64", BigInt64Array.of(BigInt(k)), [1]),
      [CANDIDATES.temperature]: new Tensor("float32", Float32Array.of(temperature), [])
    });
    const data = (await results[CANDIDATES.output].getData(true)) as Float32Array;
    return {
      logSumExp: data[0],
      logits: Array.from(data.subarray(1, 1 + k)),
      ids: Array.from(data.subarray(1 + k, 1 + 2 * k))
    };
  }

  private releaseLogits(): void {
    this.lastLogits?.release();
    this.lastLogits = undefined;
  }

  /** The 8 bytes of `next_token`: one copy into the kept mappable buffer, one map. */
  private async readNext(): Promise<number> {
    const host = await readBack(this.ctx.device, [{buffer: this.mode.nextToken.gpuBuffer, bytes: 8}], this.staging);
    return Number(new BigInt64Array(host)[0]);
  }

  async dispose(): Promise<void> {
    this.releaseLogits();
    await this.ctx.session.release();
    await this.candidateSession?.then((session) => session.release()).catch(() => undefined);
    await this.mode.dispose();
    this.staging.destroy();
  }
}

/** The tensors a captured decoder binds for every run (`fixedTensors`), rewritten in place before each. */
interface Fixed {
  ids: OrtTensor;
  seqlensK: OrtTensor;
  totalLength: OrtTensor;
  positions?: OrtTensor;
  next: OrtTensor;
  logits: OrtTensor;
  cache: KeyValues;
  /** The session whose outputs these are: they live as long as it and they are not disposed. */
  owner: InferenceSession;
}

/**
 * The tensors a captured decoder binds for every run, as the outputs of a session that makes zeros of their shapes:
 * ort-web keeps its own outputs' buffers registered (a buffer made here and passed in loses its handle when the run
 * ends, and a replay would bind the lost handle). The cache holds `CAPTURE_CAPACITY` positions.
 */
async function fixedTensors(
  open: (encoded: EncodedModel) => Promise<InferenceSession>,
  arch: Architecture,
  positions: boolean
): Promise<Fixed> {
  const {numLayers, numKeyValueHeads: KV, headDim, vocabSize, maxPositions} = arch.config;
  const cacheDims = [1, KV, Math.min(CAPTURE_CAPACITY, maxPositions), paddedHead(headDim).P];
  const shapes: [string, number, number[]][] = [
    ["ids", INT64, [1, 1]],
    ["seqlensK", INT32, [1]],
    ["totalLength", INT32, []],
    ["next", INT64, [1]],
    ["logits", FLOAT, [1, vocabSize]]
  ];
  if (positions) shapes.push(["positions", INT64, [1, 1]]);
  for (let i = 0; i < numLayers; i++) shapes.push([`key${i}`, FLOAT, cacheDims], [`value${i}`, FLOAT, cacheDims]);
  const g = new GraphBuilder();
  for (const [name, type, dims] of shapes) {
    // Expand, a kernel: an output that a node merely passes on would not get a buffer of its own.
    const zeros = g.op("Expand", [g.constant([0], [1], type), g.ints(dims.length ? dims : [1])]);
    g.output(name, dims.length ? zeros : g.op("ReduceMax", [zeros], {keepdims: 0}), type, dims);
  }
  const owner = await open(g.build("fixed_tensors"));
  const t = await owner.run({});
  return {
    ids: t.ids,
    seqlensK: t.seqlensK,
    totalLength: t.totalLength,
    positions: t.positions,
    next: t.next,
    logits: t.logits,
    cache: Array.from({length: numLayers}, (_, i) => ({key: t[`key${i}`], value: t[`value${i}`]})),
    owner
  };
}
