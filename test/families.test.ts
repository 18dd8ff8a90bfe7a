/**
 * What each family adds beyond the parity references: the roles every lecture page asks for, the switches a
 * family's config turns (Qwen's sliding window, GPT-NeoX's sequential residual, Mistral as a Llama), random
 * weights as transformers initializes them, and configs refused by the field that differs.
 */
import {readFileSync} from "node:fs";
import path from "node:path";
import {describe, expect, it} from "vitest";
import {loadModel} from "../src/node.js";
import {parseHeader} from "../src/hub/safetensors.js";
import {defaultModule, pickableModules} from "../src/analysis/anatomy.js";
import {LOGITS} from "../src/arch/types.js";
import {finishDecoder, hookSite} from "../src/graph/hooks.js";
import {FLOAT, GraphBuilder} from "../src/graph/onnx.js";
import {FIXTURES, fixtureDir, fixtureGraph, readReference, relativeError, variant} from "./helpers/fixtures.js";

describe.each(FIXTURES)("%s: the roles", (name) => {
  it("name hook points of the shapes the lecture pages read", async () => {
    const model = await loadModel(name);
    const {roles} = model.arch;
    const {numLayers: L, hiddenSize: d, numHeads: H, headDim: D} = model.config;
    const hooks = new Set(model.hookPoints());
    const last = L - 1;
    const paths = [
      roles.resid(last),
      roles.attn(last),
      roles.mlp(last),
      roles.heads(last),
      roles.attnWeights(last),
      `${roles.mlpIn(last)}.output`,
      `${roles.finalNorm}.output`
    ];
    for (const p of paths) expect(hooks.has(p), p).toBe(true);
    expect(roles.resid(last).startsWith(`${roles.layer(last)}.`)).toBe(true);
    const prompt = readReference(name).json.prompts[3];
    const T = prompt.input_ids.length;
    const t = (await model.trace(prompt.text, paths)) as unknown as Record<string, {shape: number[]}>;
    for (const p of paths.slice(0, 3)) expect(t[p].shape, p).toEqual([1, T, d]);
    expect(t[roles.heads(last)].shape).toEqual([1, T, H * D]);
    expect(t[roles.attnWeights(last)].shape).toEqual([1, H, T, T]);
    // The unembedding is a module of the tree (tied or not); the lecture's default module is one a reader can pick.
    expect(model.moduleTree()).toContain(`(${roles.unembedding}): Linear(`);
    expect(pickableModules(model).map((m) => m.module)).toContain(defaultModule(model));
    // The layer output is what the layer adds to its input: resid(i) = resid(i-1) + attn(i) + mlp(i) (not Gemma 3,
    // whose blocks are normalized after the hook points, as transformers' modules return them).
    if (model.config.modelType !== "gemma3_text" && L > 1) {
      const r = (await model.trace(prompt.text, [
        roles.resid(0),
        roles.resid(1),
        roles.attn(1),
        roles.mlp(1)
      ])) as unknown as Record<string, {data: Float32Array}>;
      const sum = r[roles.resid(0)].data.map((x, i) => x + r[roles.attn(1)].data[i] + r[roles.mlp(1)].data[i]);
      expect(relativeError(sum, r[roles.resid(1)].data)).toBeLessThan(1e-5);
    }
    await model.dispose();
  });
});

describe.each(["mini-qwen2", "mini-qwen3", "mini-pythia", "mini-gemma3"])("%s: a long context", (name) => {
  it("gives the same greedy tokens with the key/value cache as without (Gemma: windows slide over the cache)", async () => {
    const model = await loadModel(name);
    const length = Math.min(100, model.config.maxPositions - 12);
    const prompt = Array.from({length}, (_, i) => (3 + i * 7919) % model.config.vocabSize);
    const kv = await model.generate(prompt, {maxNewTokens: 12, useCache: true, stopAtEos: false});
    const full = await model.generate(prompt, {maxNewTokens: 12, useCache: false, stopAtEos: false});
    expect(kv.new_ids).toEqual(full.new_ids);
    await model.dispose();
  });
});

describe("one declaration per family", () => {
  it.each(FIXTURES)("%s: its graph names exactly hookPoints(), in their order", (name) => {
    // finishDecoder checks the order as the graph is built: building is the test.
    expect(fixtureGraph(name, {lens: true}).build).not.toThrow();
  });

  it("a graph that names its hook points otherwise than the list says is refused, naming where", () => {
    const build = (order: string[]) => {
      const g = new GraphBuilder();
      const hook = hookSite(g, {all: ["a.output", "b.output", "norm.output", LOGITS], aliasOf: () => undefined});
      let h = g.input("x", FLOAT, [1, 1, 1]);
      for (const path of order) h = hook(path, g.op("Neg", [h]));
      finishDecoder(g, hook, {normPath: "norm", norm: (x) => g.op("Neg", [x]), unembed: (x) => x}, h, []);
    };
    expect(() => build(["a.output", "b.output"])).not.toThrow();
    expect(() => build(["b.output", "a.output"])).toThrow(
      "hook points out of order at 0: the graph named b.output where hookPoints() lists a.output"
    );
    expect(() => build(["a.output"])).toThrow(
      "hook points out of order at 1: the graph named norm.output where hookPoints() lists b.output"
    );
  });
});

describe("family switches", () => {
  it("GPT-NeoX: old Pythia checkpoints' BOOL and 0-d buffers are listed and skipped; embed_out.output is the logits", async () => {
    const bytes = new Uint8Array(readFileSync(path.join(fixtureDir("mini-pythia"), "model.safetensors")));
    const header = parseHeader(bytes, "model.safetensors");
    expect(header.tensors.get("gpt_neox.layers.0.attention.bias")).toMatchObject({
      dtype: "BOOL",
      shape: [1, 1, 64, 64]
    });
    expect(header.tensors.get("gpt_neox.layers.0.attention.masked_bias")).toMatchObject({dtype: "F32", shape: []});
    const model = await loadModel("mini-pythia");
    expect(model.arch.isBuffer("gpt_neox.layers.0.attention.bias")).toBe(true);
    expect(model.arch.isBuffer("gpt_neox.layers.0.attention.dense.bias")).toBe(false);
    const t = await model.trace("Once upon a time", ["embed_out.output", "lm_head.output"]);
    expect(t["embed_out.output"].data).toEqual(t["lm_head.output"].data);
    // Errors speak the family's names.
    await expect(model.trace("Hi", ["gpt_neox.layers.7.output"])).rejects.toThrow(/mini-pythia has layers 0 to 1/);
    await expect(model.trace("Hi", ["model.layers.0.output"])).rejects.toThrow(
      /hook points look like gpt_neox\.layers\.0\.output/
    );
    await expect(model.weight("gpt_neox.layers.0.mlp.fc.weight")).rejects.toThrow(
      /weights are named like gpt_neox\.layers\.0\.mlp\.dense_h_to_4h\.weight/
    );
    await model.dispose();
  });

  it("Qwen2: sliding_window counts only with use_sliding_window (then layers from max_window_layers on slide)", async () => {
    const ref = readReference("mini-qwen2");
    const prompt = ref.json.prompts[0];
    const model = await loadModel(variant("mini-qwen2", (c) => ({...c, use_sliding_window: true})));
    const t = (await model.trace(prompt.text, [
      "model.layers.0.output",
      "model.layers.1.output",
      "model.layers.1.self_attn.attn_weights"
    ])) as unknown as Record<string, {shape: number[]; data: Float32Array}>;
    // max_window_layers 1: layer 0 is full attention and unchanged, layer 1 slides over 4 tokens.
    expect(relativeError(t["model.layers.0.output"].data, ref.tensor("p0.model.layers.0.output").data)).toBeLessThan(
      1e-5
    );
    expect(relativeError(t["model.layers.1.output"].data, ref.tensor("p0.model.layers.1.output").data)).toBeGreaterThan(
      1e-2
    );
    const [, heads, T, S] = t["model.layers.1.self_attn.attn_weights"].shape;
    const w = t["model.layers.1.self_attn.attn_weights"].data;
    for (let h = 0; h < heads; h++)
      for (let q = 0; q < T; q++)
        for (let k = 0; k < S; k++) if (k > q || k <= q - 4) expect(w[(h * T + q) * S + k]).toBe(0);
    await model.dispose();
  });

  it("GPT-NeoX: use_parallel_residual false runs the MLP on h + attention", async () => {
    const prompt = readReference("mini-pythia").json.prompts[3];
    const model = await loadModel(variant("mini-pythia", (c) => ({...c, use_parallel_residual: false})));
    const l = "gpt_neox.layers.0";
    const t = (await model.trace(prompt.text, [
      "gpt_neox.embed_in.output",
      `${l}.attention.output`,
      `${l}.mlp.output`,
      `${l}.output`,
      `${l}.post_attention_layernorm.output`
    ])) as unknown as Record<string, {shape: number[]; data: Float32Array}>;
    const h = t["gpt_neox.embed_in.output"].data,
      a = t[`${l}.attention.output`].data;
    const sum = h.map((x, i) => x + a[i] + t[`${l}.mlp.output`].data[i]);
    expect(relativeError(sum, t[`${l}.output`].data)).toBeLessThan(1e-5);
    // post_attention_layernorm reads h + attention: its output is LayerNorm(h + a) (weights of the fixture).
    const [lnW, lnB] = await Promise.all([
      model.weight(`${l}.post_attention_layernorm.weight`),
      model.weight(`${l}.post_attention_layernorm.bias`)
    ]);
    const d = model.config.hiddenSize;
    const row = Array.from({length: d}, (_, j) => h[j] + a[j]);
    const mean = row.reduce((s, x) => s + x, 0) / d;
    const variance = row.reduce((s, x) => s + (x - mean) ** 2, 0) / d;
    const ln = row.map((x, j) => ((x - mean) / Math.sqrt(variance + 1e-5)) * lnW.data[j] + lnB.data[j]);
    expect(relativeError(t[`${l}.post_attention_layernorm.output`].data.subarray(0, d), ln)).toBeLessThan(1e-5);
    await model.dispose();
  });

  it("Mistral: a Llama-shaped config loads, with Mistral's module names and the same numbers", async () => {
    const ref = readReference("mini-llama");
    const prompt = ref.json.prompts[1];
    const model = await loadModel(
      variant("mini-llama", (c) => ({
        ...c,
        model_type: "mistral",
        architectures: ["MistralForCausalLM"],
        sliding_window: null
      }))
    );
    expect(model.moduleTree()).toContain("(0-1): 2 x MistralDecoderLayer(");
    expect(model.moduleTree()).toContain("(norm): MistralRMSNorm((32,), eps=1e-05)");
    const t = await model.trace(prompt.text, ["model.layers.1.output"]);
    expect(relativeError(t["model.layers.1.output"].data, ref.tensor("p1.model.layers.1.output").data)).toBeLessThan(
      1e-5
    );
    await model.dispose();
  });

  it("Gemma 3 under init random: its zero-centred norms start at 0, as transformers initializes them", async () => {
    const model = await loadModel("mini-gemma3", {init: "random", seed: 3});
    for (const name of [
      "model.norm.weight",
      "model.layers.0.self_attn.q_norm.weight",
      "model.layers.1.post_feedforward_layernorm.weight"
    ]) {
      expect(
        (await model.weight(name)).data.every((x) => x === 0),
        name
      ).toBe(true);
    }
    const t = await model.trace("Once upon a time", ["lm_head.output"]);
    expect(t["lm_head.output"].data.every(Number.isFinite)).toBe(true);
    await model.dispose();
  });

  it("Gemma 3: final_logit_softcapping, where a config sets it, bounds the logits by tanh", async () => {
    const prompt = readReference("mini-gemma3").json.prompts[2];
    const [plain, capped] = await Promise.all([
      loadModel("mini-gemma3"),
      loadModel(variant("mini-gemma3", (c) => ({...c, final_logit_softcapping: 2})))
    ]);
    const a = (await plain.trace(prompt.text, ["lm_head.output"]))["lm_head.output"].data;
    const b = (await capped.trace(prompt.text, ["lm_head.output"]))["lm_head.output"].data;
    expect(
      relativeError(
        b,
        a.map((x) => Math.tanh(x / 2) * 2)
      )
    ).toBeLessThan(1e-5);
    await Promise.all([plain.dispose(), capped.dispose()]);
  });

  it("configs are refused by the field that differs", async () => {
    const cases: [string, (c: Record<string, unknown>) => Record<string, unknown>, RegExp][] = [
      [
        "mini-llama",
        (c) => ({...c, rope_scaling: {rope_type: "llama3", factor: 32}}),
        /config\.json: rope_scaling .* is not supported/
      ],
      ["mini-llama", (c) => ({...c, hidden_act: "relu"}), /config\.json: hidden_act "relu" is not supported/],
      [
        "mini-qwen2",
        (c) => ({...c, use_sliding_window: true, layer_types: ["full_attention", "chunked_attention"]}),
        /config\.json: layer_types\[1\] "chunked_attention" is not supported/
      ],
      ["mini-pythia", (c) => ({...c, rotary_pct: 0.1}), /config\.json: rotary_pct 0\.1 gives 1 rotary dimensions/],
      [
        "mini-gemma3",
        (c) => ({...c, use_bidirectional_attention: true}),
        /config\.json: use_bidirectional_attention true is not supported/
      ],
      [
        "mini-gemma3",
        (c) => ({...c, layer_types: ["sliding_attention"]}),
        /config\.json: layer_types has 1 entries for 2 layers/
      ]
    ];
    for (const [name, change, message] of cases)
      await expect(loadModel(variant(name, change))).rejects.toThrow(message);
  });
});

/**
 * The bigger real checkpoints the model box offers, their config and tokenizer in data/models (no weights here): the
 * model transformers builds from the config, and ids from Python's `tokenizers` on the same files (each
 * PROVENANCE.txt).
 */
const REAL_CONFIGS = [
  {
    id: "Qwen/Qwen2.5-0.5B",
    // Qwen's model card: 0.49B parameters, 0.36B without the embedding; q/k/v biases, a tied head.
    parameters: 494_032_768,
    embedding: 151_936 * 896,
    layer0: {attention: 896 * 896 + 896 + 2 * (896 * 128 + 128) + 896 * 896},
    tree: [
      "Qwen2ForCausalLM(",
      "    (embed_tokens): Embedding(151936, 896)",
      "      (0-23): 24 x Qwen2DecoderLayer(",
      "          (q_proj): Linear(in_features=896, out_features=896, bias=True)",
      "          (k_proj): Linear(in_features=896, out_features=128, bias=True)",
      "          (o_proj): Linear(in_features=896, out_features=896, bias=False)",
      "        (input_layernorm): Qwen2RMSNorm((896,), eps=1e-06)",
      "  (lm_head): Linear(in_features=896, out_features=151936, bias=False)"
    ],
    // Digits one by one, the chat markers as single tokens, as Qwen's own examples show them.
    encodes: [
      ["Hello world", [9707, 1879]],
      ["<|im_start|>user\nhi<|im_end|>", [151644, 872, 198, 6023, 151645]],
      ["  two  spaces 123 ü", [220, 1378, 220, 12621, 220, 16, 17, 18, 10489]]
    ] as [string, number[]][],
    helloWorld: [9707, 1879],
    // tokenizer_config.json: no bos_token (GPT-2's convention, <|endoftext|>, stands in), eos <|endoftext|>.
    bosEos: [151643, 151643],
    // Python's tokenizers: 151,665 tokens, fewer than the embedding's 151,936 rows.
    tokenizerSize: 151_665
  },
  {
    id: "google/gemma-3-270m",
    // Google's model card: 270M parameters, 170M of them the embedding (a 262,144-token vocabulary), 100M the layers.
    parameters: 268_098_176,
    embedding: 262_144 * 640,
    // Its q_norm and k_norm count with the four norms around the attention and the MLP.
    layer0: {attention: 640 * 1024 + 2 * (640 * 256) + 1024 * 640, mlp: 3 * 640 * 2048, norm: 4 * 640 + 2 * 256},
    tree: [
      "Gemma3ForCausalLM(",
      "    (embed_tokens): Gemma3TextScaledWordEmbedding(262144, 640, padding_idx=0)",
      "      (0-17): 18 x Gemma3DecoderLayer(",
      "          (q_proj): Linear(in_features=640, out_features=1024, bias=False)",
      "          (k_proj): Linear(in_features=640, out_features=256, bias=False)",
      "          (q_norm): Gemma3RMSNorm((256,), eps=1e-06)",
      "        (post_feedforward_layernorm): Gemma3RMSNorm((640,), eps=1e-06)",
      "  (lm_head): Linear(in_features=640, out_features=262144, bias=False)"
    ],
    // <bos> first, digits one by one, the turn markers as single tokens.
    encodes: [
      ["Hello world", [2, 9259, 1902]],
      ["<start_of_turn>user\nhi<end_of_turn>", [2, 105, 2364, 107, 2202, 106]],
      ["  two  spaces 123 ü", [2, 138, 13498, 138, 35220, 236743, 236770, 236778, 236800, 4741]]
    ] as [string, number[]][],
    helloWorld: [9259, 1902],
    // tokenizer_config.json: <bos> and <eos> (the instruction-tuned file says <end_of_turn>).
    bosEos: [2, 1],
    // One token more than the embedding's rows: the image placeholder of the multimodal Gemma 3 models.
    tokenizerSize: 262_145
  }
];

describe.each(REAL_CONFIGS)("$id's real config and tokenizer (data/models; no weights here)", (real) => {
  const dir = `data/models/${real.id}`;

  it("describes the model transformers builds from it", async () => {
    const {describeModel} = await import("../src/runtime/describe.js");
    const {folderSource} = await import("../src/hub/node.js");
    const {counts, moduleTree, weightFiles} = await describeModel(folderSource(real.id, dir));
    expect(weightFiles).toBeUndefined();
    expect(counts.total).toBe(real.parameters);
    expect(counts.embedding).toBe(real.embedding);
    expect(counts.layers[0]).toMatchObject(real.layer0);
    expect(moduleTree.split("\n")).toEqual(expect.arrayContaining(real.tree));
  });

  it("tokenizes as Python's tokenizers does on the same files", async () => {
    const {Tokenizer} = await import("../src/tokenizer.js");
    const read = (file: string) => JSON.parse(readFileSync(`${dir}/${file}`, "utf8"));
    const tok = Tokenizer.fromJson(read("tokenizer.json"), read("tokenizer_config.json"));
    for (const [text, ids] of real.encodes) expect(tok.encode(text).ids, text).toEqual(ids);
    expect(tok.decode(real.helloWorld)).toBe("Hello world");
    expect(tok.vocabSize).toBe(real.tokenizerSize);
    expect([tok.bosTokenId, tok.eosTokenId]).toEqual(real.bosEos);
  });
});
