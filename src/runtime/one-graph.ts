/**
 * The feeds of a model's one graph (graph/hooks.ts `editSlots`, runtime/model.ts `oneGraph`) for a run that would
 * otherwise need a graph of its own: what that graph would have been fed — an edit's value and intervals, the
 * lens's k, a packed run's positions and mask — turned into the one graph's inputs. A plain run gets the packed
 * inputs of one sequence; the lens gets its switch; each edit gets the slot at its hook point, its scale and value
 * over the hook's shape (`editSlotInput`). Every other slot and the lens switch take `idleFeeds`.
 */
import type {EditSite} from "../graph/hooks.js";
import {editInputs, editSlotInput, LENS, LENS_ON, PACKED} from "../graph/names.js";
import type {Feed} from "./edits.js";

/** What a run adds to the plain forward pass (runtime/model.ts `RunExtras`'s structure). */
export interface RunStructure {
  edits?: EditSite[];
  lens?: boolean;
  lensLogits?: boolean;
  lensLayersAtOnce?: number;
  packed?: boolean;
}

/**
 * The one graph's inputs for a run of `tokens` new tokens after `past` cached ones, with `structure` and the
 * `feeds` its own graph would take; undefined where a slot cannot express its edits: two edits that write at
 * one hook point, a hook whose shape `shapeOf` does not know, or a lens run that wants the full logits or another
 * group of layers (the run then needs a graph of its own). `slots`: the hook points that have one, in slot order;
 * `shapeOf`: a slotted hook's shape in this run.
 */
export function oneGraphFeeds(
  slots: readonly string[],
  tokens: number,
  past: number,
  structure: RunStructure = {},
  feeds: Record<string, Feed> = {},
  shapeOf: (hook: string) => number[] | undefined = () => undefined
): Record<string, Feed> | undefined {
  // The one graph's lens keeps no full logits and unembeds the default group of layers (graph/hooks.ts `switchedLens`).
  if (structure.lensLogits || structure.lensLayersAtOnce) return undefined;
  const out: Record<string, Feed> = structure.packed
    ? {
        [PACKED.positions]: feeds[PACKED.positions],
        [PACKED.mask]: feeds[PACKED.mask],
        [PACKED.logitsIndex]: feeds[PACKED.logitsIndex]
      }
    : oneSequence(tokens, past);
  if (structure.lens) {
    out[LENS_ON] = bool(true);
    out[LENS.k] = feeds[LENS.k];
  }
  const edited = new Set<string>();
  for (const [k, site] of (structure.edits ?? []).entries()) {
    const names = editInputs(k);
    const intervals = site.axes.map((axis) => ({
      axis,
      from: feeds[names.from(axis)].data as BigInt64Array,
      to: feeds[names.to(axis)].data as BigInt64Array
    }));
    // An edit that selects nothing along some axis writes nothing (a patching sweep's other kinds): its slot idles.
    if (intervals.some(({from, to}) => from.every((f, j) => f === to[j]))) continue;
    const shape = shapeOf(site.hook);
    if (!slots.includes(site.hook) || edited.has(site.hook) || !shape) return undefined;
    const numbers = slotNumbers(site, shape, intervals, feeds[names.value]);
    if (!numbers) return undefined;
    edited.add(site.hook);
    out[editSlotInput(site.hook)] = {type: "float32", data: numbers, dims: [2 * shape[0], ...shape.slice(1)]};
  }
  return out;
}

/**
 * One edit's `scale` and `value` over its hook's whole `shape`, one after the other (graph/hooks.ts `editSlot`),
 * `(1, 0)` outside its selection: the selection as the edit's own graph makes it — along each selected axis, an
 * index inside one of its `[from, to)` intervals, negative bounds counting from the end as in Python — and the value
 * broadcast against the hook's tensor as PyTorch broadcasts; undefined where it does not broadcast (its own graph
 * then says so).
 */
function slotNumbers(
  site: EditSite,
  shape: number[],
  intervals: {axis: number; from: BigInt64Array; to: BigInt64Array}[],
  value: Feed
): Float32Array | undefined {
  const rank = shape.length;
  const numel = shape.reduce((a, b) => a * b, 1);
  const v = value.data as Float32Array;
  // The value's strides against the hook's axes, right-aligned; 0 where it broadcasts.
  if (value.dims.length > rank) return undefined;
  const strides = new Array<number>(rank).fill(0);
  for (let a = rank - 1, vd = value.dims.length - 1, step = 1; vd >= 0; a--, vd--) {
    const d = value.dims[vd];
    if (d !== 1 && d !== shape[a]) return undefined;
    strides[a] = d === 1 ? 0 : step;
    step *= d;
  }
  // Each axis's selected indices (all of them where the edit does not select along it).
  const selected = shape.map((size) => new Uint8Array(size).fill(1));
  for (const {axis, from, to} of intervals) {
    const a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a >= rank) return undefined;
    const size = shape[a];
    const along = new Uint8Array(size);
    const python = (i: bigint) => Number(i < 0n ? i + BigInt(size) : i > BigInt(size) ? BigInt(size) : i);
    from.forEach((f, j) => {
      for (let i = Math.max(python(f), 0); i < Math.min(python(to[j]), size); i++) along[i] = 1;
    });
    selected[a] = along;
  }
  const out = new Float32Array(2 * numel);
  const [scales, values] = [out.subarray(0, numel), out.subarray(numel)];
  const index = new Array<number>(rank).fill(0);
  for (let flat = 0; flat < numel; flat++) {
    let inside = 1;
    let at = 0;
    for (let a = 0; a < rank; a++) {
      inside &= selected[a][index[a]];
      at += index[a] * strides[a];
    }
    // set: x · 0 + v; add: x · 1 + v; scale: x · v + 0 (graph/hooks.ts `editSlot`). Outside: x · 1 + 0, x as it is.
    const x = v[at];
    scales[flat] = !inside ? 1 : site.op === "set" ? 0 : site.op === "add" ? 1 : x;
    values[flat] = !inside || site.op === "scale" ? 0 : x;
    for (let a = rank - 1; a >= 0 && ++index[a] === shape[a]; a--) index[a] = 0;
  }
  return out;
}

/** The packed inputs of a single sequence: positions `past …`, the causal mask, logits at every position. */
function oneSequence(tokens: number, past: number): Record<string, Feed> {
  const S = past + tokens;
  const mask = new Uint8Array(tokens * S);
  for (let i = 0; i < tokens; i++) for (let j = past + i + 1; j < S; j++) mask[i * S + j] = 1;
  return {
    [PACKED.positions]: {
      type: "int64",
      data: BigInt64Array.from({length: tokens}, (_, i) => BigInt(past + i)),
      dims: [tokens]
    },
    [PACKED.mask]: {type: "bool", data: mask, dims: [tokens, S]},
    [PACKED.logitsIndex]: {
      type: "int64",
      data: BigInt64Array.from({length: tokens}, (_, i) => BigInt(i)),
      dims: [tokens]
    }
  };
}

/**
 * What a run that does not use them feeds the lens and the edit slots `slots` (onnxruntime wants every input of a
 * graph on every run): the lens switched off, each slot `[1, 0]` — `x · 1 + 0`, broadcast, which is x exactly.
 */
export function idleFeeds(slots: readonly string[]): Record<string, Feed> {
  const idle: Record<string, Feed> = {
    [LENS_ON]: bool(false),
    [LENS.k]: {type: "int64", data: BigInt64Array.of(1n), dims: [1]}
  };
  for (const hook of slots) idle[editSlotInput(hook)] = {type: "float32", data: Float32Array.of(1, 0), dims: [2]};
  return idle;
}

function bool(value: boolean): Feed {
  return {type: "bool", data: Uint8Array.of(value ? 1 : 0), dims: []};
}
