/**
 * Printing a module tree the way PyTorch's `print(model)` does, including its folding of repeated layers:
 * `(0-29): 30 x LlamaDecoderLayer(`.
 */
export interface Module {
  type: string;
  /** What `extra_repr()` returns, e.g. `in_features=576, out_features=576, bias=False`. */
  extra?: string;
  children?: [string, Module][];
  /** A ModuleList: equal consecutive children are folded. */
  list?: boolean;
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

export const linearModule = (inFeatures: number, outFeatures: number, bias: boolean): Module => ({
  type: "Linear",
  extra: `in_features=${inFeatures}, out_features=${outFeatures}, bias=${bias ? "True" : "False"}`
});

export const embeddingModule = (count: number, dim: number): Module => ({type: "Embedding", extra: `${count}, ${dim}`});

/** `nn.LayerNorm` as PyTorch ≥ 2.1 prints it (with its `bias=True`). */
export const layerNormModule = (dim: number, eps: number): Module => ({
  type: "LayerNorm",
  extra: `(${dim},), eps=${pyFloat(eps)}, elementwise_affine=True, bias=True`
});

/** `nn.Dropout(p)`. */
export const dropoutModule = (p: unknown): Module => ({
  type: "Dropout",
  extra: `p=${pyFloat(Number(p ?? 0.1))}, inplace=False`
});
