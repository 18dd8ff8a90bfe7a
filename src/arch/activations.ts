/**
 * The activation functions config.json names (`hidden_act`, `activation_function`, `hidden_activation`): the
 * graph op, and the module transformers 4.57 builds for it (what `print(model)` shows as `act_fn`/`act`).
 */
import type {GraphBuilder} from "../graph/onnx.js";
import {geluErf, geluTanh, silu} from "../graph/layers.js";
import {WorkbenchError} from "../errors.js";

export interface Activation {
  /** The class transformers 4.57's ACT2CLS maps the name to. */
  module: string;
  graph(g: GraphBuilder, x: string, out?: string): string;
  /** The lean graph's one-kernel contrib op, with the projection's bias folded in where given. */
  fused(g: GraphBuilder, x: string, bias?: string): string;
}

/** SiLU as QuickGelu with α = 1: `x · sigmoid(αx)`. */
const quickGelu = (g: GraphBuilder, x: string) => g.op("com.microsoft.QuickGelu", [x], {alpha: 1.0});
/** The tanh GELU: FastGelu, which also adds a bias. */
const fastGelu = (g: GraphBuilder, x: string, bias?: string) => g.op("com.microsoft.FastGelu", bias ? [x, bias] : [x]);
/** The exact GELU: BiasGelu (with the bias) or Gelu. */
const erfGelu = (g: GraphBuilder, x: string, bias?: string) =>
  bias ? g.op("com.microsoft.BiasGelu", [x, bias]) : g.op("com.microsoft.Gelu", [x]);

const ACTIVATIONS: Record<string, Activation> = {
  silu: {module: "SiLUActivation", graph: silu, fused: quickGelu},
  swish: {module: "SiLUActivation", graph: silu, fused: quickGelu},
  gelu: {module: "GELUActivation", graph: geluErf, fused: erfGelu},
  gelu_new: {module: "NewGELUActivation", graph: geluTanh, fused: fastGelu},
  gelu_pytorch_tanh: {module: "GELUTanh", graph: geluTanh, fused: fastGelu}
};

/** The activation a config names, or an error naming the file, the field and the ones this engine computes. */
export function activation(
  name: string,
  file: string,
  field: string,
  allowed: readonly string[] = Object.keys(ACTIVATIONS)
): Activation {
  const a = allowed.includes(name) ? ACTIVATIONS[name] : undefined;
  if (!a)
    throw new WorkbenchError(
      `${file}: ${field} "${name}" is not supported (supported: ${allowed.map((n) => `"${n}"`).join(", ")})`
    );
  return a;
}
