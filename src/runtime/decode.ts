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
 * - The greedy choice is the graph's ArgMax; sampling fetches the last position's logits instead.
 * - The prompt is one run; each new token one more.
 *
 * Graph capture (`enableGraphCapture`, replaying a step's recorded dispatches; the steps here have fixed shapes)
 * is not used: onnxruntime-web 1.30's native WebGPU provider records the fused split/rotary/cache kernel with its
 * present_key and present_value bindings empty when they are the caller's buffers, and Dawn refuses that bind
 * group on the first captured step.
 */
import type {InferenceSession, Tensor as OrtTensor} from "onnxruntime-common";
import type {Architecture} from "../arch/types.js";
import {cacheNames} from "../arch/types.js";
import {DECODE, paddedHead} from "../graph/decode.js";
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

/** Positions of cache made at the least, so that short generations after one another reuse one set of buffers. */
const MIN_CAPACITY = 256;

export class LeanDecoder {
  /** How many positions the cache holds now. */
  private length = 0;
  /** Per layer, the keys' and the values' buffers, `[1, kvHeads, capacity, paddedHeadDim]`. */
  private cache: {key: OrtTensor; value: OrtTensor}[] = [];
  private capacity = 0;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly ort: OrtWeb,
    private readonly session: InferenceSession,
    private readonly device: GPUDeviceLike,
    private readonly arch: Architecture,
    /** `next_token`'s buffer, bound as the output each step, and the small buffer it is copied to for reading. */
    private readonly next: {tensor: OrtTensor; buffer: GPUBufferLike; staging: GPUBufferLike}
  ) {}

  /** The decoder over a session of the architecture's lean decode graph (`buildDecodeGraph`), outputs on the GPU. */
  static async create(ort: OrtWeb, session: InferenceSession, arch: Architecture): Promise<LeanDecoder> {
    const device = (await ort.env.webgpu.device) as GPUDeviceLike;
    const buffer = device.createBuffer({
      size: 16,
      usage: BUFFER_USAGE.STORAGE | BUFFER_USAGE.COPY_SRC | BUFFER_USAGE.COPY_DST
    });
    const staging = device.createBuffer({size: 16, usage: BUFFER_USAGE.MAP_READ | BUFFER_USAGE.COPY_DST});
    const tensor = ort.Tensor.fromGpuBuffer(buffer, {dataType: "int64", dims: [1]});
    return new LeanDecoder(ort, session, device, arch, {tensor, buffer, staging});
  }

  /**
   * Run `use` alone on this decoder, from an empty cache that holds `positions` (a whole generation: the cache is
   * one): a second generation waits for the first, as the traced path's runs wait for one another. Positions
   * left from an earlier generation are never read: attention reads the first `total_sequence_length`.
   */
  exclusive<T>(positions: number, use: () => Promise<T>): Promise<T> {
    const result = this.queue.then(() => {
      this.reserve(positions);
      this.length = 0;
      return use();
    });
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** Make the cache hold at least `positions` (buffers are zero-filled when made). */
  private reserve(positions: number): void {
    if (positions <= this.capacity) return;
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

  private releaseCache(): void {
    for (const {key, value} of this.cache)
      ((key.gpuBuffer as GPUBufferLike).destroy(), (value.gpuBuffer as GPUBufferLike).destroy());
    this.cache = [];
    this.capacity = 0;
  }

  /**
   * Feed `ids` after what the cache holds, and return the greedy next token — or, with `logits`, the last
   * position's logits (read back: what sampling needs).
   */
  async step(ids: number[], {logits = false} = {}): Promise<{next: number; logits?: Float32Array}> {
    const {Tensor} = this.ort;
    const total = this.length + ids.length;
    const feeds: Record<string, OrtTensor> = {
      input_ids: new Tensor("int64", BigInt64Array.from(ids, BigInt), [1, ids.length]),
      [DECODE.seqlensK]: new Tensor("int32", Int32Array.of(total - 1), [1]),
      [DECODE.totalLength]: new Tensor("int32", Int32Array.of(total), [])
    };
    if (this.session.inputNames.includes(DECODE.positions)) {
      const positions = BigInt64Array.from(ids, (_, k) => BigInt(this.length + k));
      feeds[DECODE.positions] = new Tensor("int64", positions, [1, ids.length]);
    }
    if (total > this.capacity)
      throw new Error(`the lean decoder's cache holds ${this.capacity} positions, not ${total}`);
    const fetches: Record<string, OrtTensor | null> = {[DECODE.nextToken]: this.next.tensor};
    // One buffer as both past and present: GroupQueryAttention writes the new positions in place.
    this.cache.forEach(({key, value}, i) => {
      const names = cacheNames(i);
      feeds[names.pastKey] = fetches[names.presentKey] = key;
      feeds[names.pastValue] = fetches[names.presentValue] = value;
    });
    if (logits) fetches[LOGITS] = null;
    const results = await this.session.run(feeds, fetches as Record<string, OrtTensor>);
    this.length = total;
    if (!logits) return {next: await this.readNext()};
    const out = results[LOGITS];
    const data = (await out.getData(true)) as Float32Array;
    return {next: -1, logits: data};
  }

  /** The 8 bytes of `next_token`: one copy into a mappable buffer, one map. */
  private async readNext(): Promise<number> {
    const {buffer, staging} = this.next;
    const encoder = this.device.createCommandEncoder();
    encoder.copyBufferToBuffer(buffer, 0, staging, 0, 8);
    this.device.queue.submit([encoder.finish()]);
    await staging.mapAsync(MAP_MODE_READ);
    const id = Number(new BigInt64Array(staging.getMappedRange().slice(0, 8))[0]);
    staging.unmap();
    return id;
  }

  async dispose(): Promise<void> {
    await this.session.release();
    this.releaseCache();
    this.next.buffer.destroy();
    this.next.staging.destroy();
  }
}
