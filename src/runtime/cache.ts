/**
 * The key/value cache between generation steps: onnxruntime tensors, left where the backend put them —
 * on WebGPU, in GPU buffers, so a step does not copy the whole cache to the CPU and back.
 */
import type {Tensor as OrtTensor} from "onnxruntime-common";
import {cacheNames} from "../arch/types.js";

export type Cache = {key: OrtTensor; value: OrtTensor}[];

/** The graph outputs that hold the cache after a step. */
export function cacheOutputs(numLayers: number): string[] {
  return Array.from({length: numLayers}, (_, i) => [cacheNames(i).presentKey, cacheNames(i).presentValue]).flat();
}

/** Free a cache that lives on the GPU (CPU tensors are left to the garbage collector). */
export function releaseCache(cache: Cache | undefined): void {
  for (const {key, value} of cache ?? []) {
    if (key.location === "gpu-buffer") key.dispose();
    if (value.location === "gpu-buffer") value.dispose();
  }
}
