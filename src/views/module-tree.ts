/**
 * The module tree as nested HTML `<details>`: click a module to open it. Each line shows the attribute name,
 * what PyTorch prints for it, and the parameters inside.
 */
import {formatCount, type ModuleNode} from "../analysis/modules.js";

export interface ModuleTreeOptions {
  /** How many levels start open (default 2: the model and its top modules). */
  open?: number;
  /** A module path to open down to and mark, e.g. "model.layers.10.mlp.gate_proj". */
  highlight?: string;
}

export function moduleTree(root: ModuleNode, {open = 2, highlight}: ModuleTreeOptions = {}): HTMLElement {
  const container = document.createElement("div");
  container.className = "lmw-module-tree";
  container.append(node(root, 0));
  return container;

  function line(n: ModuleNode): HTMLElement {
    const span = document.createElement("span");
    const name = document.createElement("code");
    name.textContent = n.name ? `(${n.name})` : n.type;
    span.append(name);
    if (n.name) span.append(` ${n.type}`);
    const count = document.createElement("small");
    count.style.color = "var(--theme-foreground-muted, #777)";
    count.textContent = n.parameters
      ? `  · ${formatCount(n.parameters)} parameters${n.paths.length > 1 ? ` (${n.paths.length} layers together)` : ""}`
      : "";
    span.append(count);
    if (highlight && n.paths.includes(highlight)) span.style.background = "var(--theme-foreground-faintest, #ffe9a8)";
    return span;
  }

  function node(n: ModuleNode, depth: number): HTMLElement {
    if (n.children.length === 0) {
      const leaf = document.createElement("div");
      leaf.style.paddingLeft = "1.1em";
      leaf.append(line(n));
      return leaf;
    }
    const details = document.createElement("details");
    details.open =
      depth < open || (highlight !== undefined && n.paths.some((p) => p === "" || highlight.startsWith(`${p}.`)));
    const summary = document.createElement("summary");
    summary.append(line(n));
    details.append(summary);
    const children = document.createElement("div");
    children.style.paddingLeft = "1.1em";
    children.style.borderLeft = "1px solid var(--theme-foreground-faintest, #ddd)";
    for (const child of n.children) children.append(node(child, depth + 1));
    details.append(children);
    return details;
  }
}
