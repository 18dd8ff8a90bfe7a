/**
 * Llama (Touvron et al., 2023) — and SmolLM2, which is a Llama — as Hugging Face's `LlamaForCausalLM` computes
 * it: the decoder of `decoder.ts` with every switch off but `attention_bias` (q/k/v/o_proj biases where set).
 *
 *   h₀ = embed_tokens[ids]
 *   for each decoder layer:
 *     x = input_layernorm(h)                     RMSNorm
 *     q, k, v = q_proj(x), k_proj(x), v_proj(x)  grouped-query: fewer key/value heads than query heads
 *     q, k = rope(q), rope(k)                    rotary embeddings, "rotate half" layout
 *     h = h + o_proj(softmax(q kᵀ / √D + mask) v)
 *     y = post_attention_layernorm(h)
 *     h = h + down_proj(silu(gate_proj(y)) * up_proj(y))
 *   logits = lm_head(norm(h))                    lm_head tied to embed_tokens when tie_word_embeddings
 *
 * SmolLM2 is stored in bfloat16; the engine computes in float32.
 */
import {decoderFamily, readDecoderConfig} from "./decoder.js";

export const llama = decoderFamily({
  modelTypes: ["llama"],
  normalize: (raw, file) => readDecoderConfig(raw, file, {prefix: "Llama", activations: ["silu", "swish"]}),
  switches: (config) => ({prefix: "Llama", qkvBias: config.attentionBias, oBias: config.attentionBias})
});
