/**
 * The feeds of a model's one graph (runtime/one-graph.ts): what a run with its own structure would have fed its
 * own graph, as the one graph's slot, lens and packed inputs. Whether the numbers come out right is checked on
 * every fixture by test/interventions.test.ts and test/parity.test.ts on onnxruntime-web, where one graph is the
 * default; this file checks the translation and where it gives up.
 */
import {describe, expect, it} from "vitest";
import {oneGraphFeeds, idleFeeds, slotsOf} from "../src/runtime/one-graph.js";
import {planEdits, type Edit} from "../src/runtime/edits.js";
import {LENS, LENS_ON, PACKED, slotInputs} from "../src/graph/names.js";

const slots = new Set(["model.layers.0.output", "model.layers.1.output", "lm_head.output"]);
const feedsOf = (edits: Edit[], offset = 0) => {
  const plan = planEdits(edits, (hook) => hook);
  return oneGraphFeeds(slots, 3, 0, {edits: plan.sites}, plan.feeds(offset));
};
const END = 2n ** 53n;

describe("the one graph's feeds", () => {
  it("a plain run: one sequence's positions after the cache, the causal mask, logits at every position", () => {
    const feeds = oneGraphFeeds(slots, 2, 3)!;
    expect([...(feeds[PACKED.positions].data as BigInt64Array)]).toEqual([3n, 4n]);
    expect(feeds[PACKED.mask].dims).toEqual([2, 5]);
    // True where a query may not look: the second new token sees all five keys, the first all but the last.
    expect([...feeds[PACKED.mask].data]).toEqual([0, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
    expect([...(feeds[PACKED.logitsIndex].data as BigInt64Array)]).toEqual([0n, 1n]);
  });

  it("set, add and scale become (scale, value) = (0, v), (1, v), (v, 0), selections become bounds", () => {
    const set = feedsOf([{hook: "model.layers.0.output", op: "set", value: 7, positions: [1]}])!;
    const slot = slotInputs("model.layers.0.output");
    expect([...set[slot.on].data]).toEqual([1]);
    expect([...set[slot.scale].data]).toEqual([0]);
    expect([...set[slot.value].data]).toEqual([7]);
    // Axes 0, 1, 2 and the last: only axis 1 is selected, [1, 2); the others whole.
    expect(set[slot.bounds].dims).toEqual([4, 1, 2]);
    expect([...(set[slot.bounds].data as BigInt64Array)]).toEqual([0n, END, 1n, 2n, 0n, END, 0n, END]);
    const add = feedsOf([{hook: "model.layers.1.output", op: "add", value: [1, 2]}])!;
    expect([...add[slotInputs("model.layers.1.output").scale].data]).toEqual([1]);
    expect([...add[slotInputs("model.layers.1.output").value].data]).toEqual([1, 2]);
    const scale = feedsOf([{hook: "lm_head.output", op: "scale", value: 0, index: "[:, :, 2:4]"}])!;
    expect([...scale[slotInputs("lm_head.output").value].data]).toEqual([0]);
    expect([...(scale[slotInputs("lm_head.output").bounds].data as BigInt64Array)]).toEqual([
      0n,
      END,
      0n,
      END,
      2n,
      4n,
      0n,
      END
    ]);
  });

  it("several intervals on one axis are padded with empty ones to the longest", () => {
    const feeds = feedsOf([{hook: "model.layers.0.output", op: "set", value: 0, positions: [0, 2], range: [1, 3]}])!;
    const bounds = feeds[slotInputs("model.layers.0.output").bounds];
    expect(bounds.dims).toEqual([4, 2, 2]);
    expect([...(bounds.data as BigInt64Array)]).toEqual([
      0n,
      END,
      0n,
      0n,
      0n,
      1n,
      2n,
      3n,
      0n,
      END,
      0n,
      0n,
      1n,
      3n,
      0n,
      0n
    ]);
  });

  it("an edit that selects nothing leaves its slot off: a patching sweep's other kinds, a step past the positions", () => {
    expect(Object.keys(feedsOf([{hook: "model.layers.0.output", op: "set", value: 0, positions: []}])!)).not.toContain(
      slotInputs("model.layers.0.output").on
    );
    // During generation, position 1 lies before step 5's window: nothing to write.
    const step = feedsOf([{hook: "model.layers.0.output", op: "add", value: 1, positions: [1]}], 5)!;
    expect(step[slotInputs("model.layers.0.output").on]).toBeUndefined();
  });

  it("gives up where a slot cannot hold the edits: two at one hook point, an axis it does not select, no slot", () => {
    const twice: Edit[] = [
      {hook: "model.layers.0.output", op: "add", value: 1},
      {hook: "model.layers.0.output", op: "scale", value: 2}
    ];
    expect(feedsOf(twice)).toBeUndefined();
    expect(feedsOf([{hook: "model.layers.0.output", op: "set", value: 0, index: "[:, :, :, 1]"}])).toBeUndefined();
    expect(feedsOf([{hook: "model.layers.0.self_attn.attn_weights", op: "set", value: 0}])).toBeUndefined();
  });

  it("the lens's switch and k; every slot idle otherwise, and the slots read back off the input names", () => {
    const lens = oneGraphFeeds(
      slots,
      3,
      0,
      {lens: true},
      {[LENS.k]: {type: "int64", data: BigInt64Array.of(5n), dims: [1]}}
    )!;
    expect([...lens[LENS_ON].data]).toEqual([1]);
    expect([...(lens[LENS.k].data as BigInt64Array)]).toEqual([5n]);
    const idle = idleFeeds(slots);
    expect([...idle[LENS_ON].data]).toEqual([0]);
    for (const hook of slots) expect([...idle[slotInputs(hook).on].data]).toEqual([0]);
    expect(slotsOf(Object.keys(idle))).toEqual(slots);
  });
});
