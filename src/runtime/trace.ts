/**
 * The `pick` of `model.trace`, in the spirit of nnsight: `m => m.model.layers[10].output` walks a Proxy that
 * records the module path it was led along. The engine then fetches exactly those paths in one run and puts
 * each tensor where its path stood in what `pick` returned.
 *
 * Writing goes the same way: `m.model.layers[1].mlp.output.set(0)`, `.add(vector, {positions: [3]})`,
 * `.scale(0, {range: [8, 16]})` record an edit (in call order) instead of extending the path; no Hugging Face
 * module is called set, add or scale. The edit applies before anything downstream reads the hook, reads of the
 * same run included.
 */
import type {Edit, EditOp, Where} from "./edits.js";
import type {Tensor} from "./tensor.js";

const PATH = Symbol("module path");
const EDIT_METHODS: Record<string, EditOp> = {set: "set", add: "add", scale: "scale"};

/** A path in the making: every property read extends it; `.set/.add/.scale(value, where)` record an edit at it. */
function pathProxy(parts: string[], edits: Edit[]): any {
  const target = () => {};
  return new Proxy(target, {
    get(_, key) {
      if (key === PATH) return parts.join(".");
      if (typeof key === "symbol") return undefined;
      const op = EDIT_METHODS[key];
      if (op && parts.length) {
        return (value: Edit["value"], where: Where = {}) => {
          const edit: Edit = {hook: parts.join("."), op, value, ...where};
          edits.push(edit);
          return edit;
        };
      }
      return pathProxy([...parts, key], edits);
    }
  });
}

/** The root a pick starts from; edits made through it land in `edits`. */
export const PICK_ROOT = (edits: Edit[] = []) => pathProxy([], edits);

function pathOf(value: unknown): string | undefined {
  return typeof value === "function" ? ((value as any)[PATH] as string | undefined) : undefined;
}

/** Every module path in what `pick` returned: a path, a string, or arrays and objects of them. */
export function pathsOf(picked: unknown): string[] {
  const paths: string[] = [];
  const visit = (v: unknown) => {
    const p = pathOf(v);
    if (p !== undefined) paths.push(p);
    else if (typeof v === "string") paths.push(v);
    else if (Array.isArray(v)) v.forEach(visit);
    else if (v && typeof v === "object") Object.values(v).forEach(visit);
  };
  visit(picked);
  return [...new Set(paths)];
}

/** What `pick` returned, with each path replaced by its tensor. */
export type Picked<T> = T extends string | ((...args: never[]) => unknown)
  ? Tensor
  : T extends object
    ? {[K in keyof T]: Picked<T[K]>}
    : T;

export function resolvePicked(picked: unknown, tensors: Map<string, Tensor>): unknown {
  const p = pathOf(picked) ?? (typeof picked === "string" ? picked : undefined);
  if (p !== undefined) return tensors.get(p);
  if (Array.isArray(picked)) return picked.map((v) => resolvePicked(v, tensors));
  if (picked && typeof picked === "object") {
    return Object.fromEntries(Object.entries(picked).map(([k, v]) => [k, resolvePicked(v, tensors)]));
  }
  return picked;
}
