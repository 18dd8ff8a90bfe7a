/**
 * "auto" never gives the reader the slower path: a software WebGPU adapter (SwiftShader, llvmpipe, a fallback
 * adapter) runs kernels on the CPU far slower than onnxruntime's WASM, so it is left for WASM, and the sentence
 * says so; `allowSoftwareAdapter` (the pages' ?backend=webgpu) takes it anyway. Driven with stand-in adapters.
 */
import {afterEach, describe, expect, it} from "vitest";
import {createWebRuntime, isSoftwareAdapter} from "../src/runtime/ort-web.js";
import type {GPUAdapterLike} from "../src/runtime/webgpu-types.js";

const adapter = (info: GPUAdapterLike["info"], extra: Record<string, unknown> = {}): GPUAdapterLike =>
  ({
    info,
    features: new Set(),
    limits: {maxStorageBufferBindingSize: 1 << 30, maxBufferSize: 1 << 30},
    requestDevice: async () => ({}) as never,
    ...extra
  }) as GPUAdapterLike;

/** A minimal onnxruntime-web: createWebRuntime only sets its env. */
const fakeOrt = () => ({env: {wasm: {wasmBinary: new Uint8Array(1)}, webgpu: {}}}) as never;

const saved = Object.getOwnPropertyDescriptor(globalThis, "navigator");
function withGPU(found: GPUAdapterLike | null) {
  Object.defineProperty(globalThis, "navigator", {
    value: {gpu: {requestAdapter: async () => found}, hardwareConcurrency: 4},
    configurable: true
  });
}
afterEach(() => {
  if (saved) Object.defineProperty(globalThis, "navigator", saved);
  else delete (globalThis as {navigator?: unknown}).navigator;
});

describe("software adapters", () => {
  it("are recognised by the fallback flag or by the driver's name", () => {
    expect(
      isSoftwareAdapter(
        adapter({vendor: "google", architecture: "swiftshader", description: "SwiftShader Device (Subzero)"})
      )
    ).toBe(true);
    expect(isSoftwareAdapter(adapter({vendor: "mesa", description: "llvmpipe (LLVM 15.0.6, 256 bits)"}))).toBe(true);
    expect(isSoftwareAdapter(adapter({vendor: "microsoft", description: "Microsoft Basic Render Driver"}))).toBe(true);
    expect(isSoftwareAdapter(adapter({vendor: "intel", isFallbackAdapter: true}))).toBe(true);
    expect(isSoftwareAdapter(adapter({}, {isFallbackAdapter: true}))).toBe(true);
    expect(isSoftwareAdapter(adapter({vendor: "nvidia", architecture: "hopper", description: "NVIDIA H200"}))).toBe(
      false
    );
    expect(isSoftwareAdapter(adapter({vendor: "apple", architecture: "metal-3"}))).toBe(false);
  });

  it('"auto" runs WASM on a software adapter and says why; allowSoftwareAdapter takes it', async () => {
    withGPU(adapter({vendor: "google", architecture: "swiftshader"}));
    const auto = await createWebRuntime({ort: fakeOrt()});
    expect(auto.backend).toBe("wasm");
    expect(auto.reason).toMatch(
      /WebGPU adapter is software \(google swiftshader\), slower than WASM; \?backend=webgpu takes it anyway/
    );
    const forced = await createWebRuntime({ort: fakeOrt(), allowSoftwareAdapter: true});
    expect(forced.backend).toBe("webgpu");
    expect(forced.reason).toMatch(/^WebGPU: adapter google swiftshader/);
  });

  it('"auto" runs WebGPU on a hardware adapter', async () => {
    withGPU(adapter({vendor: "nvidia", architecture: "hopper"}));
    const auto = await createWebRuntime({ort: fakeOrt()});
    expect(auto.backend).toBe("webgpu");
    expect(auto.reason).toMatch(/^WebGPU: adapter nvidia hopper/);
  });
});
