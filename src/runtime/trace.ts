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
import {WorkbenchError} from "../errors.js";
import type {Edit, EditOp, Where} from "./edits.js";
import type {Tensor} from "./tensor.js";
import type {Trace, TraceInput, TraceOptions} from "./language-model.js";

const PATH = Symbol("module path");
const EDIT_METHODS: Record<string, EditOp> = {set: "set", add: "add", scale: "scale"};
/** Edits recorded through the proxy: a pick may return one (`m => m.x.output.set(0)`); it is no path to fetch. */
const RECORDED = new WeakSet<object>();

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
          RECORDED.add(edit);
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

/**
 * Refuses what `pick` returned (or the list of paths given) when anything in it is not a path: a pick that
 * returns nothing, a number, a tensor from elsewhere. Without this check such values were skipped silently.
 */
export function checkPicked(picked: unknown, what = "pick returned"): void {
  const visit = (v: unknown, where: string): void => {
    if (pathOf(v) !== undefined || typeof v === "string" || RECORDED.has(v as object)) return;
    if (Array.isArray(v)) return v.forEach((x, i) => visit(x, `${where}[${i}]`));
    const proto = v && typeof v === "object" ? Object.getPrototypeOf(v) : undefined;
    if (proto === Object.prototype || proto === null)
      return Object.entries(v as object).forEach(([k, x]) => visit(x, `${where}.${k}`));
    const shown =
      v === undefined || v === null
        ? String(v)
        : typeof v === "object"
          ? `a ${(v as object).constructor?.name ?? "object"}`
          : `${JSON.stringify(v)} (a ${typeof v})`;
    throw new WorkbenchError(
      `trace: ${where} ${shown}, not a hook path: pick returns paths such as m.model.layers[0].output, or strings, or arrays and objects of them`
    );
  };
  visit(picked, what);
}

/** Every module path in what `pick` returned: a path, a string, or arrays and objects of them. */
export function pathsOf(picked: unknown): string[] {
  const paths: string[] = [];
  const visit = (v: unknown) => {
    const p = pathOf(v);
    if (p !== undefined) paths.push(p);
    else if (typeof v === "string") paths.push(v);
    else if (RECORDED.has(v as object)) return;
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
  if (RECORDED.has(picked as object)) return picked;
  if (Array.isArray(picked)) return picked.map((v) => resolvePicked(v, tensors));
  if (picked && typeof picked === "object") {
    return Object.fromEntries(Object.entries(picked).map(([k, v]) => [k, resolvePicked(v, tensors)]));
  }
  return picked;
}

/**
 * What a trace asks for and what it writes, as `Model.trace` and the page's `WorkerModel.trace` both read
 * them: `pick` (a function of the module root, or a list of paths) run on a root that records the edits made
 * through it, after the edits of `edits` (a list, or a function of the same root). Whatever is not a path is
 * refused by name.
 */
export function recordTrace<T>(
  pick: ((m: any) => T) | string[],
  edits: Edit[] | ((m: any) => Edit[] | void) = []
): {chosen: T; paths: string[]; edits: Edit[]} {
  if (typeof pick !== "function" && !Array.isArray(pick))
    throw new WorkbenchError(
      `trace: the second argument is a function (m => m.model.layers[0].output) or a list of hook paths, got ${pick === null ? "null" : typeof pick}`
    );
  if (Array.isArray(pick)) checkPicked(pick, "hook path");
  const recorded: Edit[] = Array.isArray(edits) ? [...edits] : [];
  const root = PICK_ROOT(recorded);
  if (typeof edits === "function") {
    for (const edit of edits(root) ?? []) if (!recorded.includes(edit)) recorded.push(edit);
  }
  const chosen = typeof pick === "function" ? pick(root) : (Object.fromEntries(pick.map((p) => [p, p])) as T);
  checkPicked(chosen);
  return {chosen, paths: pathsOf(chosen), edits: recorded};
}

/**
 * A model's `trace`, as every model makes its own: `pick` and `edits` are recorded here, `fetch` runs the forward
 * pass over `input` with those paths and edits (in this thread, in the worker, or on NDIF), and each tensor goes
 * where its path stood. `options.positions` slices the tensors of the paths `isActivation` says are hook points,
 * unless `fetch` answers that it sliced them itself (`sliced`).
 */
export function tracer(
  fetch: (
    input: string | number[],
    paths: string[],
    edits: Edit[],
    options: TraceOptions
  ) => Promise<{tensors: Map<string, Tensor>; sliced?: boolean} & TraceInput>,
  isActivation: (path: string) => boolean = () => true
): Trace {
  return (async (input: string | number[], pick: ((m: any) => unknown) | string[], options: TraceOptions = {}) => {
    const recorded = recordTrace(pick, options.edits);
    const {tensors, input_ids, tokens, sliced} = await fetch(input, recorded.paths, recorded.edits, options);
    if (options.positions && !sliced)
      for (const [path, tensor] of tensors)
        if (isActivation(path)) tensors.set(path, slicePositions(tensor, options.positions, path));
    return Object.assign(resolvePicked(recorded.chosen, tensors) as object, {input_ids, tokens});
  }) as Trace;
}

/** The token positions `positions` (negative: from the end) of a hook point's `[1, T, …]` tensor, in that order. */
export function slicePositions(tensor: Tensor, positions: number[], path = "the tensor"): Tensor {
  const [batch, T, ...rest] = tensor.shape;
  if (batch !== 1 || T === undefined)
    throw new WorkbenchError(`${path}: positions select along axis 1 of [1, T, …], but its shape is [${tensor.shape}]`);
  const row = rest.reduce((n, d) => n * d, 1);
  const data = new Float32Array(positions.length * row);
  positions.forEach((p, i) => {
    const t = p < 0 ? T + p : p;
    if (!Number.isInteger(p) || t < 0 || t >= T)
      throw new WorkbenchError(`position ${p} is outside ${path}'s ${T} positions (-${T} to ${T - 1})`);
    data.set(tensor.data.subarray(t * row, (t + 1) * row), i * row);
  });
  return {shape: [1, positions.length, ...rest], data};
}
