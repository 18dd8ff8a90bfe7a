/**
 * The lean decode graph (src/graph/decode.ts, src/runtime/decode.ts) on onnxruntime-web's native WebGPU provider,
 * on Dawn over SwiftShader: the greedy continuations of the references, token for token, for every family (Llama
 * with padded 8-dimension heads, Qwen2 with q/k/v biases, Qwen3 with per-head q/k norms, GPT-2 with learned
 * positions, GPT-NeoX with its partial rotary and parallel residual, Gemma 3 with its sliding window); the last
 * position's logits against the traced graph's, and for the switches no reference covers (GPT-NeoX's sequential
 * residual, Qwen2's window); sampling the same tokens as the traced path from the same seed, from candidates the
 * GPU picks. And all of it again with the step captured once and replayed (`graphCapture`).
 */
// First: points Dawn at a Vulkan driver before anything starts it.
import {available, holdNativeWebGPU} from "./helpers/swiftshader.js";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {
  FIXTURE_FAMILIES,
  FIXTURES,
  type FixtureName,
  readReference,
  relativeError,
  RELATIVE,
  variant
} from "./helpers/fixtures.js";
import {countGPUWork, type GPUCounts} from "../src/runtime/gpu-counts.js";

const {loadModel} = await import("../src/node.js");

describe.skipIf(!available)("lean decode on WebGPU (SwiftShader)", () => {
  // One native-provider session held open for the file: each model's shaders are compiled once, not per test.
  let release: () => Promise<void> = async () => {};
  beforeAll(async () => {
    release = await holdNativeWebGPU();
  });
  afterAll(() => release());

  // The native provider writes the cache in place; the JSEP build (the pages' WebGPU) returns it anew each step, and
  // runs the lean graph only when asked for. It reuses compiled shaders across models in one process (mini-pythia's
  // lean graph before stories260K's gives wrong tokens): the order it gets right is the Llama-shaped families first,
  // the trained one leading, then the LayerNorm ones and Gemma 3 (traced on JSEP).
  const jsepRank = (name: FixtureName) =>
    name === "stories260K" ? 0 : ["llama", "qwen2", "qwen3"].includes(FIXTURE_FAMILIES[name]) ? 1 : 2;
  const FAMILIES = [...FIXTURES].sort((a, b) => jsepRank(a) - jsepRank(b));
  it.each(
    FAMILIES.flatMap((name) => (["webgpu-native", "webgpu"] as const).map((runtime) => [name, runtime] as const))
  )(
    "%s on %s: the reference's greedy continuation, on the lean graph",
    async (name, runtime) => {
      const ref = readReference(name);
      const model = await loadModel(name, {runtime, leanDecode: true});
      try {
        // JSEP's GroupQueryAttention does not apply a sliding window: Gemma 3 keeps the traced graph there.
        const lean = !(runtime === "webgpu" && name === "mini-gemma3");
        expect((await model.leanDecoder()) !== undefined, String(model.leanError)).toBe(lean);
        const runsBefore = model.runs;
        for (const gen of ref.json.generations) {
          const out = await model.generate(gen.text, {maxNewTokens: gen.new_ids.length, stopAtEos: false});
          expect(out.new_ids).toEqual(gen.new_ids);
        }
        // On the lean graph, not one run of the traced session: every step went through the lean one.
        if (lean) expect(model.runs).toBe(runsBefore);
      } finally {
        await model.dispose();
      }
    },
    180_000
  );

  it.each([
    ["GPT-NeoX with use_parallel_residual false", "mini-pythia", {use_parallel_residual: false}],
    ["Qwen2 with its sliding window (4 tokens, from layer 1 on)", "mini-qwen2", {use_sliding_window: true}]
  ] as const)(
    "%s (no reference of its own): the lean graph's logits and tokens are the traced graph's",
    async (_, name, change) => {
      const dir = variant(name, (c) => ({...c, ...change}));
      const lean = await loadModel(dir, {runtime: "webgpu-native"});
      const traced = await loadModel(dir, {runtime: "webgpu-native", leanDecode: false});
      try {
        // The longest prompt: longer than the window.
        const prompt = readReference(name)
          .json.prompts.map((p) => p.text)
          .sort((a, b) => b.length - a.length)[0];
        const {ids} = await lean.prepareInput(prompt);
        const V = lean.config.vocabSize;
        const decoder = (await lean.leanDecoder())!;
        const logits = await decoder.exclusive(
          ids.length,
          async () => (await decoder.step(ids, {logits: true})).logits!
        );
        const expected = (await traced.forward(ids, ["lm_head.output"])).get("lm_head.output")!.data;
        expect(relativeError(logits, expected.subarray(expected.length - V))).toBeLessThan(RELATIVE);
        const options = {maxNewTokens: 10, stopAtEos: false};
        expect((await lean.generate(prompt, options)).new_ids).toEqual(
          (await traced.generate(prompt, options)).new_ids
        );
      } finally {
        await lean.dispose();
        await traced.dispose();
      }
    },
    120_000
  );

  it.each(["stories260K", "mini-qwen3", "mini-pythia", "mini-gemma3"])(
    "%s: the lean step's logits are the traced graph's, whether the prompt comes whole or in parts",
    async (name) => {
      const model = await loadModel(name, {runtime: "webgpu-native"});
      try {
        const lean = (await model.leanDecoder())!;
        // The longest prompt: longer than mini-gemma3's sliding window, whose edge this checks.
        const prompt = readReference(name)
          .json.prompts.map((p) => p.text)
          .sort((a, b) => b.length - a.length)[0];
        const {ids} = await model.prepareInput(prompt);
        const traced = (await model.forward(ids, ["lm_head.output"])).get("lm_head.output")!;
        const V = model.config.vocabSize;
        const expected = traced.data.subarray(traced.data.length - V);
        for (const split of [ids.length, 1, ids.length - 1]) {
          const logits = await lean.exclusive(ids.length, async () => {
            let last = await lean.step(ids.slice(0, split), {logits: true});
            for (const id of ids.slice(split)) last = await lean.step([id], {logits: true});
            return last.logits!;
          });
          expect(logits.length).toBe(V);
          expect(relativeError(logits, expected)).toBeLessThan(RELATIVE);
        }
      } finally {
        await model.dispose();
      }
    },
    120_000
  );

  it("stories260K: sampling draws the same tokens as on the traced graph, from the same seed, from candidates the GPU picks", async () => {
    const lean = await loadModel("stories260K", {runtime: "webgpu-native"});
    const traced = await loadModel("stories260K", {runtime: "webgpu-native", leanDecode: false});
    try {
      expect(await traced.leanDecoder()).toBeUndefined();
      const cases = [
        // top-k: its k candidates come back; with top-p on top, the same.
        {temperature: 0.9, topK: 40, topP: 0.95},
        {temperature: 1.2, topK: 10, topP: 1},
        // top-p alone: 256 candidates, which hold its set here…
        {temperature: 0.7, topK: 0, topP: 0.5},
        // …and may not here (the whole logits then come back for that step); no truncation at all: the logits.
        {temperature: 1.5, topK: 0, topP: 0.999},
        {temperature: 1, topK: 0, topP: 1}
      ];
      for (const options of cases) {
        const generate = (model: typeof lean) =>
          model.generate("Once upon a time", {maxNewTokens: 12, doSample: true, seed: 7, stopAtEos: false, ...options});
        const a = await generate(lean);
        const b = await generate(traced);
        expect(a.new_ids, JSON.stringify(options)).toEqual(b.new_ids);
        expect(a.text).toBe(b.text);
      }
      // A top-k step reads back its candidates only: one readback of 4 (1 + 2k) bytes, not the 512 logits (and
      // nothing of the candidates graph runs on the CPU, which would be a readback of its own).
      const counter = countGPUWork();
      try {
        const steps: GPUCounts[] = [];
        counter.take();
        await lean.generate("Once upon a time", {
          maxNewTokens: 3,
          doSample: true,
          topK: 20,
          seed: 1,
          stopAtEos: false,
          onToken: () => void steps.push(counter.take())
        });
        expect(steps.at(-1)!.readbacks).toBe(1);
        // (onnxruntime rounds a download up to 16 bytes)
        expect(steps.at(-1)!.readbackBytes).toBeLessThanOrEqual(4 * (1 + 2 * 20) + 15);
      } finally {
        counter.stop();
      }
    } finally {
      await lean.dispose();
      await traced.dispose();
    }
  }, 180_000);

  it("generations wait for one another on the one cache, which grows for a longer one; useCache: false takes the traced graph", async () => {
    const ref = readReference("stories260K");
    const gen = ref.json.generations[0];
    // A cache of 32 positions at the least (the default is 256): room for the reference's 5 + 20, not for 5 + 40.
    const model = await loadModel("stories260K", {runtime: "webgpu-native", cachePositions: 32});
    try {
      const n = gen.new_ids.length;
      const both = await Promise.all([
        model.generate(gen.text, {maxNewTokens: n, stopAtEos: false}),
        model.generate(gen.text, {maxNewTokens: n, stopAtEos: false})
      ]);
      for (const out of both) expect(out.new_ids).toEqual(gen.new_ids);
      const lean = (await model.leanDecoder())!;
      expect(lean.capacity).toBe(32);
      // A generation longer than the cache made so far gets a larger one; its first tokens are the reference's, and
      // a short generation after it still is.
      const long = await model.generate(gen.text, {maxNewTokens: 40, stopAtEos: false});
      expect(lean.capacity).toBe(gen.input_ids.length + 40);
      expect(long.new_ids.slice(0, n)).toEqual(gen.new_ids);
      expect(long.new_ids).toHaveLength(40);
      expect((await model.generate(gen.text, {maxNewTokens: n, stopAtEos: false})).new_ids).toEqual(gen.new_ids);
      expect(lean.capacity).toBe(gen.input_ids.length + 40);
      const runs = model.runs;
      const uncached = await model.generate(gen.text, {maxNewTokens: 3, stopAtEos: false, useCache: false});
      expect(uncached.new_ids).toEqual(gen.new_ids.slice(0, 3));
      expect(model.runs).toBe(runs + 3);
    } finally {
      await model.dispose();
    }
  }, 120_000);

  describe("with the step captured and replayed (graphCapture)", () => {
    it.each(FAMILIES)(
      "%s: the reference's greedy continuations, each step a replay",
      async (name) => {
        const ref = readReference(name);
        const model = await loadModel(name, {runtime: "webgpu-native", graphCapture: true});
        try {
          const lean = (await model.leanDecoder())!;
          // Gemma 3's sliding window too (onnxruntime-web 1.30 got it wrong under capture; 1.31.1 gets it right).
          expect(lean.captured).toBe(true);
          const runsBefore = model.runs;
          // Twice: the second generation replays what the first recorded.
          for (const gen of [...ref.json.generations, ...ref.json.generations]) {
            const out = await model.generate(gen.text, {maxNewTokens: gen.new_ids.length, stopAtEos: false});
            expect(out.new_ids).toEqual(gen.new_ids);
          }
          expect(model.runs).toBe(runsBefore);
        } finally {
          await model.dispose();
        }
      },
      180_000
    );

    it("the CLI: generate --runtime webgpu-native --graph-capture gives the reference's tokens; elsewhere it is a usage error", async () => {
      const {main} = await import("../src/cli.js");
      const run = async (args: string[]) => {
        let out = "",
          err = "";
        const code = await main(args, {out: (t) => void (out += t), err: (t) => void (err += t)});
        return {code, out, err};
      };
      const gen = readReference("stories260K").json.generations[0];
      const n = String(gen.new_ids.length);
      const captured = await run([
        "generate",
        "stories260K",
        gen.text,
        "--runtime",
        "webgpu-native",
        "--graph-capture",
        "--max-new-tokens",
        n,
        "--no-stop",
        "--json"
      ]);
      expect(captured.code, captured.err).toBe(0);
      expect(JSON.parse(captured.out).new_ids).toEqual(gen.new_ids);
      const wrong = await run(["generate", "stories260K", gen.text, "--graph-capture", "--max-new-tokens", n]);
      expect(wrong).toMatchObject({
        code: 1,
        err: expect.stringContaining("--graph-capture needs --runtime webgpu-native")
      });
    }, 120_000);

    it("stories260K: a replayed step uploads its inputs only and reads back one id; logits and sampling are the traced graph's", async () => {
      const model = await loadModel("stories260K", {runtime: "webgpu-native", graphCapture: true});
      const traced = await loadModel("stories260K", {runtime: "webgpu-native", leanDecode: false});
      try {
        const lean = (await model.leanDecoder())!;
        expect(lean.captured).toBe(true);
        expect(lean.holds(model.config.maxPositions)).toBe(true);
        const counter = countGPUWork();
        // The work of a generation's last step, after one generation that warms the decoder up.
        const lastStep = async (m: typeof model) => {
          const steps: GPUCounts[] = [];
          await m.generate("Once upon a time", {maxNewTokens: 2, stopAtEos: false});
          counter.take();
          await m.generate("Once upon a time", {
            maxNewTokens: 4,
            stopAtEos: false,
            onToken: () => void steps.push(counter.take())
          });
          return steps.at(-1)!;
        };
        try {
          const step = await lastStep(model);
          const uncaptured = await loadModel("stories260K", {runtime: "webgpu-native"});
          const plain = await lastStep(uncaptured);
          await uncaptured.dispose();
          // The same kernels as the uncaptured step; none of their uniforms written again: the id and the two lengths.
          expect(step.kernels).toBe(plain.kernels);
          expect(plain.uploads).toBeGreaterThanOrEqual(step.kernels);
          expect(step.uploads).toBe(3);
          expect(step.readbacks).toBe(1);
          expect(step.readbackBytes).toBeLessThanOrEqual(16);
        } finally {
          counter.stop();
        }
        // The last position's logits, the prompt fed one replay a token.
        const prompt = readReference("stories260K")
          .json.prompts.map((p) => p.text)
          .sort((a, b) => b.length - a.length)[0];
        const {ids} = await model.prepareInput(prompt);
        const V = model.config.vocabSize;
        const logits = await lean.exclusive(ids.length, async () => (await lean.step(ids, {logits: true})).logits!);
        const expected = (await traced.forward(ids, ["lm_head.output"])).get("lm_head.output")!.data;
        expect(relativeError(logits, expected.subarray(expected.length - V))).toBeLessThan(RELATIVE);
        // Sampling: candidates from the replayed step's logits; top-p 0.999 reads the whole logits back.
        for (const options of [
          {temperature: 0.9, topK: 40, topP: 0.95},
          {temperature: 1.5, topK: 0, topP: 0.999}
        ]) {
          const generate = (m: typeof model) =>
            m.generate("Once upon a time", {maxNewTokens: 12, doSample: true, seed: 7, stopAtEos: false, ...options});
          expect((await generate(model)).new_ids, JSON.stringify(options)).toEqual((await generate(traced)).new_ids);
        }
      } finally {
        await model.dispose();
        await traced.dispose();
      }
    }, 180_000);
  });
});
