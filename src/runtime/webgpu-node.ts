/**
 * WebGPU in Node: onnxruntime-web's WebGPU builds, the ones the browser runs, on Dawn, through the `webgpu` npm
 * package, whose Dawn binary ships in its tarball and reaches the GPU through Vulkan: "webgpu-native" is the C++
 * WebGPU execution provider (`onnxruntime-web/webgpu`, what the pages run WebGPU on), "webgpu" the JSEP build
 * (kernels in TypeScript). The benchmark uses them to time WebGPU against onnxruntime's CPU path on the same
 * machine.
 *
 * Three things differ from a browser, and are set up here:
 *  - Node has no `navigator.gpu`: it is Dawn's `create()`, and the WebGPU constants (GPUBufferUsage, …)
 *    become globals, as ort expects.
 *  - `import "onnxruntime-web"` in Node resolves to its WASM-only Node build; the JSEP build is loaded from
 *    its file, and its .wasm handed over as bytes (Node's fetch has no file: URLs).
 *  - Dawn's binding refuses a SharedArrayBuffer in `queue.writeBuffer`, and ort's threaded WASM heap is one:
 *    such a range is copied into an ordinary buffer first.
 *
 * Where no Vulkan GPU is present, `VK_ICD_FILENAMES` may name another driver — the tests use Chromium's
 * SwiftShader (`/usr/lib/chromium/vk_swiftshader_icd.json`): right answers, timings that mean nothing.
 */
import {readFile} from "node:fs/promises";
import {createRequire} from "node:module";
import {dirname, join} from "node:path";
import {pathToFileURL} from "node:url";
import type * as OrtWeb from "onnxruntime-web";
import {createWebRuntime, type WebGPUBuild, type WebRuntime} from "./ort-web.js";

export type {WebGPUBuild};

const BUILDS: Record<WebGPUBuild, {js: string; wasm: string; label: string}> = {
  jsep: {js: "ort.bundle.min.mjs", wasm: "ort-wasm-simd-threaded.jsep.wasm", label: "Dawn in Node"},
  native: {
    js: "ort.webgpu.bundle.min.mjs",
    wasm: "ort-wasm-simd-threaded.asyncify.wasm",
    label: "Dawn in Node, native EP"
  }
};
const pending = new Map<WebGPUBuild, Promise<WebRuntime>>();

/** onnxruntime-web configured for Dawn's WebGPU; the same runtime for every later call with that build. */
export function nodeWebGPU(build: WebGPUBuild = "jsep"): Promise<WebRuntime> {
  if (!pending.has(build)) pending.set(build, setUp(build));
  return pending.get(build)!;
}

async function setUp(build: WebGPUBuild): Promise<WebRuntime> {
  const {create, globals} = await import("webgpu");
  const g = globalThis as Record<string, unknown>;
  const existing = (g.navigator as {gpu?: unknown} | undefined)?.gpu;
  for (const [name, value] of Object.entries(globals)) if (!(name in g)) g[name] = value;
  copySharedWrites((globals as Record<string, {prototype: GPUQueueLike}>).GPUQueue.prototype);
  const gpu = existing ?? create([]);
  // Node 21+ has a navigator (without gpu); Node 20 has none.
  if (typeof g.navigator === "object" && g.navigator)
    Object.defineProperty(g.navigator, "gpu", {value: gpu, configurable: true});
  else g.navigator = {gpu};

  const files = BUILDS[build];
  const dist = dirname(createRequire(import.meta.url).resolve("onnxruntime-web/ort-wasm-simd-threaded.jsep.wasm"));
  const ort = (await import(pathToFileURL(join(dist, files.js)).href)) as typeof OrtWeb;
  ort.env.wasm.wasmBinary = await readFile(join(dist, files.wasm));
  // Asked for by name (runtime "webgpu"): a software adapter too, as the tests and the counts run on SwiftShader.
  const runtime = await createWebRuntime({ort, allowSoftwareAdapter: true});
  // Threads: ort's pthreads are browser workers; Node runs the CPU-side ops on one thread.
  ort.env.wasm.numThreads = 1;
  // The sentence is a page's; Node has no cross-origin isolation to speak of, and runs one thread.
  const pageThreads = "single-threaded: the page is not cross-origin isolated";
  const reason =
    runtime.backend === "webgpu"
      ? runtime.reason.replace(/^WebGPU: /, `WebGPU (${files.label}): `).replace(pageThreads, "one thread")
      : `no WebGPU (${files.label}): ${runtime.reason.replace(`WASM ${pageThreads}; `, "")}`;
  return {...runtime, threads: 1, reason};
}

interface GPUQueueLike {
  writeBuffer(
    buffer: unknown,
    offset: number,
    data: ArrayBufferLike | ArrayBufferView,
    dataOffset?: number,
    size?: number
  ): void;
}

/** `writeBuffer` with SharedArrayBuffer data copies the range (in elements of a typed array, else bytes). */
function copySharedWrites(queue: GPUQueueLike) {
  const write = queue.writeBuffer;
  if ((write as {copiesShared?: boolean}).copiesShared) return;
  const patched = function (
    this: unknown,
    buffer: unknown,
    offset: number,
    data: ArrayBufferLike | ArrayBufferView,
    dataOffset = 0,
    size?: number
  ) {
    const view = ArrayBuffer.isView(data);
    const backing = view ? data.buffer : data;
    if (!(backing instanceof SharedArrayBuffer)) {
      return size === undefined
        ? write.call(this, buffer, offset, data, dataOffset)
        : write.call(this, buffer, offset, data, dataOffset, size);
    }
    const unit = view ? ((data as unknown as {BYTES_PER_ELEMENT?: number}).BYTES_PER_ELEMENT ?? 1) : 1;
    const base = view ? data.byteOffset : 0;
    const length = size !== undefined ? size * unit : data.byteLength - dataOffset * unit;
    const copy = new Uint8Array(backing, base + dataOffset * unit, length).slice();
    return write.call(this, buffer, offset, copy);
  };
  queue.writeBuffer = Object.assign(patched, {copiesShared: true});
}
