/**
 * The CLI, run as users run it: `node bin/lm-workbench.js …` in a child process (tsx startup costs about a
 * second per spawn, so the spawns run concurrently and each checks as much as it can).
 */
import {copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from "node:fs";
import os from "node:os";
import path from "node:path";
import {afterAll, describe, expect, it} from "vitest";
import {fixtureDir, readReference, relativeError} from "./helpers/fixtures.js";
import {encodeSafetensors} from "./helpers/hub-server.js";
import {cli, expectCleanError, json} from "./helpers/cli.js";

const tempDirs: string[] = [];
afterAll(() => tempDirs.forEach((dir) => rmSync(dir, {recursive: true, force: true})));

describe.concurrent("lm-workbench CLI", () => {
  it("inspect --json on SmolLM2-135M (no weights): counts and module tree", async () => {
    const out = json(await cli("inspect", "HuggingFaceTB/SmolLM2-135M", "--json"));
    expect(out.counts.total).toBe(134515008);
    expect(out.counts.layers).toHaveLength(30);
    expect(out.counts.layers[10].mlp).toBe(2654208);
    expect(out.config.numLayers).toBe(30);
    expect(out.config.raw).toBeUndefined();
    expect(
      out.moduleTree.startsWith("LlamaForCausalLM(\n  (model): LlamaModel(\n    (embed_tokens): Embedding(49152, 576)")
    ).toBe(true);
    expect(out.moduleTree).toContain("(0-29): 30 x LlamaDecoderLayer(");
    expect(out.parameters.reduce((s: number, p: {numel: number}) => s + p.numel, 0)).toBe(134515008);
  });

  it("inspect on gpt2 (no weights), --json and human", async () => {
    const [machine, human] = await Promise.all([cli("inspect", "gpt2", "--json"), cli("inspect", "gpt2")]);
    expect(json(machine).counts.total).toBe(124439808);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/total\s+124,439,808/);
    expect(human.stdout).toContain("GPT2LMHeadModel(");
  });

  it("inspect mini-gpt2 lists the reference parameters", async () => {
    const ref = readReference("mini-gpt2").json;
    const out = json(await cli("inspect", "mini-gpt2", "--json"));
    const key = (p: {name: string; shape: number[]; numel: number}) => `${p.name} [${p.shape}] ${p.numel}`;
    expect(new Set(out.parameters.map(key))).toEqual(new Set(ref.parameters.map(key)));
    expect(out.counts.total).toBe(ref.num_parameters);
  });

  it("tokens --json on gpt2 matches the reference ids of its real tokenizer", async () => {
    const prompt = JSON.parse(readFileSync("test/fixtures/tokenizers/gpt2.prompts.json", "utf8"))[0];
    const out = json(await cli("tokens", "gpt2", prompt.text, "--json"));
    expect(out.ids).toEqual(prompt.input_ids);
    expect(out.tokens).toEqual(prompt.tokens);
  });

  it("trace --json on mini-llama matches the reference activations", async () => {
    const ref = readReference("mini-llama");
    const prompt = ref.json.prompts[0];
    const hook = "model.layers.1.output";
    const out = json(
      await cli("trace", "mini-llama", prompt.text, "--hook", hook, "--hook", "model.norm.output", "--json")
    );
    expect(out.input_ids).toEqual(prompt.input_ids);
    const want = ref.tensor(`p0.${hook}`);
    expect(out.hooks[hook].shape).toEqual([1, ...want.shape]); // the reference is stored without the batch axis
    expect(relativeError(out.hooks[hook].data, want.data)).toBeLessThan(1e-4);
    expect(Object.keys(out.hooks)).toEqual([hook, "model.norm.output"]);
  });

  it.each([
    ["mini-qwen2", "Qwen2ForCausalLM(", "model.layers.1.self_attn.q_proj.output"],
    ["mini-qwen3", "Qwen3ForCausalLM(", "model.layers.0.self_attn.q_norm.output"],
    ["mini-pythia", "GPTNeoXForCausalLM(", "gpt_neox.layers.1.attention.attn_weights"],
    ["mini-gemma3", "Gemma3ForCausalLM(", "model.layers.0.self_attn.k_norm.output"]
  ])("%s: inspect, trace and generate, as the reference says", async (name, treeStart, hook) => {
    const ref = readReference(name);
    const prompt = ref.json.prompts[1];
    const generation = ref.json.generations[0];
    const [inspected, human, traced, generated] = await Promise.all([
      cli("inspect", name, "--json"),
      cli("inspect", name),
      cli("trace", name, prompt.text, "--hook", hook, "--json"),
      cli("generate", name, generation.text, "--max-new-tokens", "20", "--json")
    ]);
    const info = json(inspected);
    expect(info.moduleTree).toBe(ref.json.module_tree_4);
    expect(info.moduleTree.startsWith(treeStart)).toBe(true);
    expect(info.counts.total).toBe(ref.json.num_parameters);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(treeStart);
    const out = json(traced);
    const want = ref.tensor(`p1.${hook}`);
    expect(out.hooks[hook].shape).toEqual([1, ...want.shape]);
    expect(relativeError(out.hooks[hook].data, want.data)).toBeLessThan(1e-4);
    const gen = json(generated);
    expect(gen.new_ids).toEqual(generation.new_ids);
    expect(gen.text).toBe(generation.generated_text);
  });

  it("generate --json on stories260K matches the reference greedy continuation; human mode streams it", async () => {
    const generation = readReference("stories260K").json.generations[0];
    const [machine, human] = await Promise.all([
      cli("generate", "stories260K", generation.text, "--max-new-tokens", "20", "--json"),
      cli("generate", "stories260K", generation.text, "--max-new-tokens", "20")
    ]);
    const out = json(machine);
    expect(out.input_ids).toEqual(generation.input_ids);
    expect(out.new_ids).toEqual(generation.new_ids);
    expect(out.text).toBe(generation.generated_text);
    expect(human.code).toBe(0);
    expect(human.stdout).toBe(generation.generated_text + "\n");
    expect(human.stderr).toContain("creating the onnxruntime session");
  });

  it("generate's option ranges, from src/defaults.ts: each error names the option, the value and the range", async () => {
    const generation = readReference("stories260K").json.generations[0];
    const generate = (...options: string[]) => cli("generate", "stories260K", "Hi", ...options);
    const [temperature, samplingAtZero, topP, topK, fractionalK, maxNew, alpha, greedyAtZero] = await Promise.all([
      generate("--temperature", "-1"),
      generate("--do-sample", "--temperature", "0"),
      generate("--do-sample", "--top-p", "1.5"),
      generate("--top-k", "-1"),
      generate("--top-k", "2.5"),
      generate("--max-new-tokens", "0"),
      generate("--steer", "model.layers.2.output", "--steer-from", "a", "--steer-to", "b", "--alpha", "1e999"),
      // Temperature 0 is greedy decoding's, as it is often written: the reference's greedy tokens.
      cli("generate", "stories260K", generation.text, "--temperature", "0", "--max-new-tokens", "20", "--json")
    ]);
    expectCleanError(temperature, /--temperature must be a number ≥ 0, got -1/);
    expectCleanError(
      samplingAtZero,
      /--temperature must be above 0 when sampling, got 0 \(for greedy decoding, leave out --do-sample\)/
    );
    expectCleanError(topP, /--top-p must be a number in \(0, 1\], got 1\.5/);
    expectCleanError(topK, /--top-k must be a whole number ≥ 0, got -1/);
    expectCleanError(fractionalK, /--top-k must be a whole number ≥ 0, got 2\.5/);
    expectCleanError(maxNew, /--max-new-tokens must be a whole number ≥ 1, got 0/);
    expectCleanError(alpha, /--alpha must be a number, got "1e999"/);
    // Checked before the model loads: no progress lines before the error.
    expect(temperature.stderr).not.toContain("creating the onnxruntime session");
    expect(json(greedyAtZero).new_ids).toEqual(generation.new_ids);
  });

  it("--help is generated from the option specs: each option's default and range as src/defaults.ts states them", async () => {
    const {GENERATION, LOGIT_LENS, STEERING, describeRange} = await import("../src/defaults.js");
    const [generate, lens] = await Promise.all([cli("generate", "--help"), cli("lens", "--help")]);
    expect(generate.code).toBe(0);
    const line = (help: string, flag: string) => help.split("\n").find((l) => l.startsWith(`  ${flag} `)) ?? "";
    const entry = (help: string, flag: string) => {
      // An entry and its continuation lines (indented past the flag column), joined.
      const lines = help.split("\n");
      const at = lines.findIndex((l) => l.startsWith(`  ${flag} `));
      const rest = lines.slice(at + 1).findIndex((l) => !l.startsWith("      "));
      return lines
        .slice(at, rest < 0 ? undefined : at + 1 + rest)
        .map((l) => l.trim())
        .join(" ");
    };
    for (const [flag, spec] of [
      ["--max-new-tokens N", GENERATION.maxNewTokens],
      ["--temperature T", GENERATION.temperature],
      ["--top-k K", GENERATION.topK],
      ["--top-p P", GENERATION.topP],
      ["--alpha A", STEERING.alpha]
    ] as const) {
      expect(line(generate.stdout, flag)).not.toBe("");
      expect(entry(generate.stdout, flag)).toContain(
        `${spec.description} (${describeRange(spec)}; default ${spec.default})`
      );
    }
    expect(entry(lens.stdout, "--top-k K")).toContain(
      `${LOGIT_LENS.k.description} (${describeRange(LOGIT_LENS.k)}; default ${LOGIT_LENS.k.default})`
    );
    // generate's --seed seeds the sampling and random weights: listed once.
    expect(generate.stdout.match(/^ {2}--seed /gm)).toHaveLength(1);
  });

  it("errors: unknown model, unknown hook, missing weights, unsupported model_type, bad usage", async () => {
    const bert = mkdtempSync(path.join(os.tmpdir(), "lmw-cli-bert-"));
    tempDirs.push(bert);
    writeFileSync(
      path.join(bert, "config.json"),
      JSON.stringify({model_type: "bert", hidden_size: 32, num_hidden_layers: 2})
    );
    copyFileSync("data/models/gpt2/tokenizer.json", path.join(bert, "tokenizer.json"));
    // mini-gpt2's config over a checkpoint holding one tensor of the wrong shape: inspect reads headers only, but checks them
    const broken = mkdtempSync(path.join(os.tmpdir(), "lmw-cli-broken-"));
    tempDirs.push(broken);
    copyFileSync(path.join(fixtureDir("mini-gpt2"), "config.json"), path.join(broken, "config.json"));
    const wte = {name: "transformer.wte.weight", dtype: "F32", shape: [3, 4], bytes: new Uint8Array(48)};
    writeFileSync(path.join(broken, "model.safetensors"), encodeSafetensors([wte]));
    const [unknownModel, unknownHook, noWeights, bertInspect, bertTrace, badOption, brokenInspect] = await Promise.all([
      cli("inspect", "no-such-model", "--json"),
      cli("trace", "mini-gpt2", "Hello", "--hook", "transformer.h.0.nonsense", "--json"),
      cli("trace", "gpt2", "Hello", "--hook", "transformer.h.0.output"),
      cli("inspect", bert),
      cli("trace", bert, "Hello", "--hook", "x", "--init", "random", "--json"),
      cli("generate", "stories260K", "Hi", "--max-new-tokens", "many"),
      cli("inspect", broken, "--json")
    ]);
    expectCleanError(unknownModel, /no-such-model/);
    expectCleanError(unknownHook, /unknown hook point transformer\.h\.0\.nonsense/);
    expect(unknownHook.stdout).toBe("");
    expectCleanError(noWeights, /no weights.*--init random/);
    expectCleanError(bertInspect, /model_type "bert" is not supported/);
    expectCleanError(bertTrace, /model_type "bert" is not supported/);
    expectCleanError(badOption, /--max-new-tokens must be a number/);
    expectCleanError(brokenInspect, /tensor transformer\.wte\.weight has shape \[3,4\]/);
  });
});
