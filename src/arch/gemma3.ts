/**
 * Gemma 3, text only (`gemma3_text`, `Gemma3ForCausalLM`: gemma-3-270m, gemma-3-1b), as Hugging Face's
 * transformers 4.57 computes it, written as an ONNX graph.
 *
 *   h₀ = embed_tokens[ids] · √d                        Gemma3TextScaledWordEmbedding: its output hook is already scaled
 *   for each decoder layer:
 *     x = input_layernorm(h)                           every norm is RMSNorm with (1 + w): w is stored zero-centred
 *     q, k, v = q_proj(x), k_proj(x), v_proj(x)        grouped-query (gemma-3-270m: 4 query heads, 1 key/value head)
 *     q, k = q_norm(q), k_norm(k)                      per head, after the transpose: hooks are [1, heads, T, D]
 *     q, k = rope(q), rope(k)                          sliding layers: base rope_local_base_freq; full layers: rope_theta
 *     a = o_proj(softmax(q kᵀ / √query_pre_attn_scalar + mask) v)   mask: causal, and on sliding layers the
 *                                                      window (a token sees itself and sliding_window − 1 before it)
 *     h = h + post_attention_layernorm(a)              the norm is on the block's output, before the residual add
 *     m = down_proj(gelu_tanh(gate_proj(y)) * up_proj(y)),  y = pre_feedforward_layernorm(h)
 *     h = h + post_feedforward_layernorm(m)
 *   logits = lm_head(norm(h))                          tied to embed_tokens; then tanh(x / c) · c where
 *                                                      final_logit_softcapping = c is set
 *
 * Which layers slide comes from `layer_types` (else `sliding_window_pattern`: every n-th layer is full).
 * `attn_logit_softcapping` is read by transformers' Gemma3Attention but never applied: ignored here too.
 * Hook points: `self_attn.output` is o_proj's output before post_attention_layernorm, `mlp.output` down_proj's
 * before post_feedforward_layernorm — the modules' own outputs, as nnsight sees them.
 */
import {GraphBuilder} from "../graph/onnx.js";
import {finishDecoder, hookSite} from "../graph/hooks.js";
import {
  concatColumns,
  decodeInputs,
  fusedRmsNorm,
  groupQueryAttention,
  headColumns,
  headLogits,
  lastPosition,
  nextToken,
  normedHeads,
  residualStream,
  rotaryTables
} from "../graph/decode.js";
import {
  appendCache,
  attention,
  bindWeights,
  decoderInputs,
  linear,
  mergeHeads,
  rmsNorm,
  rotaryEmbedding,
  slidingWindowMask,
  softcap,
  splitHeads,
  tiedHead
} from "../graph/layers.js";
import {activation} from "./activations.js";
import {type ModelConfig, checkConfig, readConfig} from "./config.js";
import {type Module, embeddingModule, linearModule, printModule, pyFloat} from "./module-tree.js";
import {llamaRoles} from "./roles.js";
import {
  type Architecture,
  type Family,
  type GraphOptions,
  type Parameter,
  LOGITS,
  blockOutputAliases,
  parameter
} from "./types.js";

export interface Gemma3Config extends ModelConfig {
  ropeTheta: number;
  /** The rotary base of the sliding-window layers. */
  ropeLocalTheta: number;
  queryPreAttnScalar: number;
  /** Per layer: the sliding window, or null for a full-attention layer. */
  slidingWindows: (number | null)[];
  finalLogitSoftcapping: number | null;
  padTokenId?: number;
}

function normalize(raw: Record<string, unknown>, file: string): Gemma3Config {
  const {c, int, num, optionalNum, optionalId, refuse, fail, common, architecture} = readConfig(raw, file);
  const hiddenSize = int("hidden_size");
  const numHeads = int("num_attention_heads");
  const numLayers = int("num_hidden_layers");
  const actField = c.hidden_activation != null ? "hidden_activation" : "hidden_act";
  const act = String(c[actField] ?? "gelu_pytorch_tanh");
  activation(act, file, actField, ["gelu_pytorch_tanh", "gelu_new"]);
  refuse("rope_scaling", (v) => v != null);
  refuse("attention_bias", (v) => v === true);
  refuse("use_bidirectional_attention", (v) => v === true, "is not supported (a causal language model only)");
  const window = int("sliding_window", 4096);
  const pattern = c.sliding_window_pattern == null ? 6 : int("sliding_window_pattern");
  const types = Array.isArray(c.layer_types)
    ? (c.layer_types as unknown[])
    : Array.from({length: numLayers}, (_, i) => ((i + 1) % pattern ? "sliding_attention" : "full_attention"));
  if (types.length !== numLayers) fail(`layer_types has ${types.length} entries for ${numLayers} layers`);
  const slidingWindows = types.map((t, i) => {
    if (t !== "sliding_attention" && t !== "full_attention")
      fail(`layer_types[${i}] ${JSON.stringify(t)} is not supported`);
    return t === "sliding_attention" ? window : null;
  });
  const config: Gemma3Config = {
    modelType: "gemma3_text",
    architecture: architecture ?? "Gemma3ForCausalLM",
    numLayers,
    numHeads,
    numKeyValueHeads: int("num_key_value_heads", numHeads),
    hiddenSize,
    headDim: int("head_dim", 256),
    intermediateSize: int("intermediate_size"),
    vocabSize: int("vocab_size"),
    maxPositions: int("max_position_embeddings"),
    normEps: num("rms_norm_eps", 1e-6),
    ropeTheta: num("rope_theta", 1_000_000),
    ropeLocalTheta: num("rope_local_base_freq", 10_000),
    queryPreAttnScalar: num("query_pre_attn_scalar", 256),
    slidingWindows,
    finalLogitSoftcapping: optionalNum("final_logit_softcapping") ?? null,
    padTokenId: optionalId("pad_token_id"),
    tieWordEmbeddings: c.tie_word_embeddings !== false,
    activation: act,
    ...common
  };
  return checkConfig(config, file, {rotary: true});
}

export const gemma3: Family<Gemma3Config> = {
  modelTypes: ["gemma3_text"],
  roles: llamaRoles,
  normalize,
  architecture: gemma3Architecture
};

function gemma3Architecture(config: Gemma3Config): Architecture {
  const {
    numLayers: L,
    hiddenSize: d,
    numHeads: H,
    numKeyValueHeads: KV,
    headDim: D,
    intermediateSize: ff,
    vocabSize: V
  } = config;
  const layer = llamaRoles.layer;
  const act = activation(config.activation, "config.json", "hidden_activation");
  const NORMS = [
    "input_layernorm",
    "post_attention_layernorm",
    "pre_feedforward_layernorm",
    "post_feedforward_layernorm"
  ] as const;

  function parameters(): Parameter[] {
    const p = parameter;
    const list = [p("model.embed_tokens.weight", [V, d], "embedding")];
    for (let i = 0; i < L; i++) {
      const l = layer(i);
      list.push(
        p(`${l}.self_attn.q_proj.weight`, [H * D, d], "attention", i),
        p(`${l}.self_attn.k_proj.weight`, [KV * D, d], "attention", i),
        p(`${l}.self_attn.v_proj.weight`, [KV * D, d], "attention", i),
        p(`${l}.self_attn.o_proj.weight`, [d, H * D], "attention", i),
        p(`${l}.self_attn.q_norm.weight`, [D], "norm", i, "zeros"),
        p(`${l}.self_attn.k_norm.weight`, [D], "norm", i, "zeros"),
        p(`${l}.mlp.gate_proj.weight`, [ff, d], "mlp", i),
        p(`${l}.mlp.up_proj.weight`, [ff, d], "mlp", i),
        p(`${l}.mlp.down_proj.weight`, [d, ff], "mlp", i),
        ...NORMS.map((n) => p(`${l}.${n}.weight`, [d], "norm", i, "zeros"))
      );
    }
    list.push(p("model.norm.weight", [d], "norm", undefined, "zeros"));
    if (!config.tieWordEmbeddings) list.push(p("lm_head.weight", [V, d], "head"));
    return list;
  }

  function hookPoints(): string[] {
    const hooks = ["model.embed_tokens.output"];
    for (let i = 0; i < L; i++) {
      const l = layer(i);
      hooks.push(
        `${l}.input_layernorm.output`,
        `${l}.self_attn.q_proj.output`,
        `${l}.self_attn.k_proj.output`,
        `${l}.self_attn.v_proj.output`,
        `${l}.self_attn.q_norm.output`,
        `${l}.self_attn.k_norm.output`,
        `${l}.self_attn.attn_weights`,
        `${l}.self_attn.o_proj.input`,
        `${l}.self_attn.o_proj.output`,
        `${l}.self_attn.output`,
        `${l}.post_attention_layernorm.output`,
        `${l}.pre_feedforward_layernorm.output`,
        `${l}.mlp.gate_proj.output`,
        `${l}.mlp.act_fn.output`,
        `${l}.mlp.up_proj.output`,
        `${l}.mlp.down_proj.output`,
        `${l}.mlp.output`,
        `${l}.post_feedforward_layernorm.output`,
        `${l}.output`
      );
    }
    hooks.push("model.norm.output", LOGITS);
    return hooks;
  }

  const shapeOf = new Map(parameters().map((p) => [p.name, p.shape]));

  /** self_attn's output is o_proj's, mlp's is down_proj's: one tensor, fetched once, under both names. */
  const aliasOf = blockOutputAliases({self_attn: "o_proj", mlp: "down_proj"});

  function buildGraph(weight: (name: string) => Float32Array, options: GraphOptions = {}) {
    const g = new GraphBuilder();
    const hook = hookSite(g, {all: hookPoints(), aliasOf}, options);
    const {w, wT, wMap} = bindWeights(g, weight, (name) => shapeOf.get(name)!);
    const project = (x: string, name: string) => linear(g, x, wT(`${name}.weight`));
    /** Gemma's RMSNorm: `x / rms(x) · (1 + w)`, the `1 + w` made once, at load. */
    const norm = (x: string, name: string) =>
      rmsNorm(
        g,
        x,
        wMap(`${name}.weight`, (v) => v.map((x) => 1 + x)),
        config.normEps
      );

    const {ids, caches, pos, mask} = decoderInputs(g, {layers: L, kvHeads: KV, headDim: D});
    const ropeGlobal = rotaryEmbedding(g, pos, {
      maxPositions: config.maxPositions,
      headDim: D,
      base: config.ropeTheta,
      name: "rotary_emb"
    });
    const ropeLocal = rotaryEmbedding(g, pos, {
      maxPositions: config.maxPositions,
      headDim: D,
      base: config.ropeLocalTheta,
      name: "rotary_emb_local"
    });
    const windows = [...new Set(config.slidingWindows.filter((x): x is number => x !== null))];
    const windowMask = new Map(windows.map((n) => [n, slidingWindowMask(g, pos, n, mask)]));
    const scale = 1 / Math.sqrt(config.queryPreAttnScalar);

    const embed = w("model.embed_tokens.weight");
    // √d as a float32, as transformers multiplies a float32 model's embeddings (a bf16 model by bf16(√d)).
    const embedScale = g.scalar(Math.fround(Math.sqrt(d)));
    let h = hook("model.embed_tokens.output", g.op("Mul", [g.op("Gather", [embed, ids], {axis: 0}), embedScale]));
    const layerOutputs: string[] = [];

    for (let i = 0; i < L; i++) {
      const l = layer(i);
      const window = config.slidingWindows[i];
      const rope = window === null ? ropeGlobal : ropeLocal;
      const x = hook(`${l}.input_layernorm.output`, norm(h, `${l}.input_layernorm`));
      const q = hook(`${l}.self_attn.q_proj.output`, project(x, `${l}.self_attn.q_proj`));
      const k = hook(`${l}.self_attn.k_proj.output`, project(x, `${l}.self_attn.k_proj`));
      const v = hook(`${l}.self_attn.v_proj.output`, project(x, `${l}.self_attn.v_proj`));
      const qNormed = hook(`${l}.self_attn.q_norm.output`, norm(splitHeads(g, q, H, D), `${l}.self_attn.q_norm`));
      const kNormed = hook(`${l}.self_attn.k_norm.output`, norm(splitHeads(g, k, KV, D), `${l}.self_attn.k_norm`));
      const keys = appendCache(g, caches[i].pastKey, rope(kNormed), caches[i].presentKey);
      const values = appendCache(g, caches[i].pastValue, splitHeads(g, v, KV, D), caches[i].presentValue);
      g.output(caches[i].presentKey, keys);
      g.output(caches[i].presentValue, values);
      const {weights, context} = attention(
        g,
        rope(qNormed),
        keys,
        values,
        window === null ? mask : windowMask.get(window)!,
        {heads: H, kvHeads: KV, headDim: D, scale},
        `${l}.self_attn.attn_weights`
      );
      hook(`${l}.self_attn.attn_weights`, weights); // named by its path already: exposed without a copy
      const merged = hook(`${l}.self_attn.o_proj.input`, mergeHeads(g, context, H * D));
      const attnOut = hook(`${l}.self_attn.o_proj.output`, project(merged, `${l}.self_attn.o_proj`));
      h = g.op("Add", [
        h,
        hook(`${l}.post_attention_layernorm.output`, norm(attnOut, `${l}.post_attention_layernorm`))
      ]);

      const y = hook(`${l}.pre_feedforward_layernorm.output`, norm(h, `${l}.pre_feedforward_layernorm`));
      const gate = hook(`${l}.mlp.gate_proj.output`, project(y, `${l}.mlp.gate_proj`));
      const a = hook(`${l}.mlp.act_fn.output`, act.graph(g, gate));
      const up = hook(`${l}.mlp.up_proj.output`, project(y, `${l}.mlp.up_proj`));
      const down = hook(`${l}.mlp.down_proj.output`, project(g.op("Mul", [a, up]), `${l}.mlp.down_proj`));
      h = hook(
        `${l}.output`,
        g.op("Add", [h, hook(`${l}.post_feedforward_layernorm.output`, norm(down, `${l}.post_feedforward_layernorm`))])
      );
      layerOutputs.push(h);
    }

    const finalNorm = wMap("model.norm.weight", (v) => v.map((x) => 1 + x));
    const head = config.tieWordEmbeddings ? embed : w("lm_head.weight");
    const cap = config.finalLogitSoftcapping;
    finishDecoder(
      g,
      hook,
      {
        normPath: "model.norm",
        norm: (x) => rmsNorm(g, x, finalNorm, config.normEps),
        unembed: (x) => (cap === null ? tiedHead(g, x, head, d, V) : softcap(g, tiedHead(g, x, head, d, V), cap))
      },
      h,
      layerOutputs
    );
    return g.build(config.architecture);
  }

  /** transformers 4.57's print: 5.x has one rotary_emb, 4.57 also rotary_emb_local. */
  function moduleTree(): string {
    const rms = (n: number): Module => ({type: "Gemma3RMSNorm", extra: `(${n},), eps=${pyFloat(config.normEps)}`});
    const decoderLayer: Module = {
      type: "Gemma3DecoderLayer",
      children: [
        [
          "self_attn",
          {
            type: "Gemma3Attention",
            children: [
              ["q_proj", linearModule(d, H * D, false)],
              ["k_proj", linearModule(d, KV * D, false)],
              ["v_proj", linearModule(d, KV * D, false)],
              ["o_proj", linearModule(H * D, d, false)],
              ["q_norm", rms(D)],
              ["k_norm", rms(D)]
            ]
          }
        ],
        [
          "mlp",
          {
            type: "Gemma3MLP",
            children: [
              ["gate_proj", linearModule(d, ff, false)],
              ["up_proj", linearModule(d, ff, false)],
              ["down_proj", linearModule(ff, d, false)],
              ["act_fn", {type: act.module}]
            ]
          }
        ],
        ...NORMS.map((n) => [n, rms(d)] as [string, Module])
      ]
    };
    const embedding = embeddingModule(V, d);
    return printModule({
      type: config.architecture,
      children: [
        [
          "model",
          {
            type: "Gemma3TextModel",
            children: [
              [
                "embed_tokens",
                {
                  type: "Gemma3TextScaledWordEmbedding",
                  extra:
                    config.padTokenId === undefined
                      ? embedding.extra
                      : `${embedding.extra}, padding_idx=${config.padTokenId}`
                }
              ],
              [
                "layers",
                {type: "ModuleList", list: true, children: Array.from({length: L}, (_, i) => [String(i), decoderLayer])}
              ],
              ["norm", rms(d)],
              ["rotary_emb", {type: "Gemma3RotaryEmbedding"}],
              ["rotary_emb_local", {type: "Gemma3RotaryEmbedding"}]
            ]
          }
        ],
        ["lm_head", linearModule(d, V, false)]
      ]
    });
  }

  /**
   * The lean decode graph (graph/decode.ts): the residual adds in the pre-norms (SkipSimplifiedLayerNormalization),
   * the post-norms on the sublayers' outputs in one kernel each, q, k and v in one MatMul split for the per-head
   * q/k norms, GroupQueryAttention with each layer's rotary base and, on sliding layers, its window
   * (`local_window_size`: on onnxruntime's WebGPU provider, the keys a token sees, itself among them — the
   * sliding_window itself; test/lean-decode.test.ts holds the logits to the traced graph's), the GeGLU's tanh GELU as
   * FastGelu, the next token chosen on the GPU. Every norm's `1 + w` is made once, at load. Only for heads of
   * 16k dimensions (Gemma 3's are 256), which GroupQueryAttention takes unpadded and the per-head norms need.
   */
  function buildDecodeGraph(weight: (name: string) => Float32Array) {
    const g = new GraphBuilder();
    const {w, wT, wMap} = bindWeights(g, weight, (name) => shapeOf.get(name)!);
    const onePlus = (name: string) => wMap(`${name}.weight`, (v) => v.map((x) => 1 + x));
    const eps = config.normEps;
    const {ids, seqlensK, totalLength} = decodeInputs(g, {layers: L, kvHeads: KV, headDim: D});
    const positions = config.maxPositions;
    const rotaryGlobal = rotaryTables(g, {positions, headDim: D, base: config.ropeTheta, name: "rotary_emb"});
    const rotaryLocal = rotaryTables(g, {positions, headDim: D, base: config.ropeLocalTheta, name: "rotary_emb_local"});
    const embed = w("model.embed_tokens.weight");
    const embedScale = g.scalar(Math.fround(Math.sqrt(d)));
    const stream = residualStream(g, g.op("Mul", [g.op("Gather", [embed, ids], {axis: 0}), embedScale]), eps);
    for (let i = 0; i < L; i++) {
      const l = layer(i);
      const a = `${l}.self_attn`;
      const window = config.slidingWindows[i];
      const x = stream.norm(onePlus(`${l}.input_layernorm`));
      const qkvWeight = concatColumns(
        (
          [
            ["q_proj", H],
            ["k_proj", KV],
            ["v_proj", KV]
          ] as const
        ).map(([p, heads]) => headColumns(weight(`${a}.${p}.weight`), shapeOf.get(`${a}.${p}.weight`)!, heads, D))
      );
      const qkv = g.op("MatMul", [x, g.weight(`${a}.qkv_proj.weight`, qkvWeight, [d, (H + 2 * KV) * D])]);
      const norms = {query: onePlus(`${a}.q_norm`), key: onePlus(`${a}.k_norm`)};
      const heads = normedHeads(g, qkv, {heads: H, kvHeads: KV, headDim: D, eps}, norms);
      const context = groupQueryAttention(
        g,
        heads,
        i,
        {seqlensK, totalLength},
        {
          heads: H,
          kvHeads: KV,
          headDim: D,
          scale: 1 / Math.sqrt(config.queryPreAttnScalar),
          rotary: window === null ? rotaryGlobal : rotaryLocal,
          localWindow: window === null ? undefined : window
        }
      );
      const attnOut = g.op("MatMul", [context, wT(`${a}.o_proj.weight`)]);
      stream.add(fusedRmsNorm(g, attnOut, onePlus(`${l}.post_attention_layernorm`), eps));
      const y = stream.norm(onePlus(`${l}.pre_feedforward_layernorm`));
      const gate = g.op("com.microsoft.FastGelu", [g.op("MatMul", [y, wT(`${l}.mlp.gate_proj.weight`)])]);
      const up = g.op("MatMul", [y, wT(`${l}.mlp.up_proj.weight`)]);
      const down = g.op("MatMul", [g.op("Mul", [gate, up]), wT(`${l}.mlp.down_proj.weight`)]);
      stream.add(fusedRmsNorm(g, down, onePlus(`${l}.post_feedforward_layernorm`), eps));
    }
    const final = lastPosition(g, stream.norm(onePlus("model.norm")));
    const logits = headLogits(g, final, config.tieWordEmbeddings ? embed : w("lm_head.weight"), d);
    const cap = config.finalLogitSoftcapping;
    nextToken(g, cap === null ? logits : softcap(g, logits, cap));
    return g.build(`${config.architecture} (decode)`);
  }

  return {
    config,
    slidingWindows: config.slidingWindows,
    roles: llamaRoles,
    parameters,
    hookPoints,
    moduleTree,
    buildGraph,
    buildDecodeGraph: D % 16 === 0 ? buildDecodeGraph : undefined,
    aliasOf,
    checkpointNames: (name) => [name],
    isBuffer: (name) => name.endsWith("rotary_emb.inv_freq") || name.endsWith("embed_tokens.embed_scale")
  };
}
