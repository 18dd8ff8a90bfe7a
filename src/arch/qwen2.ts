/**
 * Qwen2 and Qwen2.5 (`Qwen2ForCausalLM`): a Llama with biases on the query, key and value projections (not on
 * o_proj), the decoder of `decoder.ts` with that switch. What this file owns is how a Qwen config reads:
 *
 *   q, k, v = x·W_q + b_q, x·W_k + b_k, x·W_v + b_v       (o_proj has no bias)
 *
 * Sliding windows, as transformers 4.57's Qwen2Config reads them: `sliding_window` counts only when
 * `use_sliding_window` is true (otherwise transformers sets it to None: Qwen2.5's configs carry a window that no
 * layer uses); then the layers `layer_types` marks "sliding_attention" slide — by default those from
 * `max_window_layers` on.
 */
import {readConfig} from "./config.js";
import {decoderFamily, layerWindows, readDecoderConfig} from "./decoder.js";

/** A Qwen config.json (Qwen2Config and Qwen3Config read theirs alike): which layers slide, and over how many tokens. */
export function readQwenConfig(raw: Record<string, unknown>, file: string, prefix: string) {
  const {c, int} = readConfig(raw, file);
  const window = c.use_sliding_window === true && c.sliding_window != null ? int("sliding_window") : null;
  const maxWindowLayers = () => (c.max_window_layers == null ? 28 : int("max_window_layers"));
  const slidingWindows = layerWindows(raw, file, window, (i) => i >= maxWindowLayers());
  return readDecoderConfig(raw, file, {prefix, activations: ["silu", "swish"], slidingWindows});
}

export const qwen2 = decoderFamily({
  modelTypes: ["qwen2"],
  normalize: (raw, file) => readQwenConfig(raw, file, "Qwen2"),
  switches: () => ({prefix: "Qwen2", qkvBias: true})
});
