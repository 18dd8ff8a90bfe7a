/**
 * Llama (Touvron et al., 2023) — and SmolLM2, which is a Llama — as Hugging Face's `LlamaForCausalLM`
 * computes it, written as an ONNX graph. The checkpoints built the same way with a few switches (Mistral's
 * sliding window; Qwen2's q/k/v biases; Qwen3's per-head q/k norms: `qwen2.ts`, `qwen3.ts`) are built here too,
 * as transformers' own modular files derive them from Llama's.
 *
 *   h₀ = embed_tokens[ids]
 *   for each decoder layer:
 *     x = input_layernorm(h)                     RMSNorm
 *     q, k, v = q_proj(x), k_proj(x), v_proj(x)  grouped-query: fewer key/value heads than query heads; + bias (Qwen2)
 *     q, k = q_norm(q), k_norm(k)                Qwen3 only: RMSNorm over each head's D dimensions
 *     q, k = rope(q), rope(k)                    rotary embeddings, "rotate half" layout
 *     h = h + o_proj(softmax(q kᵀ / √D + mask) v)  mask: causal; also a sliding window where a layer has one
 *     y = post_attention_layernorm(h)
 *     h = h + down_proj(silu(gate_proj(y)) * up_proj(y))
 *   logits = lm_head(norm(h))                    lm_head tied to embed_tokens when tie_word_embeddings
 *
 * Checkpoint facts: Linear weights are stored `[out, in]` and are transposed once, at load, for `x · W`.
 * SmolLM2 and Qwen3 are stored in bfloat16; the engine computes in float32.
 */
import {GraphBuilder} from "../graph/onnx.js";
import {finishDecoder, hookSite} from "../graph/hooks.js";
import {
  concatColumns,
  decodeInputs,
  groupQueryAttention,
  headColumns,
  headLogits,
  lastPosition,
  nextToken,
  normedHeads,
  padHeadColumns,
  padHeadRows,
  paddedHead,
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
  splitHeads,
  swapHeadsAndTokens,
  tiedHead,
  transpose,
  viewHeads
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

/** A Llama-shaped config: the shared fields, and the switches its family sets. */
export interface LlamaConfig extends ModelConfig {
  ropeTheta: number;
  /** The prefix of every class name `print(model)` shows: "Llama", "Mistral", "Qwen2", "Qwen3". */
  classPrefix: string;
  /** Biases on q_proj, k_proj, v_proj (Qwen2; Llama's and Qwen3's `attention_bias`), and on o_proj. */
  qkvBias: boolean;
  oBias: boolean;
  /** Qwen3: per-head RMSNorms `q_norm` / `k_norm` before the rotary embedding. */
  qkNorm: boolean;
  /** Per layer, the sliding window (a token sees itself and `window − 1` before it), or null for full attention. */
  slidingWindows: (number | null)[];
}

/**
 * The fields every Llama-shaped config.json has, read and checked; what differs (biases, q/k norms, windows)
 * the family passes in. Fields whose math this engine does not compute are refused by name.
 */
export function readLlamaConfig(
  raw: Record<string, unknown>,
  file: string,
  family: Pick<LlamaConfig, "classPrefix"> &
    Partial<Pick<LlamaConfig, "qkvBias" | "oBias" | "qkNorm" | "slidingWindows">>
): LlamaConfig {
  const {c, int, num, refuse, common, architecture} = readConfig(raw, file);
  const hiddenSize = int("hidden_size");
  const numHeads = int("num_attention_heads");
  const numLayers = int("num_hidden_layers");
  const act = String(c.hidden_act ?? "silu");
  activation(act, file, "hidden_act", ["silu", "swish"]);
  refuse("rope_scaling", (v) => v != null);
  refuse("rope_interleaved", (v) => v === true, "is not supported (Hugging Face Llama rotates halves)");
  refuse("mlp_bias", (v) => v === true);
  refuse("partial_rotary_factor", (v) => v != null && v !== 1);
  const config: LlamaConfig = {
    modelType: String(c.model_type),
    architecture: architecture ?? `${family.classPrefix}ForCausalLM`,
    numLayers,
    numHeads,
    numKeyValueHeads: int("num_key_value_heads", numHeads),
    hiddenSize,
    headDim: c.head_dim == null ? hiddenSize / numHeads : int("head_dim"),
    intermediateSize: int("intermediate_size"),
    vocabSize: int("vocab_size"),
    maxPositions: int("max_position_embeddings"),
    normEps: num("rms_norm_eps", 1e-6),
    ropeTheta: num("rope_theta", 10000),
    tieWordEmbeddings: c.tie_word_embeddings === true,
    activation: act,
    ...common,
    classPrefix: family.classPrefix,
    qkvBias: family.qkvBias ?? c.attention_bias === true,
    oBias: family.oBias ?? c.attention_bias === true,
    qkNorm: family.qkNorm ?? false,
    slidingWindows: family.slidingWindows ?? Array.from({length: numLayers}, () => null)
  };
  return checkConfig(config, file, {rotary: true});
}

export const llama: Family<LlamaConfig> = {
  modelTypes: ["llama"],
  roles: llamaRoles,
  normalize: (raw, file) => readLlamaConfig(raw, file, {classPrefix: "Llama"}),
  architecture: llamaShaped
};

/** Mistral: a Llama whose every layer slides over `sliding_window` tokens when the config sets one (v0.1: 4096). */
export const mistral: Family<LlamaConfig> = {
  modelTypes: ["mistral"],
  roles: llamaRoles,
  normalize(raw, file) {
    const {int} = readConfig(raw, file);
    const window = raw.sliding_window == null ? null : int("sliding_window");
    const layers = int("num_hidden_layers");
    // MistralAttention's projections never have biases, whatever attention_bias says.
    return readLlamaConfig(raw, file, {
      classPrefix: "Mistral",
      qkvBias: false,
      oBias: false,
      slidingWindows: Array.from({length: layers}, () => window)
    });
  },
  architecture: llamaShaped
};

/** The architecture of a Llama-shaped config (Llama, Mistral, Qwen2, Qwen3). */
export function llamaShaped(config: LlamaConfig): Architecture {
  const {
    numLayers: L,
    hiddenSize: d,
    numHeads: H,
    numKeyValueHeads: KV,
    headDim: D,
    intermediateSize: ff,
    vocabSize: V
  } = config;
  const {qkvBias, oBias, qkNorm, classPrefix: prefix} = config;
  const layer = llamaRoles.layer;
  const act = activation(config.activation, "config.json", "hidden_act");

  function parameters(): Parameter[] {
    const p = parameter;
    const list = [p("model.embed_tokens.weight", [V, d], "embedding")];
    const projection = (name: string, out: number, inp: number, bias: boolean, i: number) =>
      bias
        ? [p(`${name}.weight`, [out, inp], "attention", i), p(`${name}.bias`, [out], "attention", i)]
        : [p(`${name}.weight`, [out, inp], "attention", i)];
    for (let i = 0; i < L; i++) {
      const l = layer(i);
      list.push(
        ...projection(`${l}.self_attn.q_proj`, H * D, d, qkvBias, i),
        ...projection(`${l}.self_attn.k_proj`, KV * D, d, qkvBias, i),
        ...projection(`${l}.self_attn.v_proj`, KV * D, d, qkvBias, i),
        ...projection(`${l}.self_attn.o_proj`, d, H * D, oBias, i),
        ...(qkNorm
          ? [p(`${l}.self_attn.q_norm.weight`, [D], "norm", i), p(`${l}.self_attn.k_norm.weight`, [D], "norm", i)]
          : []),
        p(`${l}.mlp.gate_proj.weight`, [ff, d], "mlp", i),
        p(`${l}.mlp.up_proj.weight`, [ff, d], "mlp", i),
        p(`${l}.mlp.down_proj.weight`, [d, ff], "mlp", i),
        p(`${l}.input_layernorm.weight`, [d], "norm", i),
        p(`${l}.post_attention_layernorm.weight`, [d], "norm", i)
      );
    }
    list.push(p("model.norm.weight", [d], "norm"));
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
        ...(qkNorm ? [`${l}.self_attn.q_norm.output`] : []),
        `${l}.self_attn.k_proj.output`,
        ...(qkNorm ? [`${l}.self_attn.k_norm.output`] : []),
        `${l}.self_attn.v_proj.output`,
        `${l}.self_attn.attn_weights`,
        `${l}.self_attn.o_proj.input`,
        `${l}.self_attn.o_proj.output`,
        `${l}.self_attn.output`,
        `${l}.post_attention_layernorm.output`,
        `${l}.mlp.gate_proj.output`,
        `${l}.mlp.act_fn.output`,
        `${l}.mlp.up_proj.output`,
        `${l}.mlp.down_proj.output`,
        `${l}.mlp.output`,
        `${l}.output`
      );
    }
    hooks.push("model.norm.output", LOGITS);
    return hooks;
  }

  /** self_attn's output is o_proj's, mlp's is down_proj's: one tensor, fetched once, under both names. */
  const aliasOf = blockOutputAliases({self_attn: "o_proj", mlp: "down_proj"});
  /** Each parameter's shape, for the graphs: both the traced and the lean one read it. */
  const shapeOf = new Map(parameters().map((p) => [p.name, p.shape]));

  function buildGraph(weight: (name: string) => Float32Array, options: GraphOptions = {}) {
    const g = new GraphBuilder();
    const hook = hookSite(g, {all: hookPoints(), aliasOf}, options);
    const {w, wT} = bindWeights(g, weight, (name) => shapeOf.get(name)!);
    /** A Linear module: `x · Wᵀ (+ b)`, the bias where the family has one. */
    const project = (x: string, name: string) =>
      linear(g, x, wT(`${name}.weight`), shapeOf.has(`${name}.bias`) ? w(`${name}.bias`) : undefined);

    const {ids, caches, pos, mask} = decoderInputs(g, {layers: L, kvHeads: KV, headDim: D});
    const rope = rotaryEmbedding(g, pos, {maxPositions: config.maxPositions, headDim: D, base: config.ropeTheta});
    const windowMasks = new Map<number, string>();
    const maskOf = (window: number | null) => {
      if (window === null) return mask;
      if (!windowMasks.has(window)) windowMasks.set(window, slidingWindowMask(g, pos, window, mask));
      return windowMasks.get(window)!;
    };
    /** `[1, T, heads·D]` → `[1, heads, T, D]`; Qwen3 first normalizes each head (its hook sees `[1, T, heads, D]`). */
    const heads = (x: string, count: number, norm: string) =>
      qkNorm
        ? swapHeadsAndTokens(
            g,
            hook(`${norm}.output`, rmsNorm(g, viewHeads(g, x, count, D), w(`${norm}.weight`), config.normEps))
          )
        : splitHeads(g, x, count, D);

    const embed = w("model.embed_tokens.weight");
    let h = hook("model.embed_tokens.output", g.op("Gather", [embed, ids], {axis: 0}));
    const layerOutputs: string[] = [];

    for (let i = 0; i < L; i++) {
      const l = layer(i);
      const x = hook(`${l}.input_layernorm.output`, rmsNorm(g, h, w(`${l}.input_layernorm.weight`), config.normEps));
      const q = hook(`${l}.self_attn.q_proj.output`, project(x, `${l}.self_attn.q_proj`));
      const queries = rope(heads(q, H, `${l}.self_attn.q_norm`));
      const k = hook(`${l}.self_attn.k_proj.output`, project(x, `${l}.self_attn.k_proj`));
      const keys = appendCache(g, caches[i].pastKey, rope(heads(k, KV, `${l}.self_attn.k_norm`)), caches[i].presentKey);
      const v = hook(`${l}.self_attn.v_proj.output`, project(x, `${l}.self_attn.v_proj`));
      const values = appendCache(g, caches[i].pastValue, splitHeads(g, v, KV, D), caches[i].presentValue);
      g.output(caches[i].presentKey, keys);
      g.output(caches[i].presentValue, values);
      const {weights, context} = attention(
        g,
        queries,
        keys,
        values,
        maskOf(config.slidingWindows[i]),
        {heads: H, kvHeads: KV, headDim: D},
        `${l}.self_attn.attn_weights`
      );
      hook(`${l}.self_attn.attn_weights`, weights); // named by its path already: exposed without a copy
      const merged = hook(`${l}.self_attn.o_proj.input`, mergeHeads(g, context, H * D));
      const attnOut = hook(`${l}.self_attn.o_proj.output`, project(merged, `${l}.self_attn.o_proj`));
      h = g.op("Add", [h, attnOut]);

      const y = hook(
        `${l}.post_attention_layernorm.output`,
        rmsNorm(g, h, w(`${l}.post_attention_layernorm.weight`), config.normEps)
      );
      const gate = hook(`${l}.mlp.gate_proj.output`, project(y, `${l}.mlp.gate_proj`));
      const a = hook(`${l}.mlp.act_fn.output`, act.graph(g, gate));
      const up = hook(`${l}.mlp.up_proj.output`, project(y, `${l}.mlp.up_proj`));
      const down = hook(`${l}.mlp.down_proj.output`, project(g.op("Mul", [a, up]), `${l}.mlp.down_proj`));
      h = hook(`${l}.output`, g.op("Add", [h, down]));
      layerOutputs.push(h);
    }

    const normWeight = w("model.norm.weight");
    const head = config.tieWordEmbeddings ? embed : w("lm_head.weight");
    finishDecoder(
      g,
      hook,
      {
        normPath: "model.norm",
        norm: (x) => rmsNorm(g, x, normWeight, config.normEps),
        unembed: (x) => tiedHead(g, x, head, d, V)
      },
      h,
      layerOutputs
    );
    return g.build(config.architecture);
  }

  /**
   * The lean decode graph (graph/decode.ts): fused norms, q/k/v in one MatMul, GroupQueryAttention with the
   * rotary and the cache's append inside, SiLU as QuickGelu(α = 1), the next token chosen on the GPU.
   * Qwen3's per-head q/k norms sit between the projections and the rotary (`normedHeads`: only for heads of 16k
   * dimensions, Qwen3's are 128, where no padding enters the norm's mean). Sliding windows are
   * GroupQueryAttention's `local_window_size`.
   */
  function buildDecodeGraph(weight: (name: string) => Float32Array) {
    const g = new GraphBuilder();
    const {w, wT} = bindWeights(g, weight, (name) => shapeOf.get(name)!);
    const {ids, seqlensK, totalLength} = decodeInputs(g, {layers: L, kvHeads: KV, headDim: D});
    const rotary = rotaryTables(g, {positions: config.maxPositions, headDim: D, base: config.ropeTheta});
    const P = paddedHead(D).P;
    const embed = w("model.embed_tokens.weight");
    const stream = residualStream(g, g.op("Gather", [embed, ids], {axis: 0}), config.normEps);
    const norm = (name: string) => stream.norm(w(name));
    for (let i = 0; i < L; i++) {
      const a = `${layer(i)}.self_attn`;
      const m = `${layer(i)}.mlp`;
      const x = norm(`${layer(i)}.input_layernorm.weight`);
      const projections = [`${a}.q_proj`, `${a}.k_proj`, `${a}.v_proj`];
      const heads = [H, KV, KV];
      const qkvWeight = concatColumns(
        projections.map((p, k) => headColumns(weight(`${p}.weight`), shapeOf.get(`${p}.weight`)!, heads[k], D))
      );
      let qkv = g.op("MatMul", [x, g.weight(`${a}.qkv_proj.weight`, qkvWeight, [d, (H + 2 * KV) * P])]);
      if (qkvBias) {
        const bias = concatColumns(
          projections.map((p, k) => ({
            data: padHeadColumns(weight(`${p}.bias`), 1, heads[k], D),
            rows: 1,
            cols: heads[k] * P
          }))
        );
        qkv = g.op("Add", [qkv, g.weight(`${a}.qkv_proj.bias`, bias, [bias.length])]);
      }
      const lengths = {seqlensK, totalLength};
      const window = config.slidingWindows[i];
      // Qwen3: q and k normed per head before the rotary.
      const shape = {heads: H, kvHeads: KV, headDim: D, eps: config.normEps};
      const norms = () => ({query: w(`${a}.q_norm.weight`), key: w(`${a}.k_norm.weight`)});
      const input = qkNorm ? normedHeads(g, qkv, shape, norms()) : qkv;
      const context = groupQueryAttention(g, input, i, lengths, {
        heads: H,
        kvHeads: KV,
        headDim: D,
        rotary,
        // Mistral's and Qwen2's windows count the token itself, as the WebGPU provider counts local_window_size.
        localWindow: window ?? undefined
      });
      const oWeight = padHeadRows(transpose(weight(`${a}.o_proj.weight`), d, H * D), H, D, d);
      const o = g.weight(`${a}.o_proj.weight`, oWeight, [H * P, d]);
      stream.add(linear(g, context, o, oBias ? w(`${a}.o_proj.bias`) : undefined));
      const y = norm(`${layer(i)}.post_attention_layernorm.weight`);
      const gate = g.op("com.microsoft.QuickGelu", [linear(g, y, wT(`${m}.gate_proj.weight`))], {alpha: 1.0});
      const up = linear(g, y, wT(`${m}.up_proj.weight`));
      stream.add(linear(g, g.op("Mul", [gate, up]), wT(`${m}.down_proj.weight`)));
    }
    const final = lastPosition(g, norm("model.norm.weight"));
    nextToken(g, headLogits(g, final, config.tieWordEmbeddings ? embed : w("lm_head.weight"), d));
    return g.build(`${config.architecture} (decode)`);
  }

  /** What transformers 4.57 prints: the class names carry the family's prefix; act_fn is `SiLUActivation()`. */
  function moduleTree(): string {
    const rms = (n: number): Module => ({type: `${prefix}RMSNorm`, extra: `(${n},), eps=${pyFloat(config.normEps)}`});
    const decoderLayer: Module = {
      type: `${prefix}DecoderLayer`,
      children: [
        [
          "self_attn",
          {
            type: `${prefix}Attention`,
            children: [
              ["q_proj", linearModule(d, H * D, qkvBias)],
              ["k_proj", linearModule(d, KV * D, qkvBias)],
              ["v_proj", linearModule(d, KV * D, qkvBias)],
              ["o_proj", linearModule(H * D, d, oBias)],
              ...(qkNorm
                ? ([
                    ["q_norm", rms(D)],
                    ["k_norm", rms(D)]
                  ] as [string, Module][])
                : [])
            ]
          }
        ],
        [
          "mlp",
          {
            type: `${prefix}MLP`,
            children: [
              ["gate_proj", linearModule(d, ff, false)],
              ["up_proj", linearModule(d, ff, false)],
              ["down_proj", linearModule(ff, d, false)],
              ["act_fn", {type: act.module}]
            ]
          }
        ],
        ["input_layernorm", rms(d)],
        ["post_attention_layernorm", rms(d)]
      ]
    };
    return printModule({
      type: config.architecture,
      children: [
        [
          "model",
          {
            type: `${prefix}Model`,
            children: [
              ["embed_tokens", embeddingModule(V, d)],
              [
                "layers",
                {type: "ModuleList", list: true, children: Array.from({length: L}, (_, i) => [String(i), decoderLayer])}
              ],
              ["norm", rms(d)],
              ["rotary_emb", {type: `${prefix}RotaryEmbedding`}]
            ]
          }
        ],
        ["lm_head", linearModule(d, V, false)]
      ]
    });
  }

  return {
    config,
    slidingWindows: config.slidingWindows,
    roles: llamaRoles,
    parameters,
    hookPoints,
    moduleTree,
    buildGraph,
    // Qwen3's per-head norms need heads that are not padded.
    buildDecodeGraph: qkNorm && D % 16 !== 0 ? undefined : buildDecodeGraph,
    aliasOf,
    checkpointNames: (name) => [name],
    isBuffer: (name) => name.endsWith("rotary_emb.inv_freq")
  };
}
