/**
 * The engine against the fixtures' float64 references, one fixture per family: every captured hook point of every
 * prompt, logits, top-10 next tokens, and the greedy generations — on onnxruntime-node and onnxruntime-web's WASM.
 */
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {loadModel, type Model} from "../src/node.js";
import {softmax, topK} from "../src/analysis/index.js";
import {ABSOLUTE, FIXTURES, RELATIVE, expectHookMatches, readReference, relativeError} from "./helpers/fixtures.js";

// "web, one graph": WASM with every hook point behind an edit slot (runtime/model.ts `oneGraph`).
describe.each(["node", "web", "web, one graph"] as const)("parity on onnxruntime-%s", (layout) => {
  const runtime = layout === "node" ? "node" : "web";
  describe.each(FIXTURES)("%s", (name) => {
    const ref = readReference(name);
    let model: Model;
    beforeAll(async () => {
      model = await loadModel(name, {runtime, oneGraph: layout === "web, one graph"});
    });
    afterAll(() => model?.dispose());

    it.each(ref.json.prompts.map((p) => [p.index, p] as const))(
      "prompt %i: every captured hook point, logits and top-10",
      async (i, prompt) => {
        expect(model.tokenizer.encode(prompt.text).ids).toEqual(prompt.input_ids);
        const traced = await model.trace(prompt.text, [...prompt.captured, "lm_head.output"]);
        const tensors = traced as unknown as Record<string, {shape: number[]; data: Float32Array}>;
        for (const hook of prompt.captured) expectHookMatches(hook, tensors[hook], ref.tensor(`p${i}.${hook}`));
        const logits = tensors["lm_head.output"];
        const vocab = model.config.vocabSize;
        const last = logits.data.subarray(logits.data.length - vocab);
        expect(relativeError(last, ref.tensor(`p${i}.logits.last`).data)).toBeLessThan(RELATIVE);
        if (ref.has(`p${i}.logits`))
          expect(relativeError(logits.data, ref.tensor(`p${i}.logits`).data)).toBeLessThan(RELATIVE);
        const probs = softmax(last);
        const top = topK(probs, 10);
        expect(top).toEqual(prompt.last_top10.map((t) => t.id));
        prompt.last_top10.forEach((t, k) => {
          expect(Math.abs(probs[top[k]] - t.prob)).toBeLessThan(ABSOLUTE);
          expect(model.tokenizer.decode([t.id])).toBe(t.decoded);
        });
      }
    );

    it("hidden states: embeddings, every layer's output, the final norm", async () => {
      const prompt = ref.json.prompts[2];
      const L = model.config.numLayers;
      const {roles} = model.arch;
      const paths = [...Array.from({length: L}, (_, l) => roles.resid(l)), `${roles.finalNorm}.output`];
      const out = await model.forward(prompt.input_ids, paths);
      // hidden_states.{k} for k = 1 … L-1 are layer outputs; the last one is after the final norm.
      for (let k = 1; k < L; k++)
        expect(relativeError(out.get(paths[k - 1])!.data, ref.tensor(`p2.hidden_states.${k}`).data)).toBeLessThan(
          RELATIVE
        );
      expect(relativeError(out.get(paths[L])!.data, ref.tensor(`p2.hidden_states.${L}`).data)).toBeLessThan(RELATIVE);
    });

    it.each(ref.json.generations.map((g) => [g.text, g] as const))(
      "greedy generation of %j, with and without the key/value cache",
      async (_, gen) => {
        for (const useCache of [true, false]) {
          const result = await model.generate(gen.text, {maxNewTokens: 20, stopAtEos: false, useCache});
          expect(result.input_ids).toEqual(gen.input_ids);
          // A divergence would be acceptable only after a step whose top-2 margin is under 1e-3; none is.
          expect(gen.min_top2_logit_margin).toBeGreaterThan(1e-3);
          expect(result.new_ids).toEqual(gen.new_ids);
          expect(result.text).toBe(gen.generated_text);
        }
      }
    );
  });
});
