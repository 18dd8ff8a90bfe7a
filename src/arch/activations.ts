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
}

const ACTIVATIONS: Record<string, Activation> = {
  silu: {module: "SiLUActivation", graph: silu},
  swish: {module: "SiLUActivation", graph: silu},
  gelu: {module: "GELUActivation", graph: geluErf},
  gelu_new: {module: "NewGELUActivation", graph: geluTanh},
  gelu_pytorch_tanh: {module: "GELUTanh", graph: geluTanh}
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
