/**
 * The engine in a real browser, for test/webgpu.test.ts: bundled by esbuild (test/helpers/bundle.ts) with
 * onnxruntime-web left to the page's import map. The test calls `window.parity.*` and compares in Node.
 */
import {loadModel} from "../../src/browser.js";
import {logitLens} from "../../src/analysis/lens.js";
import {ablateHeads, patchSweep, type PatchKind} from "../../src/analysis/patching.js";
import {steer} from "../../src/analysis/steering.js";
import type {Model} from "../../src/runtime/model.js";
import type {WebGPUBuild} from "../../src/runtime/ort-web.js";
import {countGPUWork, type GPUCounts} from "../../src/runtime/gpu-counts.js";

let model: Model | undefined;

/** Tensors cross to Node as base64 of their float32 bytes (JSON numbers would be slow for 50k-token logits). */
function base64(data: Float32Array): string {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

const load = (id: string, endpoint: string, preferWebGPU: boolean, webgpuBuild?: WebGPUBuild) =>
  loadModel(id, {
    endpoint,
    preferWebGPU,
    allowSoftwareAdapter: preferWebGPU,
    webgpuBuild,
    wasmPaths: {wasm: new URL("./ort/ort-wasm-simd-threaded.wasm", location.href).href},
    jsepWasmPaths: {wasm: new URL("./ort/ort-wasm-simd-threaded.jsep.wasm", location.href).href},
    nativeWasmPaths: {wasm: new URL("./ort/ort-wasm-simd-threaded.asyncify.wasm", location.href).href}
  });

/** The model `hold` keeps open for the page's life. */
let held: Model | undefined;

const parity = {
  /** Loads `id` from the Hub at `endpoint` (WebGPU on `webgpuBuild`); returns the backend sentence. */
  async load(id: string, endpoint: string, preferWebGPU: boolean, webgpuBuild?: WebGPUBuild): Promise<string> {
    await model?.dispose();
    model = undefined;
    model = await load(id, endpoint, preferWebGPU, webgpuBuild);
    document.querySelector("#status")!.textContent = model.backend;
    return model.backend;
  },
  /**
   * Keeps a model's WebGPU session open until the page closes: onnxruntime-web's native provider releases its device,
   * and every shader it compiled, with its last session, so models loaded one after another on this page would each
   * compile theirs again (test/helpers/swiftshader.ts's `holdNativeWebGPU` does the same in Node). Returns the
   * backend sentence.
   */
  async hold(id: string, endpoint: string): Promise<string> {
    held ??= await load(id, endpoint, true);
    return held.backend;
  },
  /** One forward pass over `text`: the ids and the named tensors (shape, data). */
  async trace(text: string, hooks: string[]) {
    const traced = (await model!.trace(text, hooks)) as unknown as Record<
      string,
      {shape: number[]; data: Float32Array}
    > & {input_ids: number[]};
    const tensors: Record<string, {shape: number[]; base64: string}> = {};
    for (const hook of hooks) tensors[hook] = {shape: traced[hook].shape, base64: base64(traced[hook].data)};
    return {ids: traced.input_ids, tensors, runs: model!.runs};
  },
  async generate(text: string, maxNewTokens: number) {
    const result = await model!.generate(text, {maxNewTokens, stopAtEos: false});
    return {input_ids: result.input_ids, new_ids: result.new_ids, text: result.text};
  },
  /**
   * The GPU work of a greedy generation's last step (runtime/gpu-counts.ts, counted on this page's WebGPU
   * interfaces), the graph it ran on and the model's layers.
   */
  async stepCounts(text: string, steps: number) {
    const lean = await model!.leanDecoder();
    const counter = countGPUWork();
    try {
      const counted: GPUCounts[] = [];
      counter.take();
      await model!.generate(text, {
        maxNewTokens: 1 + steps,
        stopAtEos: false,
        onToken: () => void counted.push(counter.take())
      });
      return {step: counted.at(-1)!, layers: model!.config.numLayers, lean: Boolean(lean)};
    } finally {
      counter.stop();
    }
  },
  vocabSize: () => model!.config.vocabSize,
  /**
   * The interventions' reference cases (interventions.json), run in the page: the logit lens, the three
   * patching sweeps, head ablation and one steered generation. Tensors as base64, ids as they are.
   */
  async interventions(cases: Record<string, any>) {
    const m = model!;
    const lens = await logitLens(m, cases.logit_lens.text, {k: 10, logits: true});
    const patches: Record<string, string> = {};
    for (const kind of ["resid", "attn", "mlp"] as PatchKind[]) {
      const c = cases[`patch_${kind}`];
      patches[kind] = base64(
        (await patchSweep(m, c.clean, c.corrupt, kind, {ids: c.tracked_ids, maxTokens: 64})).logits.data
      );
    }
    const a = cases.ablate_head;
    const ablation = await ablateHeads(m, a.text, {ids: a.tracked_ids, maxTokens: 40});
    const s = cases.steer;
    const steered = await steer(m, s.prompt, {
      hook: s.hook,
      from: s.from,
      to: s.to,
      alpha: s.generations[0].alpha,
      maxNewTokens: 20,
      stopAtEos: false
    });
    return {
      lensIds: Array.from(lens.topIds.data),
      lensLogprobs: base64(lens.topLogprobs.data),
      patches,
      ablation: base64(ablation.logits.data),
      steered: steered.new_ids
    };
  }
};

Object.assign(window, {parity});
document.querySelector("#status")!.textContent = "ready";
