/**
 * Hook points in a graph being built. An architecture names each intermediate tensor by its Hugging Face
 * module path as it builds the forward pass (`hook("model.layers.3.output", h)`); the ones a run asked for
 * become graph outputs, the others stay anonymous so that onnxruntime can fuse across them.
 *
 * Every architecture goes through `hookSite` for this, so that whatever is done at a hook point (exposing it
 * now; writing into it, for interventions) is written once, here, and not in each `src/arch/` file.
 */
import type {GraphBuilder} from "./onnx.js";
import {LOGITS} from "./names.js";

export interface GraphOptions {
  /** The hook points to expose as graph outputs; all of them when omitted. */
  hooks?: string[];
}

/** What an architecture's graph needs to know about its own hook points. */
export interface HookNames {
  /** Every hook point, in forward order. */
  all: string[];
  /** For a hook point that is the very tensor of another (a module whose output is its last layer's), that other. */
  aliasOf(path: string): string | undefined;
}

/**
 * The `hook(path, tensor)` of one graph: returns the tensor to use downstream under that path (the same
 * tensor, renamed to its path when it is exposed).
 */
export function hookSite(g: GraphBuilder, names: HookNames, options: GraphOptions = {}) {
  const wanted = new Set((options.hooks ?? names.all).map((path) => names.aliasOf(path) ?? path));
  return (path: string, tensor: string): string => (wanted.has(path) ? g.output(path, tensor) : tensor);
}

export type Hook = ReturnType<typeof hookSite>;

/** How a decoder turns a residual stream into logits: its final norm, then the unembedding. */
export interface DecoderHead {
  /** The final norm's module path: `model.norm`, `transformer.ln_f`, `gpt_neox.final_layer_norm`. */
  normPath: string;
  /** The final norm, `[1, T, d]` → `[1, T, d]`. */
  norm(x: string): string;
  /** The unembedding, `[1, T, d]` → `[1, T, vocab]` (soft-capping included where the family has it). */
  unembed(x: string): string;
}

/**
 * The end of every decoder graph: the final norm (a hook point) and the logits. `layerOutputs` are the
 * residual stream after each layer, for views that read the model's own head over them (the logit lens).
 */
export function finishDecoder(g: GraphBuilder, hook: Hook, head: DecoderHead, h: string, _layerOutputs: string[]): void {
  const final = hook(`${head.normPath}.output`, head.norm(h));
  g.output(LOGITS, head.unembed(final));
}
