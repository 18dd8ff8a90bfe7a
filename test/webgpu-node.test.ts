/**
 * onnxruntime-web's WebGPU backend in Node, on Dawn (the `webgpu` package) — the path `npm run bench` takes
 * on a machine with a GPU. Here the Vulkan driver is Chromium's SwiftShader: right answers, no timings.
 * Every prompt of stories260K and two of each mini fixture, stories260K's greedy generations with and
 * without the key/value cache and one cached generation of each mini fixture must match the float64
 * references as the CPU runtimes do (test/parity.test.ts).
 */
// First: points Dawn at a Vulkan driver before anything starts it.
import {available} from "./helpers/swiftshader.js";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {FIXTURES, RELATIVE, expectHookMatches, readReference, relativeError} from "./helpers/fixtures.js";

const {loadModel} = await import("../src/node.js");
const {nodeWebGPU} = await import("../src/runtime/webgpu-node.js");
type Model = Awaited<ReturnType<typeof loadModel>>;

const PROMPTS: Record<string, number[]> = {stories260K: [0, 1, 2, 3], "mini-gpt2": [0, 2], "mini-llama": [0, 2]};

describe.skipIf(!available)("onnxruntime-web WebGPU in Node (Dawn on SwiftShader)", () => {
  // The native WebGPU execution provider (onnxruntime-web/webgpu), which the GPU benchmark times beside JSEP.
  it("the native WebGPU execution provider: stories260K's hook points and a cached generation", async () => {
    const ref = readReference("stories260K");
    const model = await loadModel("stories260K", {runtime: "webgpu-native"});
    try {
      expect(model.backend).toMatch(/^WebGPU \(Dawn in Node, native EP\)/);
      for (const i of [0, 3]) {
        const prompt = ref.json.prompts[i];
        const traced = (await model.trace(prompt.text, prompt.captured)) as unknown as Record<
          string,
          {shape: number[]; data: Float32Array}
        >;
        for (const hook of prompt.captured) expectHookMatches(hook, traced[hook], ref.tensor(`p${i}.${hook}`));
      }
      const gen = ref.json.generations[0];
      expect((await model.generate(gen.text, {maxNewTokens: 20, stopAtEos: false})).new_ids).toEqual(gen.new_ids);
    } finally {
      await model.dispose();
    }
  }, 120_000);

  it("finds the adapter and says so", async () => {
    const web = await nodeWebGPU();
    expect(web.backend).toBe("webgpu");
    expect(web.reason).toMatch(/^WebGPU \(Dawn in Node\): adapter .*swiftshader/i);
  });

  it("the timed probe runs its network on WebGPU on the native provider and on the JSEP build's WASM, as the pages pair them (the times themselves are not tested)", async () => {
    const {timeBackends} = await import("../src/runtime/probe.js");
    const {ort} = await nodeWebGPU();
    const native = (await nodeWebGPU("native")).ort;
    const probe = timeBackends(ort as never, native as never);
    // Loads that overlap share one probe.
    expect(timeBackends(ort as never, native as never)).toBe(probe);
    const times = await probe;
    for (const t of [times.webgpu, times.wasm]) expect(t > 0 && Number.isFinite(t)).toBe(true);
  }, 120_000);

  describe.each(FIXTURES)("%s", (name) => {
    const ref = readReference(name);
    let model: Model;
    beforeAll(async () => {
      model = await loadModel(name, {runtime: "webgpu"});
    }, 120_000);
    afterAll(() => model?.dispose());

    it("runs on WebGPU", () => expect(model.backend).toMatch(/^WebGPU \(Dawn in Node\)/));

    it.each((PROMPTS[name] ?? [0, 2]).map((i) => [i, ref.json.prompts[i]] as const))(
      "prompt %i: every captured hook point and the logits",
      async (i, prompt) => {
        const traced = (await model.trace(prompt.text, [...prompt.captured, "lm_head.output"])) as unknown as Record<
          string,
          {shape: number[]; data: Float32Array}
        >;
        for (const hook of prompt.captured) expectHookMatches(hook, traced[hook], ref.tensor(`p${i}.${hook}`));
        const logits = traced["lm_head.output"].data;
        expect(
          relativeError(logits.subarray(logits.length - model.config.vocabSize), ref.tensor(`p${i}.logits.last`).data)
        ).toBeLessThan(RELATIVE);
      }
    );

    // SwiftShader compiles shaders for every new sequence length: on the tiny fixtures, one generation, cached.
    const full = name === "stories260K";
    it(
      full
        ? "greedy generations, with and without the key/value cache (kept on the GPU)"
        : "a greedy generation with the key/value cache (kept on the GPU)",
      async () => {
        for (const gen of full ? ref.json.generations : ref.json.generations.slice(0, 1)) {
          for (const useCache of full ? [true, false] : [true]) {
            const result = await model.generate(gen.text, {maxNewTokens: 20, stopAtEos: false, useCache});
            expect(result.new_ids, `${JSON.stringify(gen.text)} useCache=${useCache}`).toEqual(gen.new_ids);
          }
        }
      },
      120_000
    );
  });
});
