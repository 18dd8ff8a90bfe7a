/**
 * Generation on the lean decode graph (graph/decode.ts), on WebGPU: per step one token id goes up and one comes
 * back (8 bytes), and everything else stays on the GPU.
 *
 * - The key/value cache is one GPU buffer per layer and per keys/values, of fixed capacity, bound both as the
 *   graph's past input and as its present output: GroupQueryAttention sees the same buffer and writes the new
 *   position in place (no concatenation, no new buffer per step).
 * - The token ids and the two lengths GroupQueryAttention takes go up as small host tensors (an upload, not a
 *   round trip).
 * - The greedy choice is the graph's ArgMax; sampling fetches the last position's logits instead.
 * - The prompt is one run; each new token one more.
 *
 * Graph capture (`enableGraphCapture`, replaying a step's recorded dispatches) is not used: onnxruntime-web
 * 1.30's native WebGPU provider fails on the first captured step of this graph (a bind group with a missing
 * buffer, in GroupQueryAttention's fused split/rotary/copy kernel — the path it takes only under capture).
 *
 * The cache's capacity is fixed when the session is made: a generation that would outgrow it is not run here
 * (`fits`), and goes the traced way.
 */
import type {InferenceSession, Tensor as OrtTensor} from "onnxruntime-common";
import type {Architecture} from "../arch/types.js";
import {cacheNames} from "../arch/types.js";
import {DECODE} from "../graph/decode.js";
import {LOGITS} from "../graph/names.js";
import {BUFFER_USAGE, MAP_MODE_READ, type GPUBufferLike, type GPUDeviceLike} from "./webgpu-types.js";

/** onnxruntime-web's module, as far as GPU tensors go. */
interface OrtWeb {
  InferenceSession: {create(model: Uint8Array, options?: InferenceSession.SessionOptions): Promise<InferenceSession>};
  Tensor: {
    fromGpuBuffer(buffer: unknown, options: {dataType: string; dims: readonly number[]}): OrtTensor;
  };
  env: {webgpu: {device: unknown}};
}

export interface LeanDecoderOptions {
  /** Positions the cache holds. */
  capacity: number;
  sessionOptions?: InferenceSession.SessionOptions;
}

export class LeanDecoder {
  /** How many positions the cache holds now. */
  length = 0;
  private constructor(
    private readonly ort: OrtWeb,
    private readonly session: InferenceSession,
    private readonly device: GPUDeviceLike,
    private readonly arch: Architecture,
    readonly capacity: number,
    private readonly buffers: {
      caches: {key: OrtTensor; value: OrtTensor}[];
      next: OrtTensor;
      staging: GPUBufferLike;
      raw: GPUBufferLike[];
    }
  ) {}

  static async create(
    ort: OrtWeb,
    arch: Architecture,
    weight: (name: string) => Float32Array,
    options: LeanDecoderOptions
  ): Promise<LeanDecoder> {
    if (!arch.buildDecodeGraph) throw new Error(`${arch.config.architecture} has no lean decode graph`);
    const capacity = Math.min(options.capacity, arch.config.maxPositions);
    const encoded = arch.buildDecodeGraph(weight, {capacity});
    const session = await ort.InferenceSession.create(encoded.model, {
      externalData: encoded.externalData,
      executionProviders: ["webgpu"],
      preferredOutputLocation: "gpu-buffer",
      graphOptimizationLevel: "all",
      logSeverityLevel: 3,
      ...options.sessionOptions
    });
    const device = (await ort.env.webgpu.device) as GPUDeviceLike;
    const raw: GPUBufferLike[] = [];
    const usage = BUFFER_USAGE.STORAGE | BUFFER_USAGE.COPY_SRC | BUFFER_USAGE.COPY_DST;
    const gpuTensor = (dataType: string, dims: number[], bytes: number) => {
      // WebGPU buffers are zero-filled when created, as the cache's unused positions must be.
      const buffer = device.createBuffer({size: Math.max(16, Math.ceil(bytes / 16) * 16), usage});
      raw.push(buffer);
      return ort.Tensor.fromGpuBuffer(buffer, {dataType, dims});
    };
    const {numLayers, numKeyValueHeads: KV, headDim: D} = arch.config;
    const cacheDims = [1, KV, capacity, D];
    const cacheBytes = KV * capacity * D * 4;
    const caches = Array.from({length: numLayers}, () => ({
      key: gpuTensor("float32", cacheDims, cacheBytes),
      value: gpuTensor("float32", cacheDims, cacheBytes)
    }));
    const staging = device.createBuffer({size: 16, usage: BUFFER_USAGE.MAP_READ | BUFFER_USAGE.COPY_DST});
    raw.push(staging);
    return new LeanDecoder(ort, session, device, arch, capacity, {
      caches,
      next: gpuTensor("int64", [1], 8),
      staging,
      raw
    });
  }

  private queue: Promise<unknown> = Promise.resolve();

  /**
   * Run `use` alone on this decoder (a whole generation: the cache is one): a second generation waits for the
   * first, as the traced path's runs wait for one another.
   */
  exclusive<T>(use: () => Promise<T>): Promise<T> {
    const result = this.queue.then(() => {
      this.length = 0;
      return use();
    });
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** Whether `total` positions fit the cache. */
  fits(total: number): boolean {
    return total <= this.capacity;
  }

  /**
   * Feed `ids` after what the cache holds, and return the greedy next token — or, with `logits`, the last
   * position's logits (read back: what sampling needs).
   */
  async step(ids: number[], {logits = false} = {}): Promise<{next: number; logits?: Float32Array}> {
    if (!this.fits(this.length + ids.length))
      throw new Error(`the lean decoder's cache holds ${this.capacity} positions`);
    return this.runOnce(ids, logits);
  }

  private cacheFetches(): Record<string, OrtTensor> {
    const fetches: Record<string, OrtTensor> = {};
    this.buffers.caches.forEach((c, i) => {
      fetches[cacheNames(i).presentKey] = c.key;
      fetches[cacheNames(i).presentValue] = c.value;
    });
    return fetches;
  }

  private cacheFeeds(): Record<string, OrtTensor> {
    const feeds: Record<string, OrtTensor> = {};
    this.buffers.caches.forEach((c, i) => {
      feeds[cacheNames(i).pastKey] = c.key;
      feeds[cacheNames(i).pastValue] = c.value;
    });
    return feeds;
  }

  private async runOnce(ids: number[], wantLogits: boolean): Promise<{next: number; logits?: Float32Array}> {
    const Tensor = this.ort.Tensor as unknown as new (
      type: string,
      data: unknown,
      dims: readonly number[]
    ) => OrtTensor;
    const total = this.length + ids.length;
    const fetches: Record<string, OrtTensor | null> = {...this.cacheFetches(), [DECODE.nextToken]: this.buffers.next};
    if (wantLogits) fetches[LOGITS] = null;
    const results = await this.session.run(
      {
        ...this.cacheFeeds(),
        input_ids: new Tensor("int64", BigInt64Array.from(ids, BigInt), [1, ids.length]),
        [DECODE.seqlensK]: new Tensor("int32", Int32Array.of(total - 1), [1]),
        [DECODE.totalLength]: new Tensor("int32", Int32Array.of(total), [])
      },
      fetches as Record<string, OrtTensor>
    );
    this.length = total;
    if (!wantLogits) return {next: await this.readNext()};
    const out = results[LOGITS];
    const data = (await out.getData(true)) as Float32Array;
    return {next: -1, logits: data};
  }

  /** The 8 bytes of `next_token`: one copy into a mappable buffer, one map. */
  private async readNext(): Promise<number> {
    const {next, staging} = this.buffers;
    const encoder = this.device.createCommandEncoder();
    encoder.copyBufferToBuffer(next.gpuBuffer, 0, staging, 0, 8);
    this.device.queue.submit([encoder.finish()]);
    await staging.mapAsync(MAP_MODE_READ);
    const id = Number(new BigInt64Array(staging.getMappedRange().slice(0, 8))[0]);
    staging.unmap();
    return id;
  }

  async dispose(): Promise<void> {
    await this.session.release();
    for (const buffer of this.buffers.raw) buffer.destroy();
  }
}
