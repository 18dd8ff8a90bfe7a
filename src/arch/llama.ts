/**
 * Llama (Touvron et al., 2023) — and SmolLM2, which is a Llama — as Hugging Face's `LlamaForCausalLM`
 * computes it, written as an ONNX graph.
 *
 *   h₀ = embed_tokens[ids]
 *   for each decoder layer:
 *     x = input_layernorm(h)                     RMSNorm
 *     q, k, v = q_proj(x), k_proj(x), v_proj(x)  grouped-query: fewer key/value heads than query heads
 *     q, k = rope(q), rope(k)                    rotary embeddings, "rotate half" layout
 *     h = h + o_proj(softmax(q kᵀ / √D + causal mask) v)
 *     y = post_attention_layernorm(h)
 *     h = h + down_proj(silu(gate_proj(y)) * up_proj(y))
 *   logits = lm_head(norm(h))                    lm_head tied to embed_tokens when tie_word_embeddings
 *
 * Checkpoint facts: Linear weights are stored `[out, in]` and are transposed once, at load, for `x · W`.
 * SmolLM2 is stored in bfloat16; the engine computes in float32.
 */
import {GraphBuilder} from "../graph/onnx.js";
import {finishDecoder, hookSite} from "../graph/hooks.js";
import {appendCache, attention, decoderInputs, linear, mergeHeads, rmsNorm, silu, splitHeads, tiedHead} from "../graph/layers.js";
import type {ModelConfig} from "./config.js";
import {type Module, embeddingModule, linearModule, printModule, pyFloat} from "./module-tree.js";
import {type Architecture, type GraphOptions, type Parameter, type Roles, LOGITS, parameter} from "./types.js";

export function llama(config: ModelConfig): Architecture {
  const {numLayers: L, hiddenSize: d, numHeads: H, numKeyValueHeads: KV, headDim: D, intermediateSize: ff, vocabSize: V} = config;
  const layer = (i: number) => `model.layers.${i}`;

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
        `${l}.self_attn.k_proj.output`,
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

  /** cos and sin of every position × frequency, `[maxPositions, D]`, computed in float64 as the reference does. */
  function rotaryTables(): {cos: Float32Array; sin: Float32Array} {
    const positions = config.maxPositions;
    const cos = new Float32Array(positions * D);
    const sin = new Float32Array(positions * D);
    const half = D / 2;
    for (let t = 0; t < positions; t++) {
      for (let j = 0; j < half; j++) {
        const angle = t / Math.pow(config.ropeTheta!, (2 * j) / D);
        cos[t * D + j] = cos[t * D + j + half] = Math.cos(angle);
        sin[t * D + j] = sin[t * D + j + half] = Math.sin(angle);
      }
    }
    return {cos, sin};
  }

  /** self_attn's output is o_proj's, mlp's is down_proj's: one tensor, fetched once, under both names. */
  function aliasOf(path: string): string | undefined {
    if (path.endsWith(".self_attn.output")) return path.replace(/output$/, "o_proj.output");
    if (path.endsWith(".mlp.output")) return path.replace(/output$/, "down_proj.output");
    return undefined;
  }

  function buildGraph(weight: (name: string) => Float32Array, options: GraphOptions = {}) {
    const g = new GraphBuilder();
    const hook = hookSite(g, {all: hookPoints(), aliasOf}, options);
    const shapeOf = new Map(parameters().map((p) => [p.name, p.shape]));
    const w = (name: string) => g.weight(name, weight(name), shapeOf.get(name)!);
    /** A Linear layer's weight, transposed from `[out, in]` to `[in, out]`. */
    const wT = (name: string) => {
      const [rows, cols] = shapeOf.get(name)!;
      return g.weight(name, transpose(weight(name), rows, cols), [cols, rows]);
    };

    const {ids, caches, pos, mask} = decoderInputs(g, {layers: L, kvHeads: KV, headDim: D});
    const tables = rotaryTables();
    const cos = g.op("Gather", [g.weight("rotary_emb.cos", tables.cos, [config.maxPositions, D]), pos.query], {axis: 0});
    const sin = g.op("Gather", [g.weight("rotary_emb.sin", tables.sin, [config.maxPositions, D]), pos.query], {axis: 0});
    /**
     * `x·cos + rotate_half(x)·sin`, where rotate_half([a, b]) = [-b, a] is a product with a signed permutation
     * matrix: one MatMul (exact: each output sums one nonzero term) instead of Split, Neg and Concat.
     */
    const rotateHalf = g.weight("rotary_emb.rotate_half", rotateHalfMatrix(D), [D, D]);
    const rope = (x: string) => g.op("Add", [g.op("Mul", [x, cos]), g.op("Mul", [g.op("MatMul", [x, rotateHalf]), sin])]);

    const embed = w("model.embed_tokens.weight");
    let h = hook("model.embed_tokens.output", g.op("Gather", [embed, ids], {axis: 0}));
    const layerOutputs: string[] = [];

    for (let i = 0; i < L; i++) {
      const l = layer(i);
      const x = hook(`${l}.input_layernorm.output`, rmsNorm(g, h, w(`${l}.input_layernorm.weight`), config.normEps));
      const q = hook(`${l}.self_attn.q_proj.output`, linear(g, x, wT(`${l}.self_attn.q_proj.weight`)));
      const k = hook(`${l}.self_attn.k_proj.output`, linear(g, x, wT(`${l}.self_attn.k_proj.weight`)));
      const v = hook(`${l}.self_attn.v_proj.output`, linear(g, x, wT(`${l}.self_attn.v_proj.weight`)));
      const keys = appendCache(g, caches[i].pastKey, rope(splitHeads(g, k, KV, D)), caches[i].presentKey);
      const values = appendCache(g, caches[i].pastValue, splitHeads(g, v, KV, D), caches[i].presentValue);
      g.output(caches[i].presentKey, keys);
      g.output(caches[i].presentValue, values);
      const {weights, context} = attention(
        g,
        rope(splitHeads(g, q, H, D)),
        keys,
        values,
        mask,
        {heads: H, kvHeads: KV, headDim: D},
        `${l}.self_attn.attn_weights`
      );
      hook(`${l}.self_attn.attn_weights`, weights); // named by its path already: exposed without a copy
      const merged = hook(`${l}.self_attn.o_proj.input`, mergeHeads(g, context, H * D));
      const attnOut = hook(`${l}.self_attn.o_proj.output`, linear(g, merged, wT(`${l}.self_attn.o_proj.weight`)));
      h = g.op("Add", [h, attnOut]);

      const y = hook(`${l}.post_attention_layernorm.output`, rmsNorm(g, h, w(`${l}.post_attention_layernorm.weight`), config.normEps));
      const gate = hook(`${l}.mlp.gate_proj.output`, linear(g, y, wT(`${l}.mlp.gate_proj.weight`)));
      const act = hook(`${l}.mlp.act_fn.output`, silu(g, gate));
      const up = hook(`${l}.mlp.up_proj.output`, linear(g, y, wT(`${l}.mlp.up_proj.weight`)));
      const down = hook(`${l}.mlp.down_proj.output`, linear(g, g.op("Mul", [act, up]), wT(`${l}.mlp.down_proj.weight`)));
      h = hook(`${l}.output`, g.op("Add", [h, down]));
      layerOutputs.push(h);
    }

    const normWeight = w("model.norm.weight");
    const head = config.tieWordEmbeddings ? embed : w("lm_head.weight");
    finishDecoder(g, hook, {
      normPath: "model.norm",
      norm: (x) => rmsNorm(g, x, normWeight, config.normEps),
      unembed: (x) => tiedHead(g, x, head, d, V)
    }, h, layerOutputs);
    return g.build(config.architecture);
  }

  function moduleTree(): string {
    const norm: Module = {type: "LlamaRMSNorm", extra: `(${d},), eps=${pyFloat(config.normEps)}`};
    const decoderLayer: Module = {
      type: "LlamaDecoderLayer",
      children: [
        ["self_attn", {type: "LlamaAttention", children: [
          ["q_proj", linearModule(d, H * D, false)],
          ["k_proj", linearModule(d, KV * D, false)],
          ["v_proj", linearModule(d, KV * D, false)],
          ["o_proj", linearModule(H * D, d, false)]
        ]}],
        ["mlp", {type: "LlamaMLP", children: [
          ["gate_proj", linearModule(d, ff, false)],
          ["up_proj", linearModule(d, ff, false)],
          ["down_proj", linearModule(ff, d, false)],
          ["act_fn", {type: "SiLU"}]
        ]}],
        ["input_layernorm", norm],
        ["post_attention_layernorm", norm]
      ]
    };
    return printModule({
      type: config.architecture,
      children: [
        ["model", {type: "LlamaModel", children: [
          ["embed_tokens", embeddingModule(V, d)],
          ["layers", {type: "ModuleList", list: true, children: Array.from({length: L}, (_, i) => [String(i), decoderLayer])}],
          ["norm", norm],
          ["rotary_emb", {type: "LlamaRotaryEmbedding"}]
        ]}],
        ["lm_head", linearModule(d, V, false)]
      ]
    });
  }

  const roles: Roles = {
    layer,
    resid: (i) => `${layer(i)}.output`,
    attn: (i) => `${layer(i)}.self_attn.output`,
    mlp: (i) => `${layer(i)}.mlp.output`,
    heads: (i) => `${layer(i)}.self_attn.o_proj.input`,
    attnWeights: (i) => `${layer(i)}.self_attn.attn_weights`,
    mlpIn: (i) => `${layer(i)}.mlp.gate_proj`,
    finalNorm: "model.norm",
    unembedding: "lm_head"
  };

  return {
    config,
    roles,
    parameters,
    hookPoints,
    moduleTree,
    buildGraph,
    aliasOf,
    checkpointNames: (name) => [name],
    isBuffer: (name) => name.endsWith("rotary_emb.inv_freq")
  };
}

/** R with `x·R = rotate_half(x)`: column j < D/2 takes -x[j + D/2], column j ≥ D/2 takes x[j - D/2]. */
function rotateHalfMatrix(D: number): Float32Array {
  const R = new Float32Array(D * D);
  const half = D / 2;
  for (let j = 0; j < half; j++) {
    R[(j + half) * D + j] = -1;
    R[j * D + (j + half)] = 1;
  }
  return R;
}

/** `[rows, cols]` → `[cols, rows]`, in 32×32 tiles so that reads and writes both stay in cache. */
function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(m.length);
  const B = 32;
  for (let r0 = 0; r0 < rows; r0 += B) {
    const r1 = Math.min(r0 + B, rows);
    for (let c0 = 0; c0 < cols; c0 += B) {
      const c1 = Math.min(c0 + B, cols);
      for (let r = r0; r < r1; r++) {
        const row = r * cols;
        for (let c = c0; c < c1; c++) out[c * rows + r] = m[row + c];
      }
    }
  }
  return out;
}
