/**
 * The model's module tree, read from the PyTorch print (`model.moduleTree()`), with the parameters each
 * module holds: the data behind a collapsible tree.
 */
import type {Parameter} from "../arch/index.js";

export interface ModuleNode {
  /** The attribute name, e.g. "mlp", or "0-29" for a run of repeated layers; "" for the root. */
  name: string;
  /** What PyTorch prints after the name: "LlamaMLP", "Linear(in_features=576, out_features=1536, bias=False)". */
  type: string;
  /** The module paths this node stands for: one, or one per repeated layer ("model.layers.0", …). */
  paths: string[];
  /** Parameters inside it (all repeats together). */
  parameters: number;
  children: ModuleNode[];
}

/** Parses a PyTorch module print into a tree and counts the parameters under each node. */
export function parseModuleTree(text: string, parameters: readonly Parameter[] = []): ModuleNode {
  const root: ModuleNode = {name: "", type: "", paths: [""], parameters: 0, children: []};
  const stack: ModuleNode[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line) continue;
    if (line === ")") {
      stack.pop();
      continue;
    }
    const m = /^(?:\(([^)]+)\): )?(.*)$/.exec(line)!;
    const [, name = "", rest] = m;
    const opens = rest.endsWith("(");
    const type = opens ? rest.slice(0, -1) : rest;
    const parent = stack[stack.length - 1];
    let node: ModuleNode;
    if (!parent) {
      node = root;
      root.type = type;
    } else {
      const indices = /^(\d+)-(\d+)$/.exec(name);
      const names = indices
        ? Array.from({length: Number(indices[2]) - Number(indices[1]) + 1}, (_, i) => String(Number(indices[1]) + i))
        : [name];
      const paths = parent.paths.flatMap((p) => names.map((n) => (p ? `${p}.${n}` : n)));
      node = {name, type, paths, parameters: 0, children: []};
      parent.children.push(node);
    }
    if (opens) stack.push(node);
  }
  const count = (node: ModuleNode): number => {
    node.children.forEach(count);
    node.parameters = parameters
      .filter((p) => node.paths.some((path) => path === "" || p.name.startsWith(`${path}.`)))
      .reduce((sum, p) => sum + p.numel, 0);
    return node.parameters;
  };
  count(root);
  return root;
}

/** 134515008 → "134.5M", 9216 → "9.2K", 64 → "64". */
export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}
