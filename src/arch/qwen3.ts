/**
 * Qwen3 (`Qwen3ForCausalLM`): a Llama with an RMSNorm over each head of the queries and of the keys, before
 * the transpose and the rotary embedding, and an explicit `head_dim` (heads × head_dim may differ from the hidden
 * size: Qwen3-0.6B has 16 × 128 = 2048 for d = 1024). The decoder of `decoder.ts` with `qkNorm: "heads"`:
 *
 *   q = rope(q_norm(q_proj(x) viewed [T, heads, head_dim]))     the hook `self_attn.q_norm.output` is [1, T, heads, head_dim]
 *   k = rope(k_norm(k_proj(x) viewed [T, kv_heads, head_dim]))
 *
 * Biases follow `attention_bias` (false in every released Qwen3); sliding windows are read as Qwen2's. Stored in
 * bfloat16; the engine computes in float32.
 */
import {decoderFamily} from "./decoder.js";
import {readQwenConfig} from "./qwen2.js";

export const qwen3 = decoderFamily({
  modelTypes: ["qwen3"],
  normalize: (raw, file) => readQwenConfig(raw, file, "Qwen3"),
  switches: (config) => ({
    prefix: "Qwen3",
    qkNorm: "heads",
    qkvBias: config.attentionBias,
    oBias: config.attentionBias
  })
});
