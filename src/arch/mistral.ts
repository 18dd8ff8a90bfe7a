/**
 * Mistral (`MistralForCausalLM`): a Llama whose every layer slides over `sliding_window` tokens when the config
 * sets one (v0.1: 4096; a token sees itself and `window − 1` before it), and whose projections never have biases,
 * whatever `attention_bias` says (MistralAttention builds them without).
 */
import {readConfig} from "./config.js";
import {decoderFamily, readDecoderConfig} from "./decoder.js";

export const mistral = decoderFamily({
  modelTypes: ["mistral"],
  normalize(raw, file) {
    const {int} = readConfig(raw, file);
    const window = raw.sliding_window == null ? null : int("sliding_window");
    const slidingWindows = Array.from({length: int("num_hidden_layers")}, () => window);
    return readDecoderConfig(raw, file, {prefix: "Mistral", activations: ["silu", "swish"], slidingWindows});
  },
  switches: () => ({prefix: "Mistral"})
});
