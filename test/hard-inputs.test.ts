/**
 * Hard inputs found by trying (issue 10 §4), each refused up front with a WorkbenchError that names what is
 * wrong: safetensors headers that are not UTF-8, name a dtype "toString" or overlap; configs that do not fit
 * in memory or give NaN weights; an empty weight_map; token ids beyond the model's vocabulary; trace arguments
 * that are not a prompt or hook paths; an inspect of 100,000 layers.
 */
import {copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from "node:fs";
import os from "node:os";
import path from "node:path";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {architectureFor, normalizeConfig} from "../src/arch/index.js";
import {main} from "../src/cli.js";
import {checkFits, TAB_BUDGET} from "../src/runtime/limits.js";
import {WorkbenchError} from "../src/errors.js";
import {openCheckpoint} from "../src/hub/checkpoint.js";
import {folderSource} from "../src/hub/node.js";
import {parseHeader} from "../src/hub/safetensors.js";
import {loadModel, type Model} from "../src/node.js";
import {encodeRaw, encodeSafetensors} from "./helpers/hub-server.js";

const STORIES = path.resolve("test/fixtures/stories260K");
const STORIES_CONFIG = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  vocab_size: 512,
  hidden_size: 64,
  intermediate_size: 172,
  num_hidden_layers: 5,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  max_position_embeddings: 512,
  rms_norm_eps: 1e-5,
  tie_word_embeddings: true
};
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, {recursive: true, force: true})));

/** A model folder: stories260K's tokenizer and a config with `changes`. */
function folderWith(changes: Record<string, unknown>, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "lmw-hard-"));
  dirs.push(dir);
  writeFileSync(path.join(dir, "config.json"), JSON.stringify({...STORIES_CONFIG, ...changes}));
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) copyFileSync(path.join(STORIES, f), path.join(dir, f));
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  return dir;
}

async function refusal(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e
  );
  expect(error).toBeInstanceOf(WorkbenchError);
  return (error as Error).message;
}

describe("safetensors headers", () => {
  const f32 = new Uint8Array(16);
  it("refuses a header that is not UTF-8", () => {
    const file = encodeRaw(
      '{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "__metadata__": {"x": "\u00ff"}}',
      [f32]
    );
    // "ÿ" is C3 BF in UTF-8: a lone continuation byte in its place is not UTF-8 (a lenient decoder reads U+FFFD).
    const index = file.findIndex((b, i) => b === 0xc3 && file[i + 1] === 0xbf);
    file.set([0xbf, 0x20], index);
    expect(() => parseHeader(file, "bad.safetensors", file.length)).toThrow(
      "bad.safetensors: header is not valid JSON (it is not valid UTF-8)"
    );
  });

  it('refuses a dtype named "toString" or "__proto__"', () => {
    for (const dtype of ["toString", "__proto__", "constructor"]) {
      const file = encodeSafetensors([{name: "w", dtype, shape: [4], bytes: f32}]);
      expect(() => parseHeader(file, "d.safetensors", file.length)).toThrow(
        `tensor w in d.safetensors: unknown dtype ${dtype}`
      );
    }
  });

  it("refuses tensors that share bytes", () => {
    const header = JSON.stringify({
      a: {dtype: "F32", shape: [4], data_offsets: [0, 16]},
      b: {dtype: "F32", shape: [2], data_offsets: [8, 16]}
    });
    const file = encodeRaw(header, [f32]);
    expect(() => parseHeader(file, "o.safetensors", file.length)).toThrow(
      /o\.safetensors: tensors a \[\d+, \d+\) and b \[\d+, \d+\) overlap: the file is corrupt/
    );
  });
});

describe("configs and checkpoints", () => {
  it("an empty weight_map is named as such", async () => {
    const dir = folderWith({}, {"model.safetensors.index.json": JSON.stringify({metadata: {}, weight_map: {}})});
    expect(await refusal(openCheckpoint(folderSource("empty", dir)))).toBe(
      "empty/model.safetensors.index.json: weight_map is empty, so the index names no weights: the file is damaged or not this model's (fetch it again)"
    );
  });

  it('initializer_range "abc" is refused, not turned into NaN weights', async () => {
    const message = await refusal(loadModel(folderWith({initializer_range: "abc"}), {init: "random"}));
    expect(message).toBe(
      'config.json: field "initializer_range" must be a positive number for random weights, got "abc"'
    );
  });

  it("a config larger than the machine is refused up front, with the memory it needs", async () => {
    const started = Date.now();
    const huge = await refusal(
      loadModel(folderWith({hidden_size: 1e9, num_attention_heads: 8, num_key_value_heads: 8}), {init: "random"})
    );
    expect(huge).toMatch(
      /too large to run here — config\.json \(hidden size 1000000000, 5 layers, vocabulary 512\) makes .* parameters, which need about .* PB of memory .*; this machine has/
    );
    const llama7b = folderWith({
      hidden_size: 4096,
      num_hidden_layers: 32,
      intermediate_size: 11008,
      num_attention_heads: 32,
      num_key_value_heads: 32,
      vocab_size: 32000
    });
    const seven = await refusal(
      loadModel(llama7b, {init: "random", memoryBudget: {bytes: 16e9, where: "this machine"}})
    );
    expect(seven).toMatch(
      /makes 6\.\d+ billion parameters, which need about 5\d\.\d GB .*; this machine has 16\.0 GB\. Pick a smaller model or config\.$/
    );
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("in a tab: SmolLM2-135M, Qwen2.5-0.5B and gemma-3-270m fit, a GPT-2 XL-sized config is refused before anything is fetched", () => {
    // The real configs the model box offers (data/models); docs/performance.md measures the two larger ones in a tab.
    for (const id of ["HuggingFaceTB/SmolLM2-135M", "Qwen/Qwen2.5-0.5B", "google/gemma-3-270m"]) {
      const config = JSON.parse(readFileSync(`data/models/${id}/config.json`, "utf8"));
      expect(() => checkFits(architectureFor(normalizeConfig(config)), id, TAB_BUDGET), id).not.toThrow();
    }
    const gpt2 = JSON.parse(readFileSync("data/models/gpt2/config.json", "utf8"));
    const xl = architectureFor(normalizeConfig({...gpt2, n_embd: 1600, n_layer: 48, n_head: 25}));
    expect(() => checkFits(xl, "gpt2-xl", TAB_BUDGET)).toThrow(
      /^gpt2-xl: too large to run here — .* makes 1\.56 billion parameters, which need about 12\.5 GB .*; a browser tab \(onnxruntime-web's memory is at most 4 GB\) has 4\.00 GB\. Pick a smaller model or config\.$/
    );
  });

  it("inspect of a config with 100,000 layers does not overflow the stack", async () => {
    const dir = folderWith({
      num_hidden_layers: 100_000,
      hidden_size: 8,
      num_attention_heads: 2,
      num_key_value_heads: 2,
      intermediate_size: 8,
      vocab_size: 512
    });
    let out = "";
    const code = await main(["inspect", dir], {out: (t) => void (out += t), err: () => {}});
    expect(code).toBe(0);
    expect(out).toContain("model.layers.99999.mlp.down_proj.weight");
  }, 60_000);
});

describe("model inputs", () => {
  let model: Model;
  beforeAll(async () => {
    // The tokenizer knows 512 tokens; this config gives the model embeddings for 300 of them.
    model = await loadModel(folderWith({vocab_size: 300}), {init: "random"});
  });
  afterAll(() => model?.dispose());

  it("token ids beyond vocab_size are named before onnxruntime sees them", async () => {
    const message = await refusal(model.trace("Once upon a time, zebra", ["lm_head.output"]));
    expect(message).toMatch(
      /^token "▁\S+" has id \d{3}, but .* has vocab_size 300 \(config\.json\): the model has no embedding for it$/
    );
    expect(await refusal(model.trace([1, 300], ["lm_head.output"]))).toBe(
      "token id 300 is outside the vocabulary (0 to 299)"
    );
  });

  it("trace(5), a pick returning undefined, and non-string hook paths", async () => {
    expect(await refusal(model.trace(5 as never, ["lm_head.output"]))).toBe(
      "the input is a prompt (a string) or an array of token ids, got number"
    );
    expect(await refusal(model.trace("Once", () => undefined))).toMatch(
      /^trace: pick returned undefined, not a hook path/
    );
    expect(await refusal(model.trace("Once", (m) => ({a: m.lm_head.output, b: 3})))).toMatch(
      /^trace: pick returned\.b 3 \(a number\), not a hook path/
    );
    expect(await refusal(model.trace("Once", [5 as never]))).toMatch(
      /^trace: hook path\[0\] 5 \(a number\), not a hook path/
    );
    expect(await refusal(model.trace("Once", 7 as never))).toBe(
      "trace: the second argument is a function (m => m.model.layers[0].output) or a list of hook paths, got number"
    );
  });
});
