/**
 * The Llama-style decoder, declared once with switches, as transformers' "modular" files derive Mistral, Qwen2,
 * Qwen3 and Gemma 3 from Llama. A family file reads its config.json and says which switches it turns; everything
 * else — parameters, hook points, `aliasOf`, `print(model)`, the traced graph and the lean decode graph — is read
 * off one declaration here: the module tree (`modules`) and the layer's sublayers in forward order (`sublayers`).
 *
 *   h₀ = embed_tokens[ids]                         · √d where the embedding is scaled (Gemma 3)
 *   for each decoder layer, for each sublayer (self_attn, then mlp):
 *     x = norm(h)                                   RMSNorm; × (1 + w) where norms are zero-centred (Gemma 3)
 *     y = block(x)                                  self_attn: q, k, v (+ bias), per-head q/k norms, rotary (each
 *                                                   layer's base), softmax(q kᵀ · scale + mask) v, o_proj (+ bias);
 *                                                   mlp: down_proj(act(gate_proj(x)) · up_proj(x))
 *     h = h + post_norm(y)                          post-norms where the family has them (Gemma 3), else h + y
 *   logits = lm_head(norm(h))                       tanh(x / c) · c where a softcap c is set (Gemma 3)
 *
 * Checkpoint facts: Linear weights are stored `[out, in]` and are transposed once, at load, for `x · W`.
 */
import {GraphBuilder} from "../graph/onnx.js";
import {finishDecoder, hookSite} from "../graph/hooks.js";
import {
  decodeHead,
  decodeInputs,
  fusedRmsNorm,
  groupQueryAttention,
  normedHeads,
  packHeads,
  packedProjection,
  padHeadRows,
  paddedHead,
  residualStream,
  rotaryTables
} from "../graph/decode.js";
import {
  bindWeights,
  cachedAttention,
  decoderInputs,
  linear,
  rmsNorm,
  rotaryEmbedding,
  slidingWindowMask,
  softcap,
  splitHeads,
  swapHeadsAndTokens,
  tiedHead,
  transpose,
  viewHeads
} from "../graph/layers.js";
import {activation} from "./activations.js";
import {type ModelConfig, checkConfig, readConfig} from "./config.js";
import {
  type Module,
  layerList,
  embeddingModule,
  linearModule,
  parametersOf,
  printModule,
  rmsNormModule
} from "./module-tree.js";
import {llamaRoles} from "./roles.js";
import {type Architecture, type Family, type GraphOptions, LOGITS, blockOutputAliases} from "./types.js";

/** A Llama-shaped config: what every family of this decoder reads from its config.json. */
export interface DecoderConfig extends ModelConfig {
  ropeTheta: number;
  /** config.json's `attention_bias`: biases on q/k/v/o_proj where the family reads it. */
  attentionBias: boolean;
  /** Per layer, the sliding window (a token sees itself and `window − 1` before it), or null for full attention. */
  slidingWindows: (number | null)[];
}

/** How a family's decoder differs from Llama's; every switch is off (Llama's) unless set. */
export interface Switches {
  /** The prefix of every class name `print(model)` shows: "Llama", "Mistral", "Qwen2", "Qwen3", "Gemma3". */
  prefix: string;
  /** The base model's class where it is not `${prefix}Model` (Gemma 3: "Gemma3TextModel"). */
  modelClass?: string;
  /** Biases on q_proj, k_proj, v_proj, and on o_proj. */
  qkvBias?: boolean;
  oBias?: boolean;
  /**
   * Per-head RMSNorms `q_norm`, `k_norm` before the rotary: "heads" on `[1, T, heads, D]` right after each
   * projection, before the transpose (Qwen3); "transposed" on `[1, heads, T, D]` after all three projections
   * (Gemma 3). Their hook points have those shapes, in that order.
   */
  qkNorm?: "heads" | "transposed";
  /** post_attention_layernorm on attention's output, pre_feedforward_layernorm and post_feedforward_layernorm around the MLP (Gemma 3). */
  postNorms?: boolean;
  /** Norm weights stored zero-centred: RMSNorm multiplies by 1 + w, and `init: "random"` starts them at 0 (Gemma). */
  zeroCentredNorms?: boolean;
  /** Embeddings scaled by √d, in a module of this class (Gemma3TextScaledWordEmbedding), `padding_idx` printed. */
  scaledEmbedding?: {type: string; paddingIdx?: number};
  /** The rotary modules (default: one `rotary_emb` at `rope_theta`) and which one layer i uses (Gemma 3's local base). */
  rotary?: {modules: {name: string; base: number}[]; ofLayer: (layer: number) => number};
  /** The attention scale where it is not 1/√D (Gemma 3: `query_pre_attn_scalar^-½`). */
  attentionScale?: number;
  /** tanh soft-capping of the logits (Gemma 3's `final_logit_softcapping`). */
  logitSoftcap?: number | null;
  /** Checkpoint tensors (by name ending) that are buffers besides `rotary_emb.inv_freq`. */
  buffers?: string[];
}

/**
 * The fields every Llama-shaped config.json has, read and checked; what differs (defaults, activations, windows)
 * the family passes in. Fields whose math this engine does not compute are refused by name.
 */
export function readDecoderConfig(
  raw: Record<string, unknown>,
  file: string,
  family: {
    prefix: string;
    /** The activations this family computes, its default first; read from `hidden_activation` if set, else `hidden_act`. */
    activations: readonly string[];
    headDim?: number;
    ropeTheta?: number;
    tiedByDefault?: boolean;
    slidingWindows?: (number | null)[];
  }
): DecoderConfig {
  const {c, int, num, refuse, common, architecture} = readConfig(raw, file);
  const hiddenSize = int("hidden_size");
  const numHeads = int("num_attention_heads");
  const numLayers = int("num_hidden_layers");
  const actField = c.hidden_activation != null ? "hidden_activation" : "hidden_act";
  const act = String(c[actField] ?? family.activations[0]);
  activation(act, file, actField, family.activations);
  refuse("rope_scaling", (v) => v != null);
  refuse("rope_interleaved", (v) => v === true, "is not supported (Hugging Face Llama rotates halves)");
  refuse("mlp_bias", (v) => v === true);
  refuse("partial_rotary_factor", (v) => v != null && v !== 1);
  const config: DecoderConfig = {
    modelType: String(c.model_type),
    architecture: architecture ?? `${family.prefix}ForCausalLM`,
    numLayers,
    numHeads,
    numKeyValueHeads: int("num_key_value_heads", numHeads),
    hiddenSize,
    headDim: c.head_dim == null ? (family.headDim ?? hiddenSize / numHeads) : int("head_dim"),
    intermediateSize: int("intermediate_size"),
    vocabSize: int("vocab_size"),
    maxPositions: int("max_position_embeddings"),
    normEps: num("rms_norm_eps", 1e-6),
    ropeTheta: num("rope_theta", family.ropeTheta ?? 10000),
    tieWordEmbeddings: family.tiedByDefault ? c.tie_word_embeddings !== false : c.tie_word_embeddings === true,
    activation: act,
    ...common,
    attentionBias: c.attention_bias === true,
    slidingWindows: family.slidingWindows ?? Array.from({length: numLayers}, () => null)
  };
  return checkConfig(config, file, {rotary: true});
}

/**
 * Which layers slide, from `layer_types` ("sliding_attention" / "full_attention"), else from `byDefault(i)`;
 * `window` null: none does.
 */
export function layerWindows(
  raw: Record<string, unknown>,
  file: string,
  window: number | null,
  byDefault: (layer: number) => boolean
): (number | null)[] {
  const {c, int, fail} = readConfig(raw, file);
  const layers = int("num_hidden_layers");
  if (window === null) return Array.from({length: layers}, () => null);
  const types = Array.isArray(c.layer_types)
    ? (c.layer_types as unknown[])
    : Array.from({length: layers}, (_, i) => (byDefault(i) ? "sliding_attention" : "full_attention"));
  if (types.length !== layers) fail(`layer_types has ${types.length} entries for ${layers} layers`);
  return types.map((t, i) => {
    if (t !== "sliding_attention" && t !== "full_attention")
      fail(`layer_types[${i}] ${JSON.stringify(t)} is not supported`);
    return t === "sliding_attention" ? window : null;
  });
}

/** A family of this decoder: its model types, how it reads config.json, and its switches for a config. */
export function decoderFamily<C extends DecoderConfig>(family: {
  modelTypes: readonly string[];
  normalize: (raw: Record<string, unknown>, file: string) => C;
  switches: (config: C) => Switches;
}): Family<C> {
  return {
    modelTypes: family.modelTypes,
    roles: llamaRoles,
    normalize: family.normalize,
    architecture: (config) => decoder(config, family.switches(config))
  };
}

/** A sublayer of the residual stream: its norm, its block, and the norm on the block's output where there is one. */
interface Sublayer {
  norm: string;
  block: "self_attn" | "mlp";
  post?: string;
}

/** The architecture of a Llama-shaped config with a family's switches. */
export function decoder(config: DecoderConfig, s: Switches): Architecture {
  const {
    numLayers: L,
    hiddenSize: d,
    numHeads: H,
    numKeyValueHeads: KV,
    headDim: D,
    intermediateSize: ff,
    vocabSize: V
  } = config;
  const eps = config.normEps;
  const layer = llamaRoles.layer;
  const act = activation(config.activation, "config.json", "hidden_act");
  const rotary = s.rotary ?? {modules: [{name: "rotary_emb", base: config.ropeTheta}], ofLayer: () => 0};

  // The declaration: a layer's sublayers in forward order, and the module tree.
  const sublayers: Sublayer[] = [
    {norm: "input_layernorm", block: "self_attn", post: s.postNorms ? "post_attention_layernorm" : undefined},
    s.postNorms
      ? {norm: "pre_feedforward_layernorm", block: "mlp", post: "post_feedforward_layernorm"}
      : {norm: "post_attention_layernorm", block: "mlp"}
  ];
  const layerNorms = [...new Set(sublayers.flatMap((sub) => (sub.post ? [sub.norm, sub.post] : [sub.norm])))];
  const qkNorms = s.qkNorm ? ["q_norm", "k_norm"] : [];

  const rms = (n: number) => rmsNormModule(`${s.prefix}RMSNorm`, n, eps, s.zeroCentredNorms ? "zeros" : undefined);
  const decoderLayer: Module = {
    type: `${s.prefix}DecoderLayer`,
    children: [
      [
        "self_attn",
        {
          type: `${s.prefix}Attention`,
          children: [
            ["q_proj", linearModule(d, H * D, !!s.qkvBias)],
            ["k_proj", linearModule(d, KV * D, !!s.qkvBias)],
            ["v_proj", linearModule(d, KV * D, !!s.qkvBias)],
            ["o_proj", linearModule(H * D, d, !!s.oBias)],
            ...qkNorms.map((n) => [n, rms(D)] as [string, Module])
          ]
        }
      ],
      [
        "mlp",
        {
          type: `${s.prefix}MLP`,
          children: [
            ["gate_proj", linearModule(d, ff, false, "mlp")],
            ["up_proj", linearModule(d, ff, false, "mlp")],
            ["down_proj", linearModule(ff, d, false, "mlp")],
            ["act_fn", {type: act.module}]
          ]
        }
      ],
      ...layerNorms.map((n) => [n, rms(d)] as [string, Module])
    ]
  };
  const embedding = embeddingModule(V, d);
  const padding = s.scaledEmbedding?.paddingIdx;
  const modules: Module = {
    type: config.architecture,
    children: [
      [
        "model",
        {
          type: s.modelClass ?? `${s.prefix}Model`,
          children: [
            [
              "embed_tokens",
              s.scaledEmbedding
                ? {
                    ...embedding,
                    type: s.scaledEmbedding.type,
                    extra: padding === undefined ? embedding.extra : `${embedding.extra}, padding_idx=${padding}`
                  }
                : embedding
            ],
            ["layers", layerList(L, decoderLayer)],
            ["norm", rms(d)],
            ...rotary.modules.map(({name}) => [name, {type: `${s.prefix}RotaryEmbedding`}] as [string, Module])
          ]
        }
      ],
      ["lm_head", {...linearModule(d, V, false, "head"), tied: config.tieWordEmbeddings}]
    ]
  };

  /** A block's hook points in forward order, its own output last. */
  function blockHooks(l: string, block: Sublayer["block"]): string[] {
    const m = `${l}.${block}`;
    if (block === "mlp")
      return ["gate_proj", "act_fn", "up_proj", "down_proj"].map((p) => `${m}.${p}.output`).concat(`${m}.output`);
    const heads = s.qkNorm === "heads";
    const order = ["q_proj", ...(heads ? ["q_norm"] : []), "k_proj", ...(heads ? ["k_norm"] : []), "v_proj"];
    if (s.qkNorm === "transposed") order.push("q_norm", "k_norm");
    return [
      ...order.map((p) => `${m}.${p}.output`),
      `${m}.attn_weights`,
      `${m}.o_proj.input`,
      `${m}.o_proj.output`,
      `${m}.output`
    ];
  }

  function hookPoints(): string[] {
    const hooks = ["model.embed_tokens.output"];
    for (let i = 0; i < L; i++) {
      const l = layer(i);
      for (const sub of sublayers)
        hooks.push(
          `${l}.${sub.norm}.output`,
          ...blockHooks(l, sub.block),
          ...(sub.post ? [`${l}.${sub.post}.output`] : [])
        );
      hooks.push(`${l}.output`);
    }
    return [...hooks, "model.norm.output", LOGITS];
  }

  /** self_attn's output is o_proj's, mlp's is down_proj's: one tensor, fetched once, under both names. */
  const aliasOf = blockOutputAliases({self_attn: "o_proj", mlp: "down_proj"});
  const parameters = () => parametersOf(modules);
  /** Each parameter's shape, for the graphs: both the traced and the lean one read it. */
  const shapeOf = new Map(parameters().map((p) => [p.name, p.shape]));
  const has = (name: string) => shapeOf.has(name);
  const windows = config.slidingWindows;

  /** The parameters of one graph, the norms' `1 + w` made once, at load, where norms are zero-centred. */
  function weightsOf(g: GraphBuilder, weight: (name: string) => Float32Array) {
    const bound = bindWeights(g, weight, (name) => shapeOf.get(name)!);
    const normWeight = (module: string) =>
      s.zeroCentredNorms ? bound.wMap(`${module}.weight`, (v) => v.map((x) => 1 + x)) : bound.w(`${module}.weight`);
    const embed = "model.embed_tokens.weight";
    const embedded = (ids: string) => {
      const rows = g.op("Gather", [bound.w(embed), ids], {axis: 0});
      // √d as a float32, as transformers multiplies a float32 model's embeddings (a bf16 model by bf16(√d)).
      return s.scaledEmbedding ? g.op("Mul", [rows, g.scalar(Math.fround(Math.sqrt(d)))]) : rows;
    };
    /** The unembedding: the embedding's matrix where tied (bound by `embedded` already), else lm_head's. */
    const head = () => (config.tieWordEmbeddings ? embed : bound.w("lm_head.weight"));
    const capped = (logits: string) => (s.logitSoftcap ? softcap(g, logits, s.logitSoftcap) : logits);
    return {...bound, normWeight, embedded, head, capped};
  }

  function buildGraph(weight: (name: string) => Float32Array, options: GraphOptions = {}) {
    const g = new GraphBuilder(options.weights, options.weightsAsInitializers);
    const hook = hookSite(g, {all: hookPoints(), aliasOf}, options);
    const {w, wT, normWeight, embedded, head, capped} = weightsOf(g, weight);
    const project = (x: string, name: string) =>
      linear(g, x, wT(`${name}.weight`), has(`${name}.bias`) ? w(`${name}.bias`) : undefined);
    const norm = (x: string, module: string) => hook(`${module}.output`, rmsNorm(g, x, normWeight(module), eps));
    const {ids, pos, mask} = decoderInputs(g, {layers: L, kvHeads: KV, headDim: D});
    const maxPositions = config.maxPositions;
    const ropes = rotary.modules.map(({name, base}) => rotaryEmbedding(g, pos, {maxPositions, headDim: D, base, name}));
    const windowMasks = new Map<number, string>();
    const maskOf = (window: number | null) => {
      if (window === null) return mask;
      if (!windowMasks.has(window)) windowMasks.set(window, slidingWindowMask(g, pos, window, mask));
      return windowMasks.get(window)!;
    };

    function selfAttention(x: string, a: string, i: number): string {
      /** `[1, T, n·D]` → `[1, n, T, D]`, normed per head first where q/k norms come before the transpose (Qwen3). */
      const heads = (t: string, n: number, qk?: string) =>
        s.qkNorm === "heads" && qk
          ? swapHeadsAndTokens(g, norm(viewHeads(g, t, n, D), `${a}.${qk}`))
          : splitHeads(g, t, n, D);
      let query = heads(hook(`${a}.q_proj.output`, project(x, `${a}.q_proj`)), H, "q_norm");
      let key = heads(hook(`${a}.k_proj.output`, project(x, `${a}.k_proj`)), KV, "k_norm");
      const value = heads(hook(`${a}.v_proj.output`, project(x, `${a}.v_proj`)), KV);
      if (s.qkNorm === "transposed") [query, key] = [norm(query, `${a}.q_norm`), norm(key, `${a}.k_norm`)];
      const rope = ropes[rotary.ofLayer(i)];
      const shape = {heads: H, kvHeads: KV, headDim: D, scale: s.attentionScale};
      const names = {weights: `${a}.attn_weights`, merged: `${a}.o_proj.input`};
      const merged = cachedAttention(
        g,
        hook,
        {query: rope(query), key: rope(key), value},
        i,
        maskOf(windows[i]),
        shape,
        names
      );
      return hook(`${a}.o_proj.output`, project(merged, `${a}.o_proj`));
    }
    function mlp(y: string, m: string): string {
      const a = hook(`${m}.act_fn.output`, act.graph(g, hook(`${m}.gate_proj.output`, project(y, `${m}.gate_proj`))));
      const up = hook(`${m}.up_proj.output`, project(y, `${m}.up_proj`));
      return hook(`${m}.down_proj.output`, project(g.op("Mul", [a, up]), `${m}.down_proj`));
    }

    let h = hook("model.embed_tokens.output", embedded(ids));
    const layerOutputs: string[] = [];
    for (let i = 0; i < L; i++) {
      const l = layer(i);
      sublayers.forEach((sub, k) => {
        const x = norm(h, `${l}.${sub.norm}`);
        const y = sub.block === "self_attn" ? selfAttention(x, `${l}.self_attn`, i) : mlp(x, `${l}.mlp`);
        const sum = g.op("Add", [h, sub.post ? norm(y, `${l}.${sub.post}`) : y]);
        h = k === sublayers.length - 1 ? hook(`${l}.output`, sum) : sum;
      });
      layerOutputs.push(h);
    }
    const [finalNorm, unembedding] = [normWeight("model.norm"), head()];
    finishDecoder(
      g,
      hook,
      {
        normPath: "model.norm",
        norm: (x) => rmsNorm(g, x, finalNorm, eps),
        unembed: (x) => capped(tiedHead(g, x, unembedding, d, V))
      },
      h,
      layerOutputs
    );
    return g.build(config.architecture);
  }

  /**
   * The lean decode graph (graph/decode.ts), over the same sublayers: each norm with the residual add before it in
   * one kernel (post-norms in one each), q/k/v in one MatMul (`packHeads`), per-head q/k norms (`normedHeads`),
   * GroupQueryAttention with each layer's rotary tables and window inside (`local_window_size`: the keys a token
   * sees, itself among them, as the WebGPU provider counts — see `localWindowHonoured`), the activation as one
   * contrib kernel, the next token chosen on the GPU.
   */
  function buildDecodeGraph(weight: (name: string) => Float32Array) {
    const g = new GraphBuilder();
    const {w, wT, normWeight, embedded, head, capped} = weightsOf(g, weight);
    const {ids, seqlensK, totalLength} = decodeInputs(g, {layers: L, kvHeads: KV, headDim: D});
    const positions = config.maxPositions;
    const tables = rotary.modules.map(({name, base}) => rotaryTables(g, {positions, headDim: D, base, name}));
    const P = paddedHead(D).P;
    const stream = residualStream(g, embedded(ids), eps);

    function selfAttention(x: string, a: string, i: number): string {
      const parts = (["q_proj", "k_proj", "v_proj"] as const).map((p, k) => ({
        name: `${a}.${p}`,
        heads: [H, KV, KV][k]
      }));
      const transposed = parts.map(({name, heads}) => ({
        data: transpose(weight(`${name}.weight`), heads * D, d),
        heads
      }));
      const bias = s.qkvBias
        ? packHeads(
            parts.map(({name, heads}) => ({data: weight(`${name}.bias`), heads})),
            1,
            D
          )
        : undefined;
      const qkv = packedProjection(g, x, `${a}.qkv_proj`, {weight: packHeads(transposed, d, D), bias, rows: d});
      const norms = () => ({query: normWeight(`${a}.q_norm`), key: normWeight(`${a}.k_norm`)});
      const input = s.qkNorm ? normedHeads(g, qkv, {heads: H, kvHeads: KV, headDim: D, eps}, norms()) : qkv;
      const window = windows[i] ?? undefined;
      const context = groupQueryAttention(
        g,
        input,
        i,
        {seqlensK, totalLength},
        {
          heads: H,
          kvHeads: KV,
          headDim: D,
          scale: s.attentionScale,
          rotary: tables[rotary.ofLayer(i)],
          localWindow: window
        }
      );
      const o = padHeadRows(transpose(weight(`${a}.o_proj.weight`), d, H * D), H, D, d);
      return linear(
        g,
        context,
        g.weight(`${a}.o_proj.weight`, o, [H * P, d]),
        s.oBias ? w(`${a}.o_proj.bias`) : undefined
      );
    }
    function mlp(y: string, m: string): string {
      const gate = act.fused(g, linear(g, y, wT(`${m}.gate_proj.weight`)));
      return linear(g, g.op("Mul", [gate, linear(g, y, wT(`${m}.up_proj.weight`))]), wT(`${m}.down_proj.weight`));
    }

    for (let i = 0; i < L; i++) {
      const l = layer(i);
      for (const sub of sublayers) {
        const x = stream.norm(normWeight(`${l}.${sub.norm}`));
        const y = sub.block === "self_attn" ? selfAttention(x, `${l}.self_attn`, i) : mlp(x, `${l}.mlp`);
        stream.add(sub.post ? fusedRmsNorm(g, y, normWeight(`${l}.${sub.post}`), eps) : y);
      }
    }
    decodeHead(g, stream.norm(normWeight("model.norm")), head(), d, capped);
    return g.build(`${config.architecture} (decode)`);
  }

  return {
    config,
    slidingWindows: windows,
    roles: llamaRoles,
    parameters,
    hookPoints,
    moduleTree: () => printModule(modules),
    buildGraph,
    // Per-head q/k norms need heads that are not padded (GroupQueryAttention's kernels pad to 16k dimensions).
    buildDecodeGraph: s.qkNorm && D % 16 !== 0 ? undefined : buildDecodeGraph,
    aliasOf,
    checkpointNames: (name) => [name],
    isBuffer: (name) => name.endsWith("rotary_emb.inv_freq") || (s.buffers ?? []).some((b) => name.endsWith(b))
  };
}
