/**
 * The site's data: the data loaders' outputs as the site build ships them (the build the browser tests share,
 * with LMW_MODELS from vitest.config.ts) against the engine, and the model files the site ships (those loaders
 * run as Framework runs them, `tsx <loader>`) against their sources.
 */
import {execFile} from "node:child_process";
import {readFileSync} from "node:fs";
import {join} from "node:path";
import {promisify} from "node:util";
import {beforeAll, describe, expect, test} from "vitest";
import {siteModels} from "../docs/data/site-models.js";
import {analyseTokens, GENERATION_DEFAULTS, TOKENS_DEFAULTS, visible} from "../src/analysis/tokens.js";
import {loadModel} from "../src/node.js";
import {builtData} from "./helpers/site.js";
import {softmax, topK} from "../src/analysis/index.js";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "..");
const TSX = join(ROOT, "node_modules", ".bin", "tsx");

/** Runs a loader as Framework does and returns its stdout. */
async function loader(file: string, ...args: string[]): Promise<Buffer> {
  const {stdout} = await run(TSX, [join(ROOT, file), ...args], {cwd: ROOT, encoding: "buffer", maxBuffer: 256 << 20});
  return stdout;
}
const json = async (file: string) => JSON.parse((await loader(file)).toString("utf8"));

describe("data loaders", () => {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  let models: any, tokens: any, generation: any;
  beforeAll(async () => {
    [models, tokens, generation] = await Promise.all([
      builtData("data/models.json"),
      builtData("data/precomputed/tokens.json"),
      builtData("data/precomputed/generation.json")
    ]);
  });

  test("the site is built with gpt2, SmolLM2-135M and stories260K; only stories260K ships weights", () => {
    expect(siteModels().map((m) => [m.id, m.weights])).toEqual([
      ["gpt2", false],
      ["HuggingFaceTB/SmolLM2-135M", false],
      ["stories260K", true]
    ]);
    expect(models.models.map((m: {id: string; weightsOrigin: string}) => [m.id, m.weightsOrigin])).toEqual([
      ["gpt2", "random (seed 0)"],
      ["HuggingFaceTB/SmolLM2-135M", "random (seed 0)"],
      ["stories260K", "checkpoint"]
    ]);
  });

  test("models.json: counts, module tree and parameters are the engine's", async () => {
    for (const entry of models.models) {
      const model = await loadModel(entry.id, {init: "random", seed: 0});
      expect(entry.counts).toEqual(model.counts());
      expect(entry.moduleTree).toBe(model.moduleTree());
      expect(entry.parameters).toEqual(model.parameters());
      const {raw: _raw, ...config} = model.config;
      expect(entry.config).toEqual(config);
      expect(entry.config.raw).toBeUndefined();
      await model.dispose();
    }
    const smol = models.models.find((m: {id: string}) => m.id === "HuggingFaceTB/SmolLM2-135M");
    expect(smol.counts.total).toBe(134515008);
    expect(smol.counts.layers[10].mlp).toBe(2654208);
  });

  test("tokens.json: stories260K's top-k, argmax and tokens are the engine's trace", async () => {
    const entry = tokens.models.find((m: {id: string}) => m.id === "stories260K");
    const model = await loadModel("stories260K");
    const {prompt, k} = TOKENS_DEFAULTS;
    const trace = await model.trace(prompt, ["lm_head.output"]);
    const logits = trace["lm_head.output"]!;
    const vocab = logits.shape[2]!;
    const last = logits.data.subarray(logits.data.length - vocab);
    const probs = softmax(last);
    const ids = topK(last, k);
    expect(entry.analysis.top.map((c: {id: number}) => c.id)).toEqual(ids);
    entry.analysis.top.forEach((c: {probability: number; logit: number}, i: number) => {
      expect(c.probability).toBeCloseTo(probs[ids[i]!]!, 6);
      expect(c.logit).toBeCloseTo(last[ids[i]!]!, 4);
    });
    expect(entry.analysis.argmax.id).toBe(ids[0]);
    expect(entry.analysis.logitsShape).toEqual([1, trace.input_ids.length, 512]);
    expect(entry.analysis.tokens.map((t: {id: number}) => t.id)).toEqual(trace.input_ids);
    expect(entry.analysis.weightsOrigin).toBe("checkpoint");
    // The trailing space adds one lone-space token, and the loader's numbers are analyseTokens' own.
    expect(entry.comparison.addedTokens.map((t: {shown: string}) => t.shown)).toEqual([visible(" ")]);
    expect(entry.spaced).toEqual(JSON.parse(JSON.stringify(await analyseTokens(model, prompt + " ", {k}))));
    await model.dispose();
  });

  test('tokens.json: " Paris" and "Paris" are different gpt2 tokens', () => {
    const gpt2 = tokens.models.find((m: {id: string}) => m.id === "gpt2");
    expect(gpt2.word.map((w: {ids: number[]}) => w.ids)).toEqual([[6342], [40313]]);
    expect(gpt2.analysis.vocabSize).toBe(50257);
    expect(gpt2.analysis.weightsOrigin).toBe("random (seed 0)");
  });

  test("generation.json: the default prompt's greedy continuation, labelled with its weights", async () => {
    const stories = generation.generations.find((g: {id: string}) => g.id === "stories260K");
    const model = await loadModel("stories260K");
    const expected = await model.generate(GENERATION_DEFAULTS.prompt, {maxNewTokens: GENERATION_DEFAULTS.maxNewTokens});
    expect(stories.tokens.map((t: {id: number}) => t.id)).toEqual(expected.new_ids);
    expect(stories.text).toBe(expected.text);
    expect(stories.weightsOrigin).toBe("checkpoint");
    const gpt2 = generation.generations.find((g: {id: string}) => g.id === "gpt2");
    expect(gpt2.weightsOrigin).toBe("random (seed 0)");
    expect(gpt2.tokens).toHaveLength(GENERATION_DEFAULTS.maxNewTokens);
    await model.dispose();
  });
});

describe("model files shipped with the site", () => {
  test("site.json lists each model's files", async () => {
    const site = await json("docs/models/site.json.ts");
    expect(site.models).toEqual(siteModels().map(({id, name, files, weights}) => ({id, name, files, weights})));
  });

  test("every shipped file is byte-identical to its source", async () => {
    for (const model of siteModels()) {
      for (const file of model.files) {
        const shipped = await loader(`docs/models/[model]/${file}.ts`, `--model=${model.name}`);
        const source = readFileSync(join(ROOT, model.folder, file));
        expect(Buffer.compare(shipped, source), `${model.name}/${file}`).toBe(0);
      }
    }
    // stories260K's weights come from the converted fixture.
    const stories = siteModels().find((m) => m.id === "stories260K")!;
    expect(stories.files).toContain("model.safetensors");
    expect(stories.folder).toMatch(/fixtures[/\\]stories260K$/);
  });
});
