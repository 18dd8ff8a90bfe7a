/**
 * The feeds of a model's one graph (graph/hooks.ts `editSlots`, runtime/model.ts `oneGraph`) for a run that would
 * otherwise need a graph of its own: what that graph would have been fed — an edit's value and intervals, the
 * lens's k, a packed run's positions and mask — turned into the one graph's inputs. A plain run gets the packed
 * inputs of one sequence; the lens gets its switch; each edit gets the slot at its hook point.
 */
import type {EditSite} from "../graph/hooks.js";
import {editInputs, LENS, LENS_ON, PACKED, SLOT_AXES, slotInputs} from "../graph/names.js";
import type {Feed} from "./edits.js";

/** What a run adds to the plain forward pass (runtime/model.ts `RunExtras`'s structure). */
export interface RunStructure {
  edits?: EditSite[];
  lens?: boolean;
  packed?: boolean;
}

/** Past the end of any axis: an axis the edit does not select is selected whole. */
const END = 2n ** 53n;

/**
 * The one graph's inputs for a run of `tokens` new tokens after `past` cached ones, with `structure` and the
 * `feeds` its own graph would take; undefined where a slot cannot express its edits: two edits that write at
 * one hook point, or one selecting along an axis other than 0, 1, 2 and the last (the run then needs a graph of
 * its own). `slots`: the hook points that have one.
 */
export function oneGraphFeeds(
  slots: ReadonlySet<string>,
  tokens: number,
  past: number,
  structure: RunStructure = {},
  feeds: Record<string, Feed> = {}
): Record<string, Feed> | undefined {
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
    // An edit that selects nothing along some axis writes nothing (a patching sweep's other kinds): no slot.
    if (intervals.some(({from, to}) => from.every((f, j) => f === to[j]))) continue;
    if (!slots.has(site.hook) || edited.has(site.hook)) return undefined;
    if (site.axes.some((axis) => !(SLOT_AXES as readonly number[]).includes(axis))) return undefined;
    edited.add(site.hook);
    const value = feeds[names.value];
    // set: x · 0 + v; add: x · 1 + v; scale: x · v + 0 (graph/hooks.ts `editSlot`).
    const [scale, shift] =
      site.op === "set" ? [number(0), value] : site.op === "add" ? [number(1), value] : [value, number(0)];
    const n = Math.max(1, ...intervals.map((i) => i.from.length));
    // [axes, n, 2]: each axis's intervals, padded with empty ones; an axis not selected, whole.
    const bounds = new BigInt64Array(SLOT_AXES.length * n * 2);
    SLOT_AXES.forEach((axis, a) => {
      const selected = intervals.find((i) => i.axis === axis);
      if (!selected) bounds[a * n * 2 + 1] = END;
      else
        selected.from.forEach((from, j) => {
          bounds[(a * n + j) * 2] = from;
          bounds[(a * n + j) * 2 + 1] = selected.to[j];
        });
    });
    const slot = slotInputs(site.hook);
    out[slot.on] = bool(true);
    out[slot.scale] = scale;
    out[slot.value] = shift;
    out[slot.bounds] = {type: "int64", data: bounds, dims: [SLOT_AXES.length, n, 2]};
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
 * What every run of the one graph feeds where it writes nothing: each slot off, the lens off (onnxruntime-web
 * takes only inputs a graph requires, so none of them can have a default in the graph).
 */
export function idleFeeds(slots: ReadonlySet<string>): Record<string, Feed> {
  const out: Record<string, Feed> = {
    [LENS_ON]: bool(false),
    [LENS.k]: {type: "int64", data: BigInt64Array.of(1n), dims: [1]}
  };
  const whole = new BigInt64Array(SLOT_AXES.length * 2);
  SLOT_AXES.forEach((_, a) => (whole[a * 2 + 1] = END));
  for (const hook of slots) {
    const slot = slotInputs(hook);
    out[slot.on] = bool(false);
    out[slot.scale] = number(1);
    out[slot.value] = number(0);
    out[slot.bounds] = {type: "int64", data: whole, dims: [SLOT_AXES.length, 1, 2]};
  }
  return out;
}

/** The hook points with an edit slot in a graph: read off its input names. */
export function slotsOf(inputNames: readonly string[]): Set<string> {
  const on = slotInputs("");
  const [prefix, suffix] = [on.on.slice(0, on.on.indexOf(".on")), ".on"];
  return new Set(
    inputNames
      .filter((n) => n.startsWith(prefix) && n.endsWith(suffix))
      .map((n) => n.slice(prefix.length, -suffix.length))
  );
}

function bool(value: boolean): Feed {
  return {type: "bool", data: Uint8Array.of(value ? 1 : 0), dims: []};
}

function number(value: number): Feed {
  return {type: "float32", data: Float32Array.of(value), dims: []};
}
