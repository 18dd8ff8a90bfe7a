/**
 * Generation on the lean decode graph (graph/decode.ts), on WebGPU: per step one token id goes up and one comes
 * back (8 bytes); everything else stays on the GPU.
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
import {BUFFER_USAGE, MAP_MODE_READ, type GPUBufferLike, type GPUDeviceLike} from "./webgpu-types.js";

/** onnxruntime-web's module, as far as the lean decoder goes. */
interface OrtWeb {
  Tensor: {
    new (type: string, data: unknown, dims: readonly number[]): OrtTensor;
    fromGpuBuffer(buffer: unknown, options: {dataType: string; dims: readonly number[]}): OrtTensor;
  };
  env: {webgpu: {device: unknown}};
}

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

/** Positions of cache made at the least, so that short generations after one another reuse one set of buffers. */
const MIN_CAPACITY = 256;

/**
 * Positions of cache a captured decoder holds, made once (a replay's bindings cannot change): SmolLM2-135M's take
 * 94 MB. Generations longer than this run on the traced graph.
 */
export const CAPTURE_CAPACITY = 2048;

/** The tensors a captured decoder binds for every run (`fixedTensors`), rewritten in place before each. */
interface Fixed {
  ids: OrtTensor;
  seqlensK: OrtTensor;
  totalLength: OrtTensor;
  positions?: OrtTensor;
  logits: OrtTensor;
  /** The session whose outputs these are: they live as long as it and they are not disposed. */
  owner: InferenceSession;
}

export class LeanDecoder {
  /** How many positions the cache holds now. */
  private length = 0;
  /**
   * Per layer, the keys and the values: in place, buffers of `[1, kvHeads, capacity, paddedHeadDim]`; else the
   * last step's present tensors, `[1, kvHeads, length, paddedHeadDim]`.
   */
  private cache: {key: OrtTensor; value: OrtTensor}[] = [];
  private capacity = 0;
  private queue: Promise<unknown> = Promise.resolve();
  /** The candidates graph's session, opened the first time a generation samples. */
  private candidateSession?: Promise<InferenceSession>;
  /** The last sampling step's logits, on the GPU until the next step (or the generation's end) lets them go. */
  private lastLogits?: OrtTensor;
  /** Steps run so far: a captured decoder's logits stay readable until the next step overwrites them. */
  private steps = 0;

  private constructor(
    private readonly ort: OrtWeb,
    private readonly session: InferenceSession,
    /** Opens a session over another graph with the model's options (the candidates graph). */
    private readonly open: (encoded: EncodedModel) => Promise<InferenceSession>,
    private readonly device: GPUDeviceLike,
    private readonly arch: Architecture,
    /** Whether GroupQueryAttention writes the cache in place (the native provider) or returns it anew (JSEP). */
    private readonly inPlace: boolean,
    /** `next_token`'s tensor, bound as the output each step, and the small buffer it is copied to for reading. */
    private readonly next: {tensor: OrtTensor; staging: GPUBufferLike},
    /** A captured decoder's fixed tensors (its cache is `cache`, made with them). */
    private readonly fixed?: Fixed
  ) {}

  /**
   * The decoder over a session of the architecture's lean decode graph (`buildDecodeGraph`), outputs on the GPU;
   * with `capture`, a session opened with `enableGraphCapture`.
   */
  static async create(
    ort: OrtWeb,
    session: InferenceSession,
    open: (encoded: EncodedModel) => Promise<InferenceSession>,
    arch: Architecture,
    {inPlace, capture = false}: {inPlace: boolean; capture?: boolean}
  ): Promise<LeanDecoder> {
    const device = (await ort.env.webgpu.device) as GPUDeviceLike;
    const staging = device.createBuffer({size: 16, usage: BUFFER_USAGE.MAP_READ | BUFFER_USAGE.COPY_DST});
    if (capture) {
      if (!inPlace) throw new Error("graph capture needs the cache written in place (the native WebGPU provider)");
      const {fixed, next, cache} = await fixedTensors(open, arch, session.inputNames.includes(DECODE.positions));
      const decoder = new LeanDecoder(ort, session, open, device, arch, inPlace, {tensor: next, staging}, fixed);
      decoder.cache = cache;
      decoder.capacity = Math.min(CAPTURE_CAPACITY, arch.config.maxPositions);
      return decoder;
    }
    const buffer = device.createBuffer({
      size: 16,
      usage: BUFFER_USAGE.STORAGE | BUFFER_USAGE.COPY_SRC | BUFFER_USAGE.COPY_DST
    });
    const tensor = ort.Tensor.fromGpuBuffer(buffer, {dataType: "int64", dims: [1]});
    return new LeanDecoder(ort, session, open, device, arch, inPlace, {tensor, staging});
  }

  /** Whether a generation of `positions` fits: a captured decoder's cache cannot grow. */
  holds(positions: number): boolean {
    return !this.fixed || positions <= this.capacity;
  }

  /** Whether the decode step is recorded once and replayed (graph capture). */
  get captured(): boolean {
    return this.fixed !== undefined;
  }

  /**
   * Whether sampling's candidates are picked on the GPU: the native provider has a TopK kernel; the JSEP build
   * runs TopK on the CPU, which would read the logits back anyway, and a second time.
   */
  get candidatesOnGpu(): boolean {
    return this.inPlace;
  }

  /**
   * Run `use` alone on this decoder, from an empty cache that holds `positions` (a whole generation: the cache is
   * one): a second generation waits for the first, as the traced path's runs wait for one another. Positions
   * left from an earlier generation are never read: attention reads the first `total_sequence_length`.
   */
  exclusive<T>(positions: number, use: () => Promise<T>): Promise<T> {
    const result = this.queue.then(() => {
      if (this.inPlace) this.reserve(positions);
      else this.emptyCache();
      this.length = 0;
      return use().finally(() => this.releaseLogits());
    });
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** Make the cache hold at least `positions` (buffers are zero-filled when made). */
  private reserve(positions: number): void {
    if (positions <= this.capacity) return;
    // A captured decoder's buffers are bound for good: they cannot be made again, larger.
    if (this.fixed) throw new Error(`the captured decoder's cache holds ${this.capacity} positions, not ${positions}`);
    this.releaseCache();
    const {numLayers, numKeyValueHeads: KV, headDim} = this.arch.config;
    const capacity = Math.min(Math.max(positions, MIN_CAPACITY), this.arch.config.maxPositions);
    const dims = [1, KV, capacity, paddedHead(headDim).P];
    const size = dims.reduce((a, b) => a * b, 1) * 4;
    const usage = BUFFER_USAGE.STORAGE | BUFFER_USAGE.COPY_SRC | BUFFER_USAGE.COPY_DST;
    const tensor = () =>
      this.ort.Tensor.fromGpuBuffer(this.device.createBuffer({size, usage}), {dataType: "float32", dims});
    this.cache = Array.from({length: numLayers}, () => ({key: tensor(), value: tensor()}));
    this.capacity = capacity;
  }

  /** Copy mode: a cache of no positions, the next step's past (host tensors of no bytes). */
  private emptyCache(): void {
    this.releaseCache();
    const {numLayers, numKeyValueHeads: KV, headDim} = this.arch.config;
    const empty = () => new this.ort.Tensor("float32", new Float32Array(0), [1, KV, 0, paddedHead(headDim).P]);
    this.cache = Array.from({length: numLayers}, () => ({key: empty(), value: empty()}));
  }

  private releaseCache(): void {
    for (const {key, value} of this.cache)
      if (this.inPlace && !this.fixed)
        ((key.gpuBuffer as GPUBufferLike).destroy(), (value.gpuBuffer as GPUBufferLike).destroy());
      else (key.dispose(), value.dispose());
    this.cache = [];
    this.capacity = 0;
  }

  /**
   * Feed `ids` after what the cache holds, and return the greedy next token — or, with `logits`, the last
   * position's logits (read back), or with `candidates`, the k most likely tokens at that temperature.
   */
  async step(
    ids: number[],
    {logits = false, candidates}: {logits?: boolean; candidates?: {k: number; temperature: number}} = {}
  ): Promise<StepResult> {
    const {Tensor} = this.ort;
    this.releaseLogits();
    this.steps++;
    const total = this.length + ids.length;
    if (this.inPlace && total > this.capacity)
      throw new Error(`the lean decoder's cache holds ${this.capacity} positions, not ${total}`);
    if (this.fixed) return this.capturedStep(this.fixed, ids, {logits, candidates});
    const feeds: Record<string, OrtTensor> = {
      input_ids: new Tensor("int64", BigInt64Array.from(ids, BigInt), [1, ids.length]),
      [DECODE.seqlensK]: new Tensor("int32", Int32Array.of(total - 1), [1]),
      [DECODE.totalLength]: new Tensor("int32", Int32Array.of(total), [])
    };
    if (this.session.inputNames.includes(DECODE.positions)) {
      const positions = BigInt64Array.from(ids, (_, k) => BigInt(this.length + k));
      feeds[DECODE.positions] = new Tensor("int64", positions, [1, ids.length]);
    }
    const fetches: Record<string, OrtTensor | null> = {[DECODE.nextToken]: this.next.tensor};
    // In place: one buffer as both past and present, GroupQueryAttention writes the new positions into it.
    // Else the presents are new tensors, the next step's past.
    this.cache.forEach(({key, value}, i) => {
      const names = cacheNames(i);
      feeds[names.pastKey] = key;
      feeds[names.pastValue] = value;
      fetches[names.presentKey] = this.inPlace ? key : null;
      fetches[names.presentValue] = this.inPlace ? value : null;
    });
    if (logits || candidates) fetches[LOGITS] = null;
    const results = await this.session.run(feeds, fetches as Record<string, OrtTensor>);
    this.length = total;
    if (!this.inPlace) {
      this.releaseCache();
      this.cache = Array.from({length: this.arch.config.numLayers}, (_, i) => ({
        key: results[cacheNames(i).presentKey],
        value: results[cacheNames(i).presentValue]
      }));
    }
    if (logits) return {next: -1, logits: (await results[LOGITS].getData(true)) as Float32Array};
    if (!candidates) return {next: await this.readNext()};
    const last = (this.lastLogits = results[LOGITS]);
    return {
      next: -1,
      candidates: await this.candidates(last, candidates),
      readLogits: async () => {
        if (this.lastLogits !== last) throw new Error("a step's logits are kept only until the next step");
        this.lastLogits = undefined;
        return (await last.getData(true)) as Float32Array;
      }
    };
  }

  /**
   * `step` on a captured decoder: one run a token, each with the fixed tensors rewritten first. The session's first
   * run records the step (and runs it); every later run replays the record.
   */
  private async capturedStep(
    fixed: Fixed,
    ids: number[],
    {logits, candidates}: {logits: boolean; candidates?: {k: number; temperature: number}}
  ): Promise<StepResult> {
    const feeds: Record<string, OrtTensor> = {
      input_ids: fixed.ids,
      [DECODE.seqlensK]: fixed.seqlensK,
      [DECODE.totalLength]: fixed.totalLength
    };
    if (fixed.positions) feeds[DECODE.positions] = fixed.positions;
    const fetches: Record<string, OrtTensor> = {[DECODE.nextToken]: this.next.tensor, [LOGITS]: fixed.logits};
    this.cache.forEach(({key, value}, i) => {
      const names = cacheNames(i);
      feeds[names.pastKey] = fetches[names.presentKey] = key;
      feeds[names.pastValue] = fetches[names.presentValue] = value;
    });
    const write = (tensor: OrtTensor, data: ArrayBufferView) =>
      this.device.queue.writeBuffer(tensor.gpuBuffer, 0, data);
    for (const id of ids) {
      write(fixed.ids, BigInt64Array.of(BigInt(id)));
      write(fixed.seqlensK, Int32Array.of(this.length));
      write(fixed.totalLength, Int32Array.of(this.length + 1));
      if (fixed.positions) write(fixed.positions, BigInt64Array.of(BigInt(this.length)));
      await this.session.run(feeds, fetches);
      this.length++;
    }
    const V = this.arch.config.vocabSize;
    if (logits) return {next: -1, logits: new Float32Array(await this.readBuffer(fixed.logits, 4 * V))};
    if (!candidates) return {next: await this.readNext()};
    const step = this.steps;
    return {
      next: -1,
      candidates: await this.candidates(fixed.logits, candidates),
      readLogits: async () => {
        if (this.steps !== step) throw new Error("a step's logits are kept only until the next step");
        return new Float32Array(await this.readBuffer(fixed.logits, 4 * V));
      }
    };
  }

  /** The candidates graph on `logits` (on the GPU): one run, one readback of `4 (1 + 2k)` bytes. */
  private async candidates(logits: OrtTensor, {k, temperature}: {k: number; temperature: number}): Promise<Candidates> {
    const {Tensor} = this.ort;
    if (!this.candidateSession) {
      this.candidateSession = this.open(buildCandidatesGraph(this.arch.config.vocabSize));
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
    this.lastLogits?.dispose();
    this.lastLogits = undefined;
  }

  /** The 8 bytes of `next_token`: one copy into a mappable buffer, one map. */
  private async readNext(): Promise<number> {
    const {tensor, staging} = this.next;
    return Number(new BigInt64Array(await this.copyOut(tensor, staging, 8))[0]);
  }

  /** The first `bytes` of a tensor that stays where it is (a fixed one): copied into a buffer of its own, mapped. */
  private async readBuffer(tensor: OrtTensor, bytes: number): Promise<ArrayBuffer> {
    const staging = this.device.createBuffer({size: bytes, usage: BUFFER_USAGE.MAP_READ | BUFFER_USAGE.COPY_DST});
    try {
      return await this.copyOut(tensor, staging, bytes);
    } finally {
      staging.destroy();
    }
  }

  /** The first `bytes` of `tensor`, copied into the mappable `staging` and mapped: one readback. */
  private async copyOut(tensor: OrtTensor, staging: GPUBufferLike, bytes: number): Promise<ArrayBuffer> {
    const encoder = this.device.createCommandEncoder();
    encoder.copyBufferToBuffer(tensor.gpuBuffer, 0, staging, 0, bytes);
    this.device.queue.submit([encoder.finish()]);
    await staging.mapAsync(MAP_MODE_READ);
    const data = staging.getMappedRange().slice(0, bytes);
    staging.unmap();
    return data;
  }

  async dispose(): Promise<void> {
    this.releaseLogits();
    await this.session.release();
    await this.candidateSession?.then((session) => session.release()).catch(() => undefined);
    this.releaseCache();
    if (this.fixed) {
      const {owner, ...tensors} = this.fixed;
      for (const tensor of [...Object.values(tensors), this.next.tensor]) tensor?.dispose();
      await owner.release();
    } else (this.next.tensor.gpuBuffer as GPUBufferLike).destroy();
    this.next.staging.destroy();
  }
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
): Promise<{fixed: Fixed; next: OrtTensor; cache: {key: OrtTensor; value: OrtTensor}[]}> {
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
    fixed: {
      ids: t.ids,
      seqlensK: t.seqlensK,
      totalLength: t.totalLength,
      positions: t.positions,
      logits: t.logits,
      owner
    },
    next: t.next,
    cache: Array.from({length: numLayers}, (_, i) => ({key: t[`key${i}`], value: t[`value${i}`]}))
  };
}
