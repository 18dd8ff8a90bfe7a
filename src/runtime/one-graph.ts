/**
 * The feeds of a model's one graph (graph/hooks.ts `editSlots`, runtime/model.ts `oneGraph`) for a run that would
 * otherwise need a graph of its own: what that graph would have been fed — an edit's value and intervals, the
 * lens's k, a packed run's positions and mask — turned into the one graph's inputs. A plain run gets the packed
 * inputs of one sequence; the lens gets its switch; each edit gets the slot at its hook point, every slot's numbers
 * packed into the four `SLOTS` tensors.
 */
import type {EditSite} from "../graph/hooks.js";
import {editInputs, LENS, LENS_ON, PACKED, SLOT_AXES, SLOT_ROW, SLOTS} from "../graph/names.js";
import type {Feed} from "./edits.js";

/** What a run adds to the plain forward pass (runtime/model.ts `RunExtras`'s structure). */
export interface RunStructure {
  edits?: EditSite[];
  lens?: boolean;
  lensLogits?: boolean;
  lensLayersAtOnce?: number;
  packed?: boolean;
}

/** Past the end of any axis: an axis the edit does not select is selected whole. */
const END = 2n ** 53n;

/**
 * The one graph's inputs for a run of `tokens` new tokens after `past` cached ones, with `structure` and the
 * `feeds` its own graph would take; undefined where a slot cannot express its edits: two edits that write at
 * one hook point, one selecting along an axis other than 0, 1, 2 and the last, or a value of more than four axes, or
 * a lens run that wants the full logits or another group of layers (the run then needs a graph of its own).
 * `slots`: the hook points that have one, in slot order.
 */
export function oneGraphFeeds(
  slots: readonly string[],
  tokens: number,
  past: number,
  structure: RunStructure = {},
  feeds: Record<string, Feed> = {}
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
  const on = new Uint8Array(slots.length);
  const table = new BigInt64Array(slots.length * SLOT_ROW.length);
  const values: Float32Array[] = [];
  const bounds: bigint[] = [];
  let valueCount = 0;
  /** `feed`'s numbers appended to `values`: their offset and count, and their dims right-aligned in four. */
  const place = (row: number, start: number, length: number, dims: number, feed: Feed) => {
    table[row + start] = BigInt(valueCount);
    table[row + length] = BigInt(feed.data.length);
    const padded = [1, 1, 1, 1, ...feed.dims].slice(-4);
    padded.forEach((d, j) => (table[row + dims + j] = BigInt(d)));
    values.push(feed.data as Float32Array);
    valueCount += feed.data.length;
  };
  for (const [k, site] of (structure.edits ?? []).entries()) {
    const names = editInputs(k);
    const intervals = site.axes.map((axis) => ({
      axis,
      from: feeds[names.from(axis)].data as BigInt64Array,
      to: feeds[names.to(axis)].data as BigInt64Array
    }));
    // An edit that selects nothing along some axis writes nothing (a patching sweep's other kinds): no slot.
    if (intervals.some(({from, to}) => from.every((f, j) => f === to[j]))) continue;
    const slot = slots.indexOf(site.hook);
    if (slot < 0 || on[slot]) return undefined;
    if (site.axes.some((axis) => !(SLOT_AXES as readonly number[]).includes(axis))) return undefined;
    const value = feeds[names.value];
    if (value.dims.length > 4 || (value.dims.length === 4 && value.dims[0] !== 1)) return undefined;
    on[slot] = 1;
    const row = slot * SLOT_ROW.length;
    // set: x · 0 + v; add: x · 1 + v; scale: x · v + 0 (graph/hooks.ts `editSlot`).
    const [scale, shift] =
      site.op === "set" ? [number(0), value] : site.op === "add" ? [number(1), value] : [value, number(0)];
    place(row, SLOT_ROW.scale, SLOT_ROW.scaleLength, SLOT_ROW.scaleDims, scale);
    place(row, SLOT_ROW.value, SLOT_ROW.valueLength, SLOT_ROW.valueDims, shift);
    // [axes, n, 2]: each axis's intervals, padded with empty ones; an axis not selected, whole.
    const n = Math.max(1, ...intervals.map((i) => i.from.length));
    table[row + SLOT_ROW.bounds] = BigInt(bounds.length);
    table[row + SLOT_ROW.intervals] = BigInt(n);
    for (const axis of SLOT_AXES) {
      const selected = intervals.find((i) => i.axis === axis);
      for (let j = 0; j < n; j++) {
        if (!selected) bounds.push(0n, j === 0 ? END : 0n);
        else if (j < selected.from.length) bounds.push(selected.from[j], selected.to[j]);
        else bounds.push(0n, 0n);
      }
    }
  }
  const flat = new Float32Array(Math.max(valueCount, 1));
  let at = 0;
  for (const v of values) (flat.set(v, at), (at += v.length));
  out[SLOTS.on] = {type: "bool", data: on, dims: [slots.length]};
  out[SLOTS.table] = {type: "int64", data: table, dims: [slots.length, SLOT_ROW.length]};
  out[SLOTS.values] = {type: "float32", data: flat, dims: [flat.length]};
  out[SLOTS.bounds] = {
    type: "int64",
    data: BigInt64Array.from(bounds.length ? bounds : [0n]),
    dims: [Math.max(bounds.length, 1)]
  };
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

/** The lens switched off, for every run that is not the lens's (every input of the graph is fed on every run). */
export function lensOff(): Record<string, Feed> {
  return {[LENS_ON]: bool(false), [LENS.k]: {type: "int64", data: BigInt64Array.of(1n), dims: [1]}};
}

function bool(value: boolean): Feed {
  return {type: "bool", data: Uint8Array.of(value ? 1 : 0), dims: []};
}

function number(value: number): Feed {
  return {type: "float32", data: Float32Array.of(value), dims: []};
}
