/**
 * The feeds of a model's one graph (runtime/one-graph.ts): what a run with its own structure would have fed its
 * own graph, as the one graph's slot, lens and packed inputs. Whether the numbers come out right is checked on
 * every fixture by test/interventions.test.ts and test/parity.test.ts on onnxruntime-web, where one graph is the
 * default; this file checks the translation and where it gives up.
 */
import {describe, expect, it} from "vitest";
import {lensOff, oneGraphFeeds} from "../src/runtime/one-graph.js";
import {planEdits, type Edit, type Feed} from "../src/runtime/edits.js";
import {LENS, LENS_ON, PACKED, SLOT_ROW, SLOTS} from "../src/graph/names.js";

const slots = ["model.layers.0.output", "model.layers.1.output", "lm_head.output"];
const feedsOf = (edits: Edit[], offset = 0) => {
  const plan = planEdits(edits, (hook) => hook);
  return oneGraphFeeds(slots, 3, 0, {edits: plan.sites}, plan.feeds(offset));
};
const END = 2n ** 53n;

/** Slot `hook`'s switch, scale, value (with their dims) and bounds, read back from the packed feeds. */
function slotOf(feeds: Record<string, Feed>, hook: string) {
  const i = slots.indexOf(hook);
  const row = [
    ...(feeds[SLOTS.table].data as BigInt64Array).subarray(i * SLOT_ROW.length, (i + 1) * SLOT_ROW.length)
  ].map(Number);
  const values = feeds[SLOTS.values].data as Float32Array;
  const piece = (start: number, length: number, dims: number) => ({
    data: [...values.subarray(row[start], row[start] + row[length])],
    dims: row.slice(dims, dims + 4)
  });
  const n = row[SLOT_ROW.intervals];
  const b = row[SLOT_ROW.bounds];
  return {
    on: feeds[SLOTS.on].data[i],
    scale: piece(SLOT_ROW.scale, SLOT_ROW.scaleLength, SLOT_ROW.scaleDims),
    value: piece(SLOT_ROW.value, SLOT_ROW.valueLength, SLOT_ROW.valueDims),
    n,
    bounds: [...(feeds[SLOTS.bounds].data as BigInt64Array).subarray(b, b + 4 * n * 2)]
  };
}

describe("the one graph's feeds", () => {
  it("a plain run: one sequence's positions after the cache, the causal mask, logits at every position; no slot on", () => {
    const feeds = oneGraphFeeds(slots, 2, 3)!;
    expect([...(feeds[PACKED.positions].data as BigInt64Array)]).toEqual([3n, 4n]);
    expect(feeds[PACKED.mask].dims).toEqual([2, 5]);
    // True where a query may not look: the second new token sees all five keys, the first all but the last.
    expect([...feeds[PACKED.mask].data]).toEqual([0, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
    expect([...(feeds[PACKED.logitsIndex].data as BigInt64Array)]).toEqual([0n, 1n]);
    expect([...feeds[SLOTS.on].data]).toEqual([0, 0, 0]);
    expect(feeds[SLOTS.table].dims).toEqual([3, SLOT_ROW.length]);
  });

  it("set, add and scale become (scale, value) = (0, v), (1, v), (v, 0), selections become bounds", () => {
    const set = slotOf(feedsOf([{hook: "model.layers.0.output", op: "set", value: 7, positions: [1]}])!, slots[0]);
    expect(set.on).toBe(1);
    expect(set.scale).toEqual({data: [0], dims: [1, 1, 1, 1]});
    expect(set.value).toEqual({data: [7], dims: [1, 1, 1, 1]});
    // Axes 0, 1, 2 and the last: only axis 1 is selected, [1, 2); the others whole.
    expect(set.bounds).toEqual([0n, END, 1n, 2n, 0n, END, 0n, END]);
    const add = slotOf(feedsOf([{hook: "model.layers.1.output", op: "add", value: [1, 2]}])!, slots[1]);
    expect(add.scale.data).toEqual([1]);
    expect(add.value).toEqual({data: [1, 2], dims: [1, 1, 1, 2]});
    const scale = slotOf(feedsOf([{hook: "lm_head.output", op: "scale", value: 0, index: "[:, :, 2:4]"}])!, slots[2]);
    expect(scale.value.data).toEqual([0]);
    expect(scale.bounds).toEqual([0n, END, 0n, END, 2n, 4n, 0n, END]);
  });

  it("two slots at once share the packed tensors, each at its own place", () => {
    const value = {shape: [1, 3, 2], data: Float32Array.from([1, 2, 3, 4, 5, 6])};
    const feeds = feedsOf([
      {hook: "model.layers.0.output", op: "set", value, positions: [2]},
      {hook: "lm_head.output", op: "scale", value: 3}
    ])!;
    expect([...feeds[SLOTS.on].data]).toEqual([1, 0, 1]);
    expect(slotOf(feeds, slots[0]).value).toEqual({data: [1, 2, 3, 4, 5, 6], dims: [1, 1, 3, 2]});
    expect(slotOf(feeds, slots[2]).scale.data).toEqual([3]);
    expect(slotOf(feeds, slots[2]).bounds).toEqual([0n, END, 0n, END, 0n, END, 0n, END]);
  });

  it("several intervals on one axis are padded with empty ones to the longest", () => {
    const feeds = feedsOf([{hook: "model.layers.0.output", op: "set", value: 0, positions: [0, 2], range: [1, 3]}])!;
    const slot = slotOf(feeds, slots[0]);
    expect(slot.n).toBe(2);
    expect(slot.bounds).toEqual([0n, END, 0n, 0n, 0n, 1n, 2n, 3n, 0n, END, 0n, 0n, 1n, 3n, 0n, 0n]);
  });

  it("an edit that selects nothing leaves its slot off: a patching sweep's other kinds, a step past the positions", () => {
    expect(feedsOf([{hook: "model.layers.0.output", op: "set", value: 0, positions: []}])![SLOTS.on].data[0]).toBe(0);
    // During generation, position 1 lies before step 5's window: nothing to write.
    const step = feedsOf([{hook: "model.layers.0.output", op: "add", value: 1, positions: [1]}], 5)!;
    expect(step[SLOTS.on].data[0]).toBe(0);
  });

  it("gives up where a slot cannot hold the edits: two at one hook point, an axis it does not select, no slot", () => {
    const twice: Edit[] = [
      {hook: "model.layers.0.output", op: "add", value: 1},
      {hook: "model.layers.0.output", op: "scale", value: 2}
    ];
    expect(feedsOf(twice)).toBeUndefined();
    expect(feedsOf([{hook: "model.layers.0.output", op: "set", value: 0, index: "[:, :, :, 1]"}])).toBeUndefined();
    expect(feedsOf([{hook: "model.layers.0.self_attn.attn_weights", op: "set", value: 0}])).toBeUndefined();
    const wide = {shape: [2, 1, 1, 1, 1], data: new Float32Array(2)};
    expect(feedsOf([{hook: "model.layers.0.output", op: "set", value: wide}])).toBeUndefined();
  });

  it("the lens's switch and k; off for every other run", () => {
    const k: Feed = {type: "int64", data: BigInt64Array.of(5n), dims: [1]};
    const lens = oneGraphFeeds(slots, 3, 0, {lens: true}, {[LENS.k]: k})!;
    expect([...lens[LENS_ON].data]).toEqual([1]);
    expect([...(lens[LENS.k].data as BigInt64Array)]).toEqual([5n]);
    expect([...lensOff()[LENS_ON].data]).toEqual([0]);
  });
});
