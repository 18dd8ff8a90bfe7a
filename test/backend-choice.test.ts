/**
 * "auto" never gives the reader the slower path: a software WebGPU adapter (SwiftShader, llvmpipe, a fallback
 * adapter) runs kernels on the CPU far slower than onnxruntime's WASM, so it is left for WASM, and the sentence
 * says so; `allowSoftwareAdapter` (the pages' ?backend=webgpu) takes it anyway. On a hardware adapter the timed
 * probe decides, and its answer is kept. Driven with stand-in adapters and stand-in timings (tests do not time);
 * the real probe's runs are in test/webgpu-node.test.ts.
 */
import {afterEach, describe, expect, it} from "vitest";
import {createWebRuntime, isSoftwareAdapter} from "../src/runtime/ort-web.js";
import type {GPUAdapterLike} from "../src/runtime/webgpu-types.js";
import type {ProbeTimes} from "../src/runtime/probe.js";

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

describe("which build runs each backend", () => {
  it("WebGPU the native provider's (onnxruntime-web/webgpu), or JSEP's when asked; WASM the WASM build; each its own .wasm", async () => {
    const hopper = adapter({vendor: "nvidia", architecture: "hopper"});
    withGPU(hopper);
    const jsepBuild = await import("onnxruntime-web");
    const wasmBuild = await import("onnxruntime-web/wasm");
    const wasmPaths = "http://127.0.0.1/ort/";
    const nativeWasm = "http://127.0.0.1/ort/ort-wasm-simd-threaded.asyncify.wasm";
    const jsepWasm = "http://127.0.0.1/ort/ort-wasm-simd-threaded.jsep.wasm";
    const common = {wasmPaths, nativeWasmPaths: {wasm: nativeWasm}, jsepWasmPaths: {wasm: jsepWasm}};
    const native = await createWebRuntime(common);
    expect(native.backend).toBe("webgpu");
    expect(native.webgpuBuild).toBe("native");
    expect(native.reason).toMatch(/^WebGPU \(native provider\): adapter nvidia hopper/);
    expect(native.ort).not.toBe(jsepBuild);
    expect(native.ort.InferenceSession).not.toBe(wasmBuild.InferenceSession);
    expect(native.ort.env.wasm.wasmPaths).toEqual({wasm: nativeWasm});
    expect(native.ort.env.webgpu.powerPreference).toBe("high-performance");

    const jsep = await createWebRuntime({...common, webgpuBuild: "jsep"});
    expect(jsep.webgpuBuild).toBe("jsep");
    expect(jsep.reason).toMatch(/^WebGPU \(JSEP\): adapter nvidia hopper/);
    expect(jsep.ort.InferenceSession).toBe(jsepBuild.InferenceSession);
    expect(jsep.ort.env.wasm.wasmPaths).toEqual({wasm: jsepWasm});
    // JSEP makes its device from the adapter asked for (its limits, not the defaults).
    expect(jsep.ort.env.webgpu.adapter).toBe(hopper);

    // The probe's answer is kept per build: WebGPU is timed on the build that would run it.
    const kept: Record<string, ProbeTimes> = {};
    const store = {
      get: async (key: string) => kept[key],
      set: async (key: string, t: ProbeTimes) => void (kept[key] = t)
    };
    const probed = await createWebRuntime({...common, probe: async () => ({webgpu: 2, wasm: 6}), probeStore: store});
    expect(probed.webgpuBuild).toBe("native");
    expect(Object.keys(kept)).toEqual(["nvidia hopper | 1 thread | native provider"]);

    // WASM never loads a WebGPU build: the CPU kernels' own module is half the JSEP one.
    const wasm = await createWebRuntime({...common, preferWebGPU: false});
    expect(wasm.backend).toBe("wasm");
    expect(wasm.webgpuBuild).toBeUndefined();
    expect(wasm.ort.InferenceSession).toBe(wasmBuild.InferenceSession);
    expect(wasm.ort.env.wasm.wasmPaths).toBe(wasmPaths);
  });
});

describe("the timed probe on a hardware adapter", () => {
  const memoryStore = (entries: Record<string, ProbeTimes> = {}) => ({
    entries,
    get: async (key: string) => entries[key],
    set: async (key: string, times: ProbeTimes) => void (entries[key] = times)
  });
  const intel = () => withGPU(adapter({vendor: "intel", architecture: "gen-12lp"}));

  it("takes WASM when WASM ran the probe faster, says both times, and keeps the answer", async () => {
    intel();
    const store = memoryStore();
    let probes = 0;
    const probe = async () => (probes++, {webgpu: 14.2, wasm: 5.1});
    const runtime = await createWebRuntime({ort: fakeOrt(), probe, probeStore: store});
    expect(runtime.backend).toBe("wasm");
    expect(runtime.reason).toMatch(
      /a timed probe ran WebGPU in 14\.2 ms and WASM in 5\.1 ms: on this machine WASM is faster than adapter intel gen-12lp; \?backend=webgpu takes it anyway/
    );
    expect(Object.values(store.entries)).toEqual([{webgpu: 14.2, wasm: 5.1}]);
    // The next load reads the kept answer and does not probe again.
    const again = await createWebRuntime({ort: fakeOrt(), probe, probeStore: store});
    expect(again.backend).toBe("wasm");
    expect(again.reason).toMatch(/a timed probe \(kept from an earlier load\) ran WebGPU in 14\.2 ms/);
    expect(probes).toBe(1);
  });

  it("takes WebGPU when it ran the probe faster; ?backend=webgpu and software adapters are not probed", async () => {
    intel();
    const runtime = await createWebRuntime({
      ort: fakeOrt(),
      probe: async () => ({webgpu: 2, wasm: 6.25}),
      probeStore: memoryStore()
    });
    expect(runtime.backend).toBe("webgpu");
    expect(runtime.reason).toMatch(
      /^WebGPU: adapter intel gen-12lp .*; a timed probe ran WebGPU in 2\.0 ms and WASM in 6\.3 ms;/
    );
    const never = async (): Promise<ProbeTimes> => {
      throw new Error("not to be probed");
    };
    const forced = await createWebRuntime({ort: fakeOrt(), probe: never, allowSoftwareAdapter: true});
    expect(forced.backend).toBe("webgpu");
    expect(forced.reason).not.toMatch(/probe/);
    withGPU(adapter({vendor: "google", architecture: "swiftshader"}));
    expect((await createWebRuntime({ort: fakeOrt(), probe: never})).backend).toBe("wasm");
  });

  it("leaves the choice to the adapter, and says so, when the probe fails", async () => {
    intel();
    const runtime = await createWebRuntime({
      ort: fakeOrt(),
      probe: async () => {
        throw new Error("no MatMul kernel");
      },
      probeStore: memoryStore()
    });
    expect(runtime.backend).toBe("webgpu");
    expect(runtime.reason).toMatch(/the timed probe failed \(no MatMul kernel\), so the adapter decides/);
  });
});
