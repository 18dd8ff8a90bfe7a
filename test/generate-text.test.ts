/**
 * `generate`'s streaming: each token's `text` is what it adds to the decoded text, so that joined they are the
 * continuation exactly — SentencePiece's leading spaces kept, split characters whole — for the three kinds of
 * tokenizer the site runs: GPT-2's byte-level BPE, SmolLM2's byte-level BPE with its own added tokens, and
 * stories260K's SentencePiece (Llama) tokenizer.
 */
import {afterAll, describe, expect, it} from "vitest";
import {loadModel, type Model} from "../src/node.js";

const models: Model[] = [];
afterAll(() => Promise.all(models.map((m) => m.dispose())));

const CASES = [
  {id: "stories260K", prompt: "Once upon a time", init: undefined},
  {id: "gpt2", prompt: "The city Paris is in", init: "random" as const},
  {id: "HuggingFaceTB/SmolLM2-135M", prompt: "The city Paris is in", init: "random" as const}
];

describe("generate's options are checked where their defaults are stated (src/defaults.ts)", () => {
  it("an option out of range is an error naming it, its value and its range; greedy takes temperature 0", async () => {
    const model = await loadModel("stories260K", {modelsPath: ["data/models"]});
    models.push(model);
    await expect(model.generate("Once", {temperature: -1})).rejects.toThrow(/temperature must be a number ≥ 0, got -1/);
    await expect(model.generate("Once", {doSample: true, temperature: 0})).rejects.toThrow(
      /temperature must be above 0 when sampling, got 0/
    );
    await expect(model.generate("Once", {doSample: true, topP: 1.5})).rejects.toThrow(
      /topP must be a number in \(0, 1\], got 1\.5/
    );
    await expect(model.generate("Once", {topK: -2})).rejects.toThrow(/topK must be a whole number ≥ 0, got -2/);
    await expect(model.generate("Once", {maxNewTokens: 0})).rejects.toThrow(/maxNewTokens must be a whole number ≥ 1/);
    const greedy = await model.generate("Once", {maxNewTokens: 4, stopAtEos: false});
    const atZero = await model.generate("Once", {maxNewTokens: 4, stopAtEos: false, temperature: 0});
    expect(atZero.new_ids).toEqual(greedy.new_ids);
  }, 120_000);
});

describe("generate streams the text each token adds", () => {
  for (const {id, prompt, init} of CASES) {
    it(`${id}: the joined pieces are the generated text`, async () => {
      const model = await loadModel(id, {modelsPath: ["data/models"], init, seed: 3});
      models.push(model);
      const pieces: string[] = [];
      const result = await model.generate(prompt, {maxNewTokens: 12, onToken: ({text}) => pieces.push(text)});
      expect(pieces.length).toBe(result.new_ids.length);
      const promptText = model.tokenizer.decode(result.input_ids, {skipSpecialTokens: true});
      expect(result.text.startsWith(promptText)).toBe(true);
      expect(pieces.join("")).toBe(result.text.slice(promptText.length));
      if (id === "stories260K") {
        // Trained weights: the continuation is words, and its spaces are there (not ",therewasalittlegirl…").
        expect(pieces.join("")).toMatch(/^, there was a /);
        expect(pieces.slice(1, 3)).toEqual([" there", " was"]);
      }
    }, 120_000);
  }
});
