/**
 * Generation on the lean decode graph (graph/decode.ts), on WebGPU: per step one token id goes up and one comes
 * back (8 bytes); everything else stays on the GPU.
 *
 * - The key/value cache stays in GPU buffers between steps: each step's `present.*` outputs are the next step's
 *   past inputs, as on the traced path; GroupQueryAttention appends the new position inside the step.
 * - The token ids and the two lengths GroupQueryAttention takes go up as small host tensors (an upload, not a
 *   round trip).
 * - The greedy choice is the graph's ArgMax; sampling fetches the last position's logits instead.
 * - The prompt is one run; each new token one more.
 *
 * Not done, and why: a cache of fixed capacity written in place (GroupQueryAttention's fused split/rotary/copy
 * kernel, one kernel a layer less), and graph capture (`enableGraphCapture`), which needs fixed shapes. Under
 * capture, onnxruntime-web 1.30's native WebGPU provider fails on this graph's first step (a bind group with a
 * missing buffer in that fused kernel). In-place mode without capture is untried: the one attempt predates the
 * graph's declaring its `present.*` outputs, so it showed nothing.
 */
import type {InferenceSession, Tensor as OrtTensor} from "onnxruntime-common";
import type {Architecture} from "../arch/types.js";
import {cacheNames} from "../arch/types.js";
import {DECODE, paddedHead} from "../graph/decode.js";
import {LOGITS} from "../graph/names.js";
import {releaseCache, type Cache} from "./cache.js";
import {BUFFER_USAGE, MAP_MODE_READ, type GPUBufferLike, type GPUDeviceLike} from "./webgpu-types.js";

/** onnxruntime-web's module, as far as the lean decoder goes. */
interface OrtWeb {
  Tensor: {
    new (type: string, data: unknown, dims: readonly number[]): OrtTensor;
    fromGpuBuffer(buffer: unknown, options: {dataType: string; dims: readonly number[]}): OrtTensor;
  };
  env: {webgpu: {device: unknown}};
}

export class LeanDecoder {
  /** How many positions the cache holds now. */
  private length = 0;
  private cache?: Cache;
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
   * Run `use` alone on this decoder, from an empty cache (a whole generation: the cache is one): a second
   * generation waits for the first, as the traced path's runs wait for one another.
   */
  exclusive<T>(use: () => Promise<T>): Promise<T> {
    const result = this.queue.then(async () => {
      this.length = 0;
      try {
        return await use();
      } finally {
        releaseCache(this.cache);
        this.cache = undefined;
      }
    });
    this.queue = result.catch(() => undefined);
    return result;
  }

  /**
   * Feed `ids` after what the cache holds, and return the greedy next token — or, with `logits`, the last
   * position's logits (read back: what sampling needs).
   */
  async step(ids: number[], {logits = false} = {}): Promise<{next: number; logits?: Float32Array}> {
    const {Tensor} = this.ort;
    const {numLayers, numKeyValueHeads: KV, headDim} = this.arch.config;
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
    const empty = new Float32Array(0);
    const padded = paddedHead(headDim).P;
    const fetches: Record<string, OrtTensor | null> = {[DECODE.nextToken]: this.next.tensor};
    for (let i = 0; i < numLayers; i++) {
      const names = cacheNames(i);
      feeds[names.pastKey] = this.cache?.[i].key ?? new Tensor("float32", empty, [1, KV, 0, padded]);
      feeds[names.pastValue] = this.cache?.[i].value ?? new Tensor("float32", empty, [1, KV, 0, padded]);
      fetches[names.presentKey] = fetches[names.presentValue] = null;
    }
    if (logits) fetches[LOGITS] = null;
    const results = await this.session.run(feeds, fetches as Record<string, OrtTensor>);
    releaseCache(this.cache);
    this.cache = Array.from({length: numLayers}, (_, i) => ({
      key: results[cacheNames(i).presentKey],
      value: results[cacheNames(i).presentValue]
    }));
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
    this.next.buffer.destroy();
    this.next.staging.destroy();
  }
}
