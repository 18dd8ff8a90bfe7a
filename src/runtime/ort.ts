/**
 * The onnxruntime the engine runs on, and reading its tensors back from the GPU.
 *
 * `Ort` is what the engine uses of onnxruntime's module: onnxruntime-node, onnxruntime-web (either build) and
 * onnxruntime-web's WASM in Node all fit it, since each exports onnxruntime-common's `InferenceSession`, `Tensor`
 * and `env`. The caller passes the module, so the engine runs anywhere.
 */
import type * as OrtCommon from "onnxruntime-common";
import {BUFFER_USAGE, MAP_MODE_READ, type GPUBufferLike, type GPUDeviceLike} from "./webgpu-types.js";

export type Ort = Pick<typeof OrtCommon, "InferenceSession" | "Tensor" | "env">;

/** The GPU device onnxruntime-web's WebGPU backend runs on (set up by its first WebGPU session). */
export async function gpuDevice(ort: Ort): Promise<GPUDeviceLike> {
  return (await ort.env.webgpu.device) as unknown as GPUDeviceLike;
}

/** An onnxruntime tensor over a GPU buffer made here (the engine's WebGPU types are its own, not the DOM's). */
export function gpuTensor(
  ort: Ort,
  buffer: GPUBufferLike,
  dataType: "float32" | "int64",
  dims: readonly number[]
): OrtCommon.Tensor {
  return ort.Tensor.fromGpuBuffer(buffer as unknown as Parameters<Ort["Tensor"]["fromGpuBuffer"]>[0], {dataType, dims});
}

/**
 * GPU buffers' first bytes, brought to the host in one round trip: each part is copied in turn into `staging`,
 * which is mapped once; the bytes come back in that order, in one ArrayBuffer. `staging` is made for the call
 * (and destroyed after) unless the caller keeps one of its own to reuse (the lean decoder's next token).
 * onnxruntime-web's `getData()` maps each tensor on its own: a wait for the GPU per tensor.
 */
export async function readBack(
  device: GPUDeviceLike,
  parts: readonly {buffer: unknown; bytes: number}[],
  staging?: GPUBufferLike
): Promise<ArrayBuffer> {
  const total = parts.reduce((sum, p) => sum + p.bytes, 0);
  const target = staging ?? device.createBuffer({size: total, usage: BUFFER_USAGE.MAP_READ | BUFFER_USAGE.COPY_DST});
  try {
    const encoder = device.createCommandEncoder();
    let offset = 0;
    for (const {buffer, bytes} of parts) {
      if (bytes) encoder.copyBufferToBuffer(buffer, 0, target, offset, bytes);
      offset += bytes;
    }
    device.queue.submit([encoder.finish()]);
    await target.mapAsync(MAP_MODE_READ);
    const host = target.getMappedRange().slice(0, total);
    target.unmap();
    return host;
  } finally {
    if (!staging) target.destroy();
  }
}
