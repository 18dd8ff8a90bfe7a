/**
 * Gemma 3, text only (`gemma3_text`, `Gemma3ForCausalLM`: gemma-3-270m, gemma-3-1b), as Hugging Face's
 * transformers 4.57 computes it: the decoder of `decoder.ts` with Gemma's switches.
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
 * before post_feedforward_layernorm — the modules' own outputs, as nnsight sees them. transformers 4.57 prints
 * two rotary modules, `rotary_emb` and `rotary_emb_local` (5.x has one).
 */
import {readConfig} from "./config.js";
import {type DecoderConfig, decoderFamily, layerWindows, readDecoderConfig} from "./decoder.js";

export interface Gemma3Config extends DecoderConfig {
  /** The rotary base of the sliding-window layers. */
  ropeLocalTheta: number;
  queryPreAttnScalar: number;
  finalLogitSoftcapping: number | null;
  padTokenId?: number;
}

function normalize(raw: Record<string, unknown>, file: string): Gemma3Config {
  const {c, int, num, optionalNum, optionalId, refuse} = readConfig(raw, file);
  refuse("attention_bias", (v) => v === true);
  refuse("use_bidirectional_attention", (v) => v === true, "is not supported (a causal language model only)");
  const pattern = c.sliding_window_pattern == null ? 6 : int("sliding_window_pattern");
  const slidingWindows = layerWindows(raw, file, int("sliding_window", 4096), (i) => (i + 1) % pattern !== 0);
  return {
    ...readDecoderConfig(raw, file, {
      prefix: "Gemma3",
      activations: ["gelu_pytorch_tanh", "gelu_new"],
      headDim: 256,
      ropeTheta: 1_000_000,
      tiedByDefault: true,
      slidingWindows
    }),
    modelType: "gemma3_text",
    ropeLocalTheta: num("rope_local_base_freq", 10_000),
    queryPreAttnScalar: num("query_pre_attn_scalar", 256),
    finalLogitSoftcapping: optionalNum("final_logit_softcapping") ?? null,
    padTokenId: optionalId("pad_token_id")
  };
}

export const gemma3 = decoderFamily({
  modelTypes: ["gemma3_text"],
  normalize,
  switches: (config: Gemma3Config) => ({
    prefix: "Gemma3",
    modelClass: "Gemma3TextModel",
    qkNorm: "transposed",
    postNorms: true,
    zeroCentredNorms: true,
    scaledEmbedding: {type: "Gemma3TextScaledWordEmbedding", paddingIdx: config.padTokenId},
    rotary: {
      modules: [
        {name: "rotary_emb", base: config.ropeTheta},
        {name: "rotary_emb_local", base: config.ropeLocalTheta}
      ],
      ofLayer: (i) => (config.slidingWindows[i] === null ? 0 : 1)
    },
    attentionScale: 1 / Math.sqrt(config.queryPreAttnScalar),
    logitSoftcap: config.finalLogitSoftcapping,
    buffers: ["embed_tokens.embed_scale"]
  })
});
