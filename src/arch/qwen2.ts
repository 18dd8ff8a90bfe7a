/**
 * Qwen2 and Qwen2.5 (`Qwen2ForCausalLM`): a Llama with biases on the query, key and value projections (not on
 * o_proj), built by `llama.ts`'s decoder. What this file owns is how a Qwen config reads:
 *
 *   q, k, v = x·W_q + b_q, x·W_k + b_k, x·W_v + b_v       (o_proj has no bias)
 *
 * Sliding windows, as transformers 4.57's Qwen2Config reads them: `sliding_window` counts only when
 * `use_sliding_window` is true (otherwise transformers sets it to None: Qwen2.5's configs carry a window that no
 * layer uses); then the layers `layer_types` marks "sliding_attention" slide — by default those from
 * `max_window_layers` on.
 */
import {readConfig} from "./config.js";
import {type LlamaConfig, llamaShaped, readLlamaConfig} from "./llama.js";
import {llamaRoles} from "./roles.js";
import type {Family} from "./types.js";

/** Which layers slide, and over how many tokens (Qwen2Config and Qwen3Config read them alike). */
export function qwenSlidingWindows(raw: Record<string, unknown>, file: string): (number | null)[] {
  const {c, int, fail} = readConfig(raw, file);
  const layers = int("num_hidden_layers");
  const window = c.use_sliding_window === true && c.sliding_window != null ? int("sliding_window") : null;
  if (window === null) return Array.from({length: layers}, () => null);
  const maxWindowLayers = c.max_window_layers == null ? 28 : int("max_window_layers");
  const types = Array.isArray(c.layer_types)
    ? (c.layer_types as unknown[])
    : Array.from({length: layers}, (_, i) => (i >= maxWindowLayers ? "sliding_attention" : "full_attention"));
  if (types.length !== layers) fail(`layer_types has ${types.length} entries for ${layers} layers`);
  return types.map((t, i) => {
    if (t !== "sliding_attention" && t !== "full_attention")
      fail(`layer_types[${i}] ${JSON.stringify(t)} is not supported`);
    return t === "sliding_attention" ? window : null;
  });
}

export const qwen2: Family<LlamaConfig> = {
  modelTypes: ["qwen2"],
  roles: llamaRoles,
  normalize: (raw, file) =>
    readLlamaConfig(raw, file, {
      classPrefix: "Qwen2",
      qkvBias: true,
      oBias: false,
      slidingWindows: qwenSlidingWindows(raw, file)
    }),
  architecture: llamaShaped
};
