/**
 * The model API beyond parity: parameter lists and counts, the module tree, weights, the trace Proxy,
 * sampling, random weights from a config, loading over HTTP with progress, and every bad input's error.
 */
import {copyFileSync, mkdtempSync, readFileSync, writeFileSync} from "node:fs";
import os from "node:os";
import path from "node:path";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {loadModel, ortRuntime, type Model} from "../src/node.js";
import {createModel} from "../src/runtime/model.js";
import {resolveSource} from "../src/hub/node.js";
import type {Ort} from "../src/runtime/ort.js";
import {WorkbenchError} from "../src/errors.js";
import {analyseTokens} from "../src/analysis/tokens.js";
import {parseHeader, toFloat32} from "../src/hub/safetensors.js";
import {FIXTURES, fixtureDir, readReference, relativeError} from "./helpers/fixtures.js";
import {encodeSafetensors, startHubServer} from "./helpers/hub-server.js";

/** A copy of a fixture's config with the real gpt2 tokenizer (which, unlike the fixtures', adds no <s>). */
function withGpt2Tokenizer(fixture: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "lmw-gpt2-tokenizer-"));
  copyFileSync(path.join(fixtureDir(fixture), "config.json"), path.join(dir, "config.json"));
  for (const f of ["tokenizer.json", "tokenizer_config.json"])
    copyFileSync(path.join("data/models/gpt2", f), path.join(dir, f));
  return dir;
}

const sorted = <T extends {name: string}>(list: T[]) => [...list].sort((a, b) => a.name.localeCompare(b.name));

describe("parameters", () => {
  it.each(FIXTURES)("%s: the parameter list and count equal named_parameters()", async (name) => {
    const model = await loadModel(name);
    const ref = readReference(name).json;
    expect(sorted(model.parameters().map(({name, shape, numel}) => ({name, shape, numel})))).toEqual(
      sorted(ref.parameters)
    );
    expect(model.counts().total).toBe(ref.num_parameters);
    await model.dispose();
  });

  it.each(FIXTURES)("%s: the module tree is what print(model) gives in transformers 4.57", async (name) => {
    const model = await loadModel(name);
    expect(model.moduleTree()).toBe(readReference(name).json.module_tree_4);
    await model.dispose();
  });

  it("counts by component on the real configs (random weights: no checkpoint here)", async () => {
    const smol = await loadModel("HuggingFaceTB/SmolLM2-135M", {init: "random"});
    const counts = smol.counts();
    expect(counts.total).toBe(134_515_008);
    expect(counts.layers[10].mlp).toBe(2_654_208); // 3 × 576 × 1536
    expect(counts.layers[10].attention).toBe(576 * 576 * 2 + 576 * 192 * 2);
    expect(counts.embedding).toBe(49152 * 576);
    expect(counts.mlp).toBe(30 * 2_654_208);
    expect(smol.weightsOrigin).toBe("random (seed 0)");
    await smol.dispose();
  });
});

describe("module tree", () => {
  it("SmolLM2-135M prints as PyTorch prints LlamaForCausalLM", async () => {
    const smol = await loadModel("HuggingFaceTB/SmolLM2-135M", {init: "random"});
    expect(smol.moduleTree()).toBe(`LlamaForCausalLM(
  (model): LlamaModel(
    (embed_tokens): Embedding(49152, 576)
    (layers): ModuleList(
      (0-29): 30 x LlamaDecoderLayer(
        (self_attn): LlamaAttention(
          (q_proj): Linear(in_features=576, out_features=576, bias=False)
          (k_proj): Linear(in_features=576, out_features=192, bias=False)
          (v_proj): Linear(in_features=576, out_features=192, bias=False)
          (o_proj): Linear(in_features=576, out_features=576, bias=False)
        )
        (mlp): LlamaMLP(
          (gate_proj): Linear(in_features=576, out_features=1536, bias=False)
          (up_proj): Linear(in_features=576, out_features=1536, bias=False)
          (down_proj): Linear(in_features=1536, out_features=576, bias=False)
          (act_fn): SiLUActivation()
        )
        (input_layernorm): LlamaRMSNorm((576,), eps=1e-05)
        (post_attention_layernorm): LlamaRMSNorm((576,), eps=1e-05)
      )
    )
    (norm): LlamaRMSNorm((576,), eps=1e-05)
    (rotary_emb): LlamaRotaryEmbedding()
  )
  (lm_head): Linear(in_features=576, out_features=49152, bias=False)
)`);
    await smol.dispose();
  });

  it("gpt2 prints as PyTorch prints GPT2LMHeadModel", async () => {
    const gpt2 = await loadModel("gpt2", {init: "random"});
    const tree = gpt2.moduleTree();
    expect(
      tree.startsWith(
        "GPT2LMHeadModel(\n  (transformer): GPT2Model(\n    (wte): Embedding(50257, 768)\n    (wpe): Embedding(1024, 768)\n    (drop): Dropout(p=0.1, inplace=False)\n    (h): ModuleList(\n      (0-11): 12 x GPT2Block(\n        (ln_1): LayerNorm((768,), eps=1e-05, elementwise_affine=True, bias=True)"
      )
    ).toBe(true);
    expect(tree).toContain("(c_attn): Conv1D(nf=2304, nx=768)");
    expect(tree).toContain("(act): NewGELUActivation()");
    expect(tree.endsWith("  (lm_head): Linear(in_features=768, out_features=50257, bias=False)\n)")).toBe(true);
    expect(gpt2.counts().total).toBe(124_439_808);
    await gpt2.dispose();
  });
});

describe("trace and weights", () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel("stories260K");
  });
  afterAll(() => model.dispose());

  it("the Proxy records module paths and one run fetches them all", async () => {
    const runs = model.runs;
    const {resid, attn, logits, input_ids} = await model.trace("The city Paris is in France", (m) => ({
      resid: m.model.layers[3].output,
      attn: m.model.layers[3].self_attn.attn_weights,
      logits: m.lm_head.output
    }));
    expect(model.runs).toBe(runs + 1);
    const T = input_ids.length;
    expect(resid.shape).toEqual([1, T, 64]);
    expect(attn.shape).toEqual([1, 8, T, T]);
    expect(logits.shape).toEqual([1, T, 512]);
    const ref = readReference("stories260K");
    expect(relativeError(resid.data, ref.tensor("p1.model.layers.3.output").data)).toBeLessThan(1e-4);
  });

  it("weights come back in the checkpoint's layout", async () => {
    const w = await model.weight("model.layers.2.mlp.gate_proj.weight");
    expect(w.shape).toEqual([172, 64]);
    const bytes = new Uint8Array(readFileSync(path.join(fixtureDir("stories260K"), "model.safetensors")));
    const info = parseHeader(bytes, "model.safetensors").tensors.get("model.layers.2.mlp.gate_proj.weight")!;
    expect(w.data).toEqual(toFloat32(info, bytes.subarray(info.begin, info.end)));
    const picked = await model.trace("Hi", (m) => m.model.layers[2].mlp.gate_proj.weight);
    expect(picked.data).toEqual(w.data);
  });

  it("clear errors: unknown hook, layer out of range, empty prompt, too long, bad ids", async () => {
    await expect(model.trace("Hi", ["model.layers.0.banana"])).rejects.toThrow(
      /unknown hook point model\.layers\.0\.banana/
    );
    await expect(model.trace("Hi", (m) => m.model.layers[7].output)).rejects.toThrow(/stories260K has layers 0 to 4/);
    // stories260K's tokenizer adds <s>, so "" is one token; gpt2's adds nothing, so "" is no tokens at all.
    const gpt2 = await loadModel(withGpt2Tokenizer("mini-gpt2"), {init: "random"});
    await expect(gpt2.trace("", ["lm_head.output"])).rejects.toThrow(/the prompt "" tokenizes to no tokens/);
    await gpt2.dispose();
    const tooLong = Array.from({length: 600}, () => 300);
    await expect(model.trace(tooLong, ["lm_head.output"])).rejects.toThrow(
      /600 tokens long; stories260K takes at most 512 positions/
    );
    await expect(model.trace([1, 9999], ["lm_head.output"])).rejects.toThrow(/token id 9999 is outside the vocabulary/);
    await expect(model.weight("model.layers.0.nothing.weight")).rejects.toThrow(WorkbenchError);
    for (const cachePositions of [0, 2.5])
      await expect(loadModel("stories260K", {cachePositions})).rejects.toThrow(
        new RegExp(`cachePositions: a whole number of positions above 0, not ${cachePositions}`)
      );
  });

  it("runs the analyses by name as their functions do, and streams each token with its display piece", async () => {
    expect(await model.analyse("analyseTokens", "Once upon a time", {k: 5})).toEqual(
      await analyseTokens(model, "Once upon a time", {k: 5})
    );
    // In this thread nothing waits to be superseded: a lane is the model.
    expect(model.lane("tokens")).toBe(model);
    await expect(model.analyse("nothing" as "analyseTokens", "x")).rejects.toThrow(
      /unknown analysis nothing: one of analyseTokens/
    );
    const pieces: string[] = [];
    const generation = await model.generate("Once upon a time", {
      maxNewTokens: 4,
      onToken: (t) => pieces.push(t.piece)
    });
    expect(pieces).toEqual(model.pieces(generation.new_ids));
  });

  it("sampling is reproducible from its seed and streams its tokens", async () => {
    const streamed: number[] = [];
    const a = await model.generate("Once upon a time", {
      maxNewTokens: 12,
      doSample: true,
      temperature: 0.8,
      topK: 40,
      topP: 0.9,
      seed: 7,
      onToken: (t) => streamed.push(t.id)
    });
    const b = await model.generate("Once upon a time", {
      maxNewTokens: 12,
      doSample: true,
      temperature: 0.8,
      topK: 40,
      topP: 0.9,
      seed: 7
    });
    expect(a.new_ids).toEqual(b.new_ids);
    expect(streamed).toEqual(a.new_ids);
    const others = await Promise.all(
      [1, 2, 3].map((seed) =>
        model.generate("Once upon a time", {maxNewTokens: 12, doSample: true, temperature: 1.5, seed})
      )
    );
    expect(new Set(others.map((o) => o.new_ids.join())).size).toBeGreaterThan(1);
    const greedy = await model.generate("Once upon a time", {maxNewTokens: 20});
    expect(greedy.text).toContain("there was a little girl named Lily");
  });

  it("the autoregressive property: later tokens leave earlier activations bit-identical", async () => {
    const a = await model.trace("The package is very fragile", ["model.layers.4.output"]);
    const b = await model.trace("The package is very heavy", ["model.layers.4.output"]);
    const shared = a.input_ids.findIndex((id, i) => id !== b.input_ids[i]);
    const width = 64;
    expect(Array.from(a["model.layers.4.output"].data.subarray(0, shared * width))).toEqual(
      Array.from(b["model.layers.4.output"].data.subarray(0, shared * width))
    );
  });
});

describe("random weights from a config", () => {
  it("are reproducible from the seed and differ across seeds", async () => {
    const a = await loadModel("mini-llama", {init: "random", seed: 3});
    const b = await loadModel("mini-llama", {init: "random", seed: 3});
    const c = await loadModel("mini-llama", {init: "random", seed: 4});
    const w = "model.layers.0.self_attn.q_proj.weight";
    expect((await a.weight(w)).data).toEqual((await b.weight(w)).data);
    expect((await a.weight(w)).data).not.toEqual((await c.weight(w)).data);
    const ta = await a.trace("Hello", ["lm_head.output"]);
    const tb = await b.trace("Hello", ["lm_head.output"]);
    expect(ta["lm_head.output"].data).toEqual(tb["lm_head.output"].data);
    await Promise.all([a.dispose(), b.dispose(), c.dispose()]);
  });

  it("take the checkpoint's precision from config.json's dtype, and are held at 2 bytes where a checkpoint's would be", async () => {
    // mini-llama's config says bfloat16: every draw is a bfloat16 (float32's low 16 bits zero), kept at 2 bytes on WASM.
    const w = "model.layers.0.self_attn.q_proj.weight";
    const bf16 = await loadModel("mini-llama", {init: "random", runtime: "web"});
    const bits = new Uint32Array((await bf16.weight(w)).data.slice().buffer);
    expect(bits.every((b) => (b & 0xffff) === 0)).toBe(true);
    expect(new Set(bits).size).toBeGreaterThan(100); // drawn, not all zero
    // Every parameter at 2 bytes rather than 4 (of the rotary tables, which are not parameters, rotate_half's ±1s
    // shrink too; the cosines and sines stay float32).
    const widened = await loadModel("mini-llama", {init: "random", runtime: "web", keepPrecision: false});
    expect(widened.weightBytes - bf16.weightBytes).toBe(2 * bf16.counts().total + 2 * 8 * 8);
    // mini-gpt2's says float32: full float32 draws, 4 bytes each.
    const fp32 = await loadModel("mini-gpt2", {init: "random", runtime: "web"});
    const full = new Uint32Array((await fp32.weight("transformer.h.0.attn.c_attn.weight")).data.slice().buffer);
    expect(full.some((b) => (b & 0xffff) !== 0)).toBe(true);
    expect(fp32.weightBytes).toBeGreaterThanOrEqual(4 * fp32.counts().total);
    await Promise.all([bf16.dispose(), widened.dispose(), fp32.dispose()]);
  });
});

describe("sessions after another's", () => {
  it("sessionsAfter: no session is made before it settles (the native WebGPU provider makes one at a time)", async () => {
    const base = await ortRuntime("node");
    const order: string[] = [];
    const create = async (...args: Parameters<typeof base.ort.InferenceSession.create>) => {
      order.push("session");
      return base.ort.InferenceSession.create(...args);
    };
    const ort = {...base.ort, InferenceSession: {...base.ort.InferenceSession, create}} as unknown as Ort;
    let settle!: () => void;
    const warmUp = new Promise<void>((resolve) => (settle = resolve));
    const loading = createModel(await resolveSource(fixtureDir("mini-llama")), {...base, ort, sessionsAfter: warmUp});
    // Long enough for the config, the tokenizer, the weights and the graph: the model is at its first session.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    order.push("warm-up done");
    settle();
    const model = await loading;
    try {
      expect(order).toEqual(["warm-up done", "session"]);
      // A warm-up that failed holds nothing up: the model reports its own errors.
      const failed = Promise.reject(new Error("the warm-up failed"));
      failed.catch(() => undefined);
      const again = await createModel(await resolveSource(fixtureDir("mini-llama")), {...base, sessionsAfter: failed});
      await again.dispose();
    } finally {
      await model.dispose();
    }
  });
});

describe("loading over HTTP from a loopback Hub", () => {
  it("downloads with progress, then runs as the local copy does", async () => {
    const cacheDir = mkdtempSync(path.join(os.tmpdir(), "lmw-cache-"));
    const hub = await startHubServer({"test-org/mini-gpt2": fixtureDir("mini-gpt2")});
    try {
      const events: {stage: string; file?: string; loaded?: number; total?: number}[] = [];
      const model = await loadModel("test-org/mini-gpt2", {
        endpoint: hub.endpoint,
        modelsPath: [],
        cacheDir,
        onProgress: (p) => events.push(p)
      });
      const downloads = events.filter((e) => e.stage === "download" && e.file === "model.safetensors");
      expect(downloads.length).toBeGreaterThan(0);
      expect(downloads.at(-1)!.loaded).toBe(downloads.at(-1)!.total);
      expect(events.map((e) => e.stage)).toEqual(
        expect.arrayContaining(["config", "download", "graph", "session", "ready"])
      );
      expect(hub.requests.some((r) => r.range !== undefined)).toBe(true);
      const ref = readReference("mini-gpt2");
      const out = await model.trace(ref.json.prompts[0].text, ["transformer.h.1.output"]);
      expect(
        relativeError(out["transformer.h.1.output"].data, ref.tensor("p0.transformer.h.1.output").data)
      ).toBeLessThan(1e-4);
      await model.dispose();
      await expect(loadModel("test-org/nope", {endpoint: hub.endpoint, modelsPath: [], cacheDir})).rejects.toThrow(
        /not found/
      );
    } finally {
      await hub.close();
    }
  });
});

describe("GPT-2 checkpoints in either layout", () => {
  it("accepts the transformer. prefix and attn.masked_bias buffers (DialoGPT, mGPT), with the same numbers", async () => {
    const bytes = new Uint8Array(readFileSync(path.join(fixtureDir("mini-gpt2"), "model.safetensors")));
    const header = parseHeader(bytes, "model.safetensors");
    const tensors = [...header.tensors.values()].map((info) => ({
      name: `transformer.${info.name}`,
      dtype: info.dtype,
      shape: info.shape,
      bytes: bytes.slice(info.begin, info.end)
    }));
    tensors.push({
      name: "transformer.h.0.attn.masked_bias",
      dtype: "F32",
      shape: [],
      bytes: new Uint8Array(new Float32Array([-1e4]).buffer)
    });
    const dir = mkdtempSync(path.join(os.tmpdir(), "lmw-prefixed-"));
    for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json"])
      copyFileSync(path.join(fixtureDir("mini-gpt2"), f), path.join(dir, f));
    writeFileSync(path.join(dir, "model.safetensors"), encodeSafetensors(tensors));
    const model = await loadModel(dir);
    const ref = readReference("mini-gpt2");
    const out = await model.trace(ref.json.prompts[3].text, ["transformer.h.1.output"]);
    expect(
      relativeError(out["transformer.h.1.output"].data, ref.tensor("p3.transformer.h.1.output").data)
    ).toBeLessThan(1e-4);
    await model.dispose();
  });
});

describe("bad checkpoints are refused, naming the file and the tensor", () => {
  const folder = (config: Record<string, unknown>, tensors?: Parameters<typeof encodeSafetensors>[0]) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "lmw-bad-"));
    writeFileSync(path.join(dir, "config.json"), JSON.stringify(config));
    copyFileSync(path.join(fixtureDir("stories260K"), "tokenizer.json"), path.join(dir, "tokenizer.json"));
    if (tensors) writeFileSync(path.join(dir, "model.safetensors"), encodeSafetensors(tensors));
    return dir;
  };
  const stories = JSON.parse(readFileSync(path.join(fixtureDir("stories260K"), "config.json"), "utf8"));

  it("another model_type", async () => {
    await expect(loadModel(folder({...stories, model_type: "bert"}), {init: "random"})).rejects.toThrow(
      /config\.json: model_type "bert" is not supported/
    );
  });

  it("a field that makes no sense", async () => {
    await expect(loadModel(folder({...stories, num_attention_heads: 7}), {init: "random"})).rejects.toThrow(
      /config\.json: hidden size 64 is not divisible by 7 attention heads/
    );
    await expect(loadModel(folder({...stories, hidden_size: "big"}), {init: "random"})).rejects.toThrow(
      /field "hidden_size"/
    );
  });

  it("a missing tensor, a wrong shape, no weights at all", async () => {
    const f32 = (n: number) => new Uint8Array(new Float32Array(n).buffer);
    await expect(
      loadModel(
        folder(stories, [{name: "model.embed_tokens.weight", dtype: "F32", shape: [512, 64], bytes: f32(512 * 64)}])
      )
    ).rejects.toThrow(/model\.safetensors: tensor model\.layers\.0\.self_attn\.q_proj\.weight is missing/);
    await expect(
      loadModel(
        folder(stories, [{name: "model.embed_tokens.weight", dtype: "F32", shape: [500, 64], bytes: f32(500 * 64)}])
      )
    ).rejects.toThrow(
      /model\.safetensors: tensor model\.embed_tokens\.weight has shape \[500,64\], but config\.json implies \[512,64\]/
    );
    await expect(loadModel("data/models/gpt2")).rejects.toThrow(/no weights.*init: "random"/);
  });
});

describe("concurrent traces", () => {
  it("queue on the one session and each gets its own answer (onnxruntime-web refuses overlapping runs)", async () => {
    const model = await loadModel("stories260K", {runtime: "web"});
    const prompts = ["The cat sat on the mat", "Paris is the capital of France", "Once upon a time"];
    const together = await Promise.all(prompts.map((p) => model.trace(p, ["model.layers.4.output"])));
    for (const [i, p] of prompts.entries()) {
      const alone = await model.trace(p, ["model.layers.4.output"]);
      expect(together[i]["model.layers.4.output"].data).toEqual(alone["model.layers.4.output"].data);
    }
    await model.dispose();
  });
});
