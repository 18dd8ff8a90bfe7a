/**
 * Qwen3 (`Qwen3ForCausalLM`): a Llama with an RMSNorm over each head of the queries and of the keys, before
 * the rotary embedding, and an explicit `head_dim` (heads × head_dim may differ from the hidden size: Qwen3-0.6B
 * has 16 × 128 = 2048 for d = 1024). Built by `llama.ts`'s decoder:
 *
 *   q = rope(q_norm(q_proj(x) viewed [T, heads, head_dim]))     the hook `self_attn.q_norm.output` is [1, T, heads, head_dim]
 *   k = rope(k_norm(k_proj(x) viewed [T, kv_heads, head_dim]))
 *
 * Biases follow `attention_bias` (false in every released Qwen3); sliding windows are read as Qwen2's.
 */
import {type LlamaConfig, llamaShaped, readLlamaConfig} from "./llama.js";
import {llamaRoles} from "./roles.js";
import {qwenSlidingWindows} from "./qwen2.js";
import type {Family} from "./types.js";

export const qwen3: Family<LlamaConfig> = {
  modelTypes: ["qwen3"],
  roles: llamaRoles,
  normalize: (raw, file) =>
    readLlamaConfig(raw, file, {classPrefix: "Qwen3", qkNorm: true, slidingWindows: qwenSlidingWindows(raw, file)}),
  architecture: llamaShaped
};
