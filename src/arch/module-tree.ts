/**
 * A model's modules as PyTorch holds them: Hugging Face names, class names, and each module's own parameters with
 * their shapes. A family declares this tree once; `print(model)` (`printModule`, including its folding of repeated
 * layers: `(0-29): 30 x LlamaDecoderLayer(`) and `named_parameters()` (`parametersOf`) are read off it.
 */
import {type Component, type Parameter, parameter} from "./types.js";

export interface Module {
  type: string;
  /** What `extra_repr()` returns, e.g. `in_features=576, out_features=576, bias=False`. */
  extra?: string;
  children?: [string, Module][];
  /** A ModuleList: equal consecutive children are folded; its children's parameters carry their layer index. */
  list?: boolean;
  /** The module's own parameters, in registration order. */
  params?: {name: string; shape: number[]; component: Component; init?: "zeros"}[];
  /** Parameters that are another module's (a tied lm_head): printed, not listed again. */
  tied?: boolean;
}

/** `named_parameters()`: every parameter by its dotted path, in registration order, tied ones listed once. */
export function parametersOf(m: Module, path = "", layer?: number): Parameter[] {
  const out: Parameter[] = [];
  collectParameters(m, path, layer, out);
  return out;
}

/** Into one array, not one per module: a config of 100,000 layers lists its million parameters in a blink. */
function collectParameters(m: Module, path: string, layer: number | undefined, out: Parameter[]): void {
  if (m.tied) return;
  const prefix = path ? `${path}.` : "";
  for (const p of m.params ?? []) out.push(parameter(`${prefix}${p.name}`, p.shape, p.component, layer, p.init));
  for (const [key, child] of m.children ?? [])
    collectParameters(child, `${prefix}${key}`, m.list ? Number(key) : layer, out);
}

export function printModule(m: Module): string {
  const children = m.children ?? [];
  if (children.length === 0) return `${m.type}(${m.extra ?? ""})`;
  const lines = [`${m.type}(`];
  if (m.extra) lines.push(`  ${m.extra}`);
  for (const [key, text] of m.list ? foldRepeats(children) : children.map(([k, c]) => [k, printModule(c)] as const)) {
    lines.push(`  (${key}): ${indent(text)}`);
  }
  lines.push(")");
  return lines.join("\n");
}

function foldRepeats(children: [string, Module][]): [string, string][] {
  const printed = children.map(([key, child]) => [key, printModule(child)] as const);
  const out: [string, string][] = [];
  for (let i = 0; i < printed.length;) {
    let j = i + 1;
    while (j < printed.length && printed[j][1] === printed[i][1]) j++;
    const count = j - i;
    out.push(
      count === 1
        ? [printed[i][0], printed[i][1]]
        : [`${printed[i][0]}-${printed[j - 1][0]}`, `${count} x ${printed[i][1]}`]
    );
    i = j;
  }
  return out;
}

function indent(text: string): string {
  return text.split("\n").join("\n  ");
}

/** A float as Python's `repr` writes it: `0.1`, `0.0`, `1e-05`. */
export function pyFloat(x: number): string {
  if (Number.isInteger(x)) return x.toFixed(1);
  if (x !== 0 && Math.abs(x) < 1e-4) {
    const [mantissa, exponent] = x.toExponential().split("e");
    const sign = exponent.startsWith("-") ? "-" : "+";
    return `${mantissa}e${sign}${exponent.replace(/^[-+]/, "").padStart(2, "0")}`;
  }
  return String(x);
}

/** `nn.Linear`: weight `[out, in]`, and bias `[out]` where it has one. */
export const linearModule = (
  inFeatures: number,
  outFeatures: number,
  bias: boolean,
  component: Component = "attention"
): Module => ({
  type: "Linear",
  extra: `in_features=${inFeatures}, out_features=${outFeatures}, bias=${bias ? "True" : "False"}`,
  params: [
    {name: "weight", shape: [outFeatures, inFeatures], component},
    ...(bias ? [{name: "bias", shape: [outFeatures], component}] : [])
  ]
});

export const embeddingModule = (count: number, dim: number): Module => ({
  type: "Embedding",
  extra: `${count}, ${dim}`,
  params: [{name: "weight", shape: [count, dim], component: "embedding"}]
});

/** The decoder layers, `nn.ModuleList` of `count` copies of `layer` (printed folded: `(0-29): 30 x LlamaDecoderLayer(`). */
export const layerList = (count: number, layer: Module): Module => ({
  type: "ModuleList",
  list: true,
  children: Array.from({length: count}, (_, i) => [`${i}`, layer])
});

/** GPT-2's `Conv1D(nf, nx)`: a Linear whose weight is stored `[in, out]` = `[nx, nf]`, with a bias. */
export const conv1dModule = (nf: number, nx: number, component: Component): Module => ({
  type: "Conv1D",
  extra: `nf=${nf}, nx=${nx}`,
  params: [
    {name: "weight", shape: [nx, nf], component},
    {name: "bias", shape: [nf], component}
  ]
});

/** An RMSNorm of the family's class (`LlamaRMSNorm`); Gemma's weights start at 0 (`zeros`: it multiplies by 1 + w). */
export const rmsNormModule = (type: string, dim: number, eps: number, init?: "zeros"): Module => ({
  type,
  extra: `(${dim},), eps=${pyFloat(eps)}`,
  params: [{name: "weight", shape: [dim], component: "norm", ...(init ? {init} : {})}]
});

/** `nn.LayerNorm` as PyTorch ≥ 2.1 prints it (with its `bias=True`). */
export const layerNormModule = (dim: number, eps: number): Module => ({
  type: "LayerNorm",
  extra: `(${dim},), eps=${pyFloat(eps)}, elementwise_affine=True, bias=True`,
  params: [
    {name: "weight", shape: [dim], component: "norm"},
    {name: "bias", shape: [dim], component: "norm"}
  ]
});

/** `nn.Dropout(p)`. */
export const dropoutModule = (p: unknown): Module => ({
  type: "Dropout",
  extra: `p=${pyFloat(Number(p ?? 0.1))}, inplace=False`
});
