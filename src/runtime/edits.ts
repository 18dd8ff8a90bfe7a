/**
 * Edits: writing into a hook point during a run, as nnsight does when a module's `.output` is assigned. An edit
 * sets, adds to or scales the hook's tensor, everywhere or on a selection (token positions, a range of the last
 * axis such as one head's columns, or PyTorch-style indexing), with a number or a tensor that broadcasts against
 * the hook's (a `[d]` vector, or the same hook's whole tensor from another run: patching).
 *
 * The graph only knows each edit's *structure* (hook, operation, which axes select): values and selected indices
 * are inputs, so changing them reuses the session. This file turns `Edit`s into that structure and those inputs.
 */
import type {EditOp, EditSite} from "../graph/hooks.js";
import {editInputs} from "../graph/names.js";
import {WorkbenchError} from "../errors.js";
import type {Tensor} from "./tensor.js";

export type {EditOp} from "../graph/hooks.js";

/** One axis of a selection: all of it (`null`), one index, a slice `{start, stop}` (stop excluded), or a list of indices. */
export type AxisIndex = null | number | {start?: number; stop?: number} | number[];

export interface Edit {
  /** The hook point, by module path (`model.layers.3.output`, `transformer.h.1.attn.c_proj.input`). */
  hook: string;
  op: EditOp;
  /** A number, a vector (broadcast along the last axis), or a tensor that broadcasts against the hook's tensor. */
  value: number | ArrayLike<number> | Tensor;
  /** Token positions (axis 1 of `[1, T, …]`); negative counts from the end. */
  positions?: number[];
  /** `[start, stop)` along the last axis: one head's columns of `o_proj.input` are `[h·D, (h+1)·D)`. */
  range?: [number, number];
  /** PyTorch-style indexing, one entry per axis from the first (batch) axis, or its text: `"[:, 2]"`, `"[:, :, 16:24]"`. */
  index?: AxisIndex[] | string;
}

/** What `.set/.add/.scale` on a path in `trace`'s pick take besides the value. */
export type Where = Pick<Edit, "positions" | "range" | "index">;

/** Past the end of any axis: the open end of a slice. */
const END = 2 ** 53;

/** A feed for the session: float32, int64 or bool values with their shape. */
export interface Feed {
  type: "float32" | "int64" | "bool";
  data: Float32Array | BigInt64Array | Uint8Array;
  dims: number[];
}

interface Prepared {
  /** The hook as the edit named it (errors say it so). */
  hook: string;
  site: EditSite;
  value: Feed;
  /** Intervals `[from, to)` per selected axis, in `site.axes` order. */
  intervals: [number, number][][];
  /** What must lie inside its axis: indices and positions (PyTorch raises IndexError), ranges; slices clamp instead. */
  bounds: Bound[];
}

/** Indices (one index, a list, `positions`) or a `range` selected along `axis` (negative: from the last). */
interface Bound {
  axis: number;
  indices?: number[];
  range?: [number, number];
}

/** Edits as graph structure (`sites`, the session's key) and a way to make their inputs for a run. */
export interface EditPlan {
  sites: EditSite[];
  /** The inputs for a run over the token positions `offset … offset + T - 1` of the whole sequence. */
  feeds(offset?: number): Record<string, Feed>;
  /** The hooks (graph names) whose shapes `check` needs: none when no edit selects by index. */
  checked: string[];
  /**
   * Refuses, as PyTorch's IndexError does, an index, position or range outside its axis; slices clamp and are
   * not refused. Called with the shapes of a run:
   * `shapeOf` a graph hook's shape; `tokens`, where given, the length of the sequence the positions (axis 1)
   * count in when it is not the run's own (a generation's final length).
   */
  check(shapeOf: (hook: string) => number[] | undefined, tokens?: number): void;
}

export function planEdits(edits: Edit[], canonical: (hook: string) => string): EditPlan {
  const prepared = edits.map((edit) => prepare(edit, canonical));
  return {
    sites: prepared.map((p) => p.site),
    checked: [...new Set(prepared.filter((p) => p.site.axes.length > 0).map((p) => p.site.hook))],
    check(shapeOf, tokens) {
      for (const p of prepared) {
        const shape = shapeOf(p.site.hook);
        if (shape) checkBounds(p, shape, tokens);
      }
    },
    feeds(offset = 0) {
      const feeds: Record<string, Feed> = {};
      prepared.forEach((p, k) => {
        const names = editInputs(k);
        feeds[names.value] = p.value;
        p.site.axes.forEach((axis, j) => {
          // A generation step runs positions offset … offset + T - 1: shift the token axis to that window.
          let intervals = p.intervals[j];
          if (offset && axis === 1) {
            if (intervals.some(([from]) => from < 0)) {
              throw new WorkbenchError(
                `edit at ${p.site.hook}: positions during generation must count from the start (no negative positions)`
              );
            }
            intervals = intervals.map(([from, to]) => [
              Math.max(from - offset, 0),
              Math.max(Math.min(to, END) - offset, 0)
            ]);
          }
          feeds[names.from(axis)] = int64(intervals.map((i) => i[0]));
          feeds[names.to(axis)] = int64(intervals.map((i) => i[1]));
        });
      });
      return feeds;
    }
  };
}

function prepare(edit: Edit, canonical: (hook: string) => string): Prepared {
  if (!["set", "add", "scale"].includes(edit.op))
    throw new WorkbenchError(`edit at ${edit.hook}: the operation must be set, add or scale, not ${edit.op}`);
  const byAxis = new Map<number, [number, number][]>();
  const bounds: Bound[] = [];
  const select = (axis: number, intervals: [number, number][], what: string) => {
    if (byAxis.has(axis)) throw new WorkbenchError(`edit at ${edit.hook}: axis ${axis} is selected twice (${what})`);
    // An empty selection still needs one interval for the graph: an empty one.
    byAxis.set(axis, intervals.length ? intervals : [[0, 0]]);
    bounds.push({axis});
  };
  const index = typeof edit.index === "string" ? parseIndex(edit.index, edit.hook) : (edit.index ?? []);
  index.forEach((entry, axis) => {
    if (entry === null) return;
    select(axis, intervalsOf(entry, edit.hook), `index ${describe(entry)}`);
    if (typeof entry === "number" || Array.isArray(entry)) bounds.at(-1)!.indices = [entry].flat();
  });
  if (edit.positions) {
    select(1, intervalsOf(edit.positions, edit.hook), "positions");
    bounds.at(-1)!.indices = edit.positions;
  }
  if (edit.range) {
    const [start, stop] = edit.range;
    if (!Number.isInteger(start) || !Number.isInteger(stop))
      throw new WorkbenchError(`edit at ${edit.hook}: range [${edit.range}] must be two whole numbers`);
    select(-1, [[start, stop]], "range");
    bounds.at(-1)!.range = [start, stop];
  }
  const axes = [...byAxis.keys()].sort((a, b) => (a < 0 ? 1e9 + a : a) - (b < 0 ? 1e9 + b : b));
  return {
    hook: edit.hook,
    site: {hook: canonical(edit.hook), op: edit.op, axes},
    value: valueFeed(edit),
    intervals: axes.map((a) => byAxis.get(a)!),
    bounds
  };
}

/**
 * One edit's selections against its hook's shape, in PyTorch's words: an index `i` must satisfy −size ≤ i < size
 * ("index 99 is out of bounds for dimension 1 with size 3"); a slice `a:b` clamps to the axis and is never an
 * error (`[:, 1:99]` on 3 tokens is positions 1 and 2); a `range` [start, stop) — an interval of the last axis
 * given as numbers, such as one head's columns — must lie inside it. Axis 1 is the token axis, whose size is
 * `tokens` where given.
 */
function checkBounds(p: Prepared, shape: number[], tokens: number | undefined): void {
  for (const bound of p.bounds) {
    // (A selection of an axis the tensor lacks never gets here: the run itself fails, naming the hook.)
    const axis = bound.axis < 0 ? shape.length + bound.axis : bound.axis;
    const size = axis === 1 && tokens !== undefined ? tokens : shape[axis];
    const name = `axis ${axis}${axis === 1 ? " (token positions)" : axis === shape.length - 1 ? " (the last)" : ""}`;
    for (const i of bound.indices ?? [])
      if (i < -size || i >= size)
        throw new WorkbenchError(
          `edit at ${p.hook}: index ${i} is out of bounds for ${name} with size ${size} (the hook's shape is [${shape.join(", ")}]${axis === 1 && tokens !== undefined ? `, the sequence ${tokens} tokens` : ""})`
        );
    if (bound.range) {
      const [start, stop] = bound.range;
      if (start < 0 || stop > size || start > stop)
        throw new WorkbenchError(
          `edit at ${p.hook}: range [${start}, ${stop}) is not inside ${name}, of size ${size}: it needs 0 ≤ start ≤ stop ≤ ${size}`
        );
    }
  }
}

function intervalsOf(entry: Exclude<AxisIndex, null>, hook: string): [number, number][] {
  const one = (i: number): [number, number] => {
    if (!Number.isInteger(i)) throw new WorkbenchError(`edit at ${hook}: index ${i} is not a whole number`);
    return [i, i === -1 ? END : i + 1];
  };
  if (typeof entry === "number") return [one(entry)];
  if (Array.isArray(entry)) return entry.map(one);
  return [[entry.start ?? 0, entry.stop ?? END]];
}

function describe(entry: Exclude<AxisIndex, null>): string {
  if (typeof entry === "number") return String(entry);
  if (Array.isArray(entry)) return `[${entry}]`;
  return `${entry.start ?? ""}:${entry.stop ?? ""}`;
}

function valueFeed(edit: Edit): Feed {
  const {value} = edit;
  if (typeof value === "number") {
    if (!Number.isFinite(value))
      throw new WorkbenchError(`edit at ${edit.hook}: the value ${value} is not a finite number`);
    return {type: "float32", data: Float32Array.of(value), dims: []};
  }
  if (isTensor(value)) {
    const n = value.shape.reduce((a, b) => a * b, 1);
    if (n !== value.data.length)
      throw new WorkbenchError(
        `edit at ${edit.hook}: a value of shape [${value.shape}] needs ${n} numbers, got ${value.data.length}`
      );
    return {type: "float32", data: value.data, dims: value.shape};
  }
  return {type: "float32", data: Float32Array.from(value), dims: [value.length]};
}

function isTensor(value: unknown): value is Tensor {
  return typeof value === "object" && value !== null && "shape" in value && "data" in value;
}

function int64(values: number[]): Feed {
  return {type: "int64", data: BigInt64Array.from(values, (v) => BigInt(v)), dims: [values.length]};
}

/**
 * PyTorch/nnsight indexing text on a hook's tensor: `"[:, 2]"` (position 2), `"[:, :, 16:24]"` (columns 16 to 23),
 * `"[0, -1]"`, `"[:, 1:3]"`. Steps and ellipses are refused rather than half-supported.
 */
export function parseIndex(text: string, hook = "the hook"): AxisIndex[] {
  const body = /^\s*\[(.*)\]\s*$/.exec(text);
  if (!body)
    throw new WorkbenchError(
      `edit at ${hook}: the slice ${JSON.stringify(text)} must look like [:, 2] or [:, :, 16:24]`
    );
  return body[1].split(",").map((part) => {
    const p = part.trim();
    const bad = () =>
      new WorkbenchError(
        `edit at ${hook}: cannot read ${JSON.stringify(p)} in the slice ${text} (use i, a:b, a: or :)`
      );
    if (p === ":" || p === "") {
      if (p === "") throw bad();
      return null;
    }
    if (/^-?\d+$/.test(p)) return Number(p);
    const m = /^(-?\d+)?\s*:\s*(-?\d+)?$/.exec(p);
    if (!m) throw bad();
    return {start: m[1] === undefined ? undefined : Number(m[1]), stop: m[2] === undefined ? undefined : Number(m[2])};
  });
}

/**
 * An edit as the CLI writes it: `HOOK[SLICE] OP VALUE`, OP one of `=`, `+=`, `*=`, VALUE a number:
 * `model.layers.1.mlp.output = 0`, `transformer.h.0.attn.c_proj.input[:, :, 8:16] *= 0`.
 */
export function parseEdit(text: string): Edit {
  const m = /^\s*([A-Za-z_][\w.]*)\s*(\[[^\]]*\])?\s*(\+=|\*=|=)\s*(\S+)\s*$/.exec(text);
  if (!m)
    throw new WorkbenchError(
      `cannot read the edit ${JSON.stringify(text)}: write HOOK[SLICE] OP VALUE, e.g. "model.layers.1.mlp.output[:, 2] = 0" (OP: = += *=)`
    );
  const [, hook, slice, op, valueText] = m;
  const value = Number(valueText);
  if (!Number.isFinite(value))
    throw new WorkbenchError(`edit ${JSON.stringify(text)}: the value ${valueText} is not a number`);
  const edit: Edit = {hook, op: op === "=" ? "set" : op === "+=" ? "add" : "scale", value};
  if (slice) edit.index = parseIndex(slice, hook);
  return edit;
}
