/**
 * The feeds of a model's one graph (runtime/one-graph.ts): what a run with its own structure would have fed its
 * own graph, as the one graph's slot, lens and packed inputs. Whether the numbers come out right is checked on
 * every fixture by test/interventions.test.ts and test/parity.test.ts on onnxruntime-web, where one graph is the
 * default; this file checks the translation and where it gives up.
 */
import onnxProto from "onnx-proto";
import {describe, expect, it} from "vitest";
import {fixtureGraph} from "./helpers/fixtures.js";
import {idleFeeds, oneGraphFeeds} from "../src/runtime/one-graph.js";
import {oneGraphByDefault} from "../src/runtime/model.js";
import {planEdits, type Edit, type Feed} from "../src/runtime/edits.js";
import {editSlotInput, LENS, LENS_ON, PACKED} from "../src/graph/names.js";

const slots = ["model.layers.0.output", "model.layers.1.output", "lm_head.output"];
/** Each slotted hook's shape in a 3-token run: hidden size 2, a 4-token vocabulary. */
const SHAPES: Record<string, number[]> = {
  "model.layers.0.output": [1, 3, 2],
  "model.layers.1.output": [1, 3, 2],
  "lm_head.output": [1, 3, 4]
};
const feedsOf = (edits: Edit[], offset = 0, shapeOf = (hook: string): number[] | undefined => SHAPES[hook]) => {
  const plan = planEdits(edits, (hook) => hook);
  return oneGraphFeeds(slots, 3, 0, {edits: plan.sites}, plan.feeds(offset), shapeOf);
};

/** Slot `hook`'s input — its scale and value over the hook's shape, one after the other — if the run feeds it. */
function slotOf(feeds: Record<string, Feed>, hook: string) {
  const feed = feeds[editSlotInput(hook)];
  if (!feed) return undefined;
  const numbers = [...(feed.data as Float32Array)];
  const n = numbers.length / 2;
  return {dims: feed.dims, scale: numbers.slice(0, n), value: numbers.slice(n)};
}

describe("the one graph's feeds", () => {
  it("a plain run: one sequence's positions after the cache, the causal mask, logits at every position; no slot on", () => {
    const feeds = oneGraphFeeds(slots, 2, 3)!;
    expect([...(feeds[PACKED.positions].data as BigInt64Array)]).toEqual([3n, 4n]);
    expect(feeds[PACKED.mask].dims).toEqual([2, 5]);
    // True where a query may not look: the second new token sees all five keys, the first all but the last.
    expect([...feeds[PACKED.mask].data]).toEqual([0, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
    expect([...(feeds[PACKED.logitsIndex].data as BigInt64Array)]).toEqual([0n, 1n]);
    for (const hook of slots) expect(slotOf(feeds, hook)).toBeUndefined();
  });

  it("every slot a run does not edit is fed [1, 0]: x · 1 + 0, x exactly, whatever the hook's shape", () => {
    const idle = idleFeeds(slots);
    for (const hook of slots) expect(slotOf(idle, hook)).toEqual({dims: [2], scale: [1], value: [0]});
  });

  it("set, add and scale become (scale, value) = (0, v), (1, v), (v, 0) over the hook's shape, (1, 0) outside", () => {
    // Position 1 of [1, 3, 2]: the second row of two. Scale and value stacked along the first axis: [2, 3, 2].
    const set = slotOf(feedsOf([{hook: "model.layers.0.output", op: "set", value: 7, positions: [1]}])!, slots[0])!;
    expect(set.dims).toEqual([2, 3, 2]);
    expect(set.scale).toEqual([1, 1, 0, 0, 1, 1]);
    expect(set.value).toEqual([0, 0, 7, 7, 0, 0]);
    // A vector broadcast along the last axis, everywhere.
    const add = slotOf(feedsOf([{hook: "model.layers.1.output", op: "add", value: [1, 2]}])!, slots[1])!;
    expect(add.scale).toEqual([1, 1, 1, 1, 1, 1]);
    expect(add.value).toEqual([1, 2, 1, 2, 1, 2]);
    // Columns 2 and 3 of the logits, at every position; -1 counts from the end as in Python.
    const scale = slotOf(feedsOf([{hook: "lm_head.output", op: "scale", value: 0, index: "[:, :, 2:4]"}])!, slots[2])!;
    expect(scale.value).toEqual(new Array(12).fill(0));
    expect(scale.scale).toEqual([1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0]);
    const last = slotOf(feedsOf([{hook: "lm_head.output", op: "set", value: 5, index: "[:, -1, -1]"}])!, slots[2])!;
    expect(last.scale).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
    expect(last.value).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]);
  });

  it("two slots at once, each its own input; the slot between them idles", () => {
    const value = {shape: [1, 3, 2], data: Float32Array.from([1, 2, 3, 4, 5, 6])};
    const feeds = feedsOf([
      {hook: "model.layers.0.output", op: "set", value, positions: [2]},
      {hook: "lm_head.output", op: "scale", value: 3}
    ])!;
    expect(slotOf(feeds, slots[0])!.value).toEqual([0, 0, 0, 0, 5, 6]);
    expect(slotOf(feeds, slots[0])!.scale).toEqual([1, 1, 1, 1, 0, 0]);
    expect(slotOf(feeds, slots[1])).toBeUndefined();
    expect(slotOf(feeds, slots[2])!.scale).toEqual(new Array(12).fill(3));
    expect(slotOf(feeds, slots[2])!.value).toEqual(new Array(12).fill(0));
  });

  it("several intervals on one axis, their union; a range past the end of its axis, clamped as a slice is", () => {
    // Positions 0 and 2; along the last axis (size 2), [1, 3): index 1.
    const feeds = feedsOf([{hook: "model.layers.0.output", op: "set", value: 0, positions: [0, 2], range: [1, 3]}])!;
    expect(slotOf(feeds, slots[0])!.scale).toEqual([1, 0, 1, 1, 1, 0]);
  });

  it("an edit that selects nothing leaves its slot idle: a patching sweep's other kinds, a step past the positions", () => {
    expect(slotOf(feedsOf([{hook: "model.layers.0.output", op: "set", value: 0, positions: []}])!, slots[0])).toBe(
      undefined
    );
    // During generation, position 1 lies before step 5's window: nothing to write.
    const step = feedsOf([{hook: "model.layers.0.output", op: "add", value: 1, positions: [1]}], 5)!;
    expect(slotOf(step, slots[0])).toBeUndefined();
  });

  it("gives up where a slot cannot hold the edits: two at one hook point, a shape it does not know, no slot", () => {
    const twice: Edit[] = [
      {hook: "model.layers.0.output", op: "add", value: 1},
      {hook: "model.layers.0.output", op: "scale", value: 2}
    ];
    expect(feedsOf(twice)).toBeUndefined();
    expect(feedsOf([{hook: "model.layers.0.output", op: "set", value: 0}], 0, () => undefined)).toBeUndefined();
    expect(feedsOf([{hook: "model.layers.0.self_attn.attn_weights", op: "set", value: 0}])).toBeUndefined();
    // A value that does not broadcast against the hook: its own graph says so, by name.
    expect(feedsOf([{hook: "model.layers.0.output", op: "set", value: [1, 2, 3]}])).toBeUndefined();
  });

  it("the lens's switch and k; off for every other run", () => {
    const k: Feed = {type: "int64", data: BigInt64Array.of(5n), dims: [1]};
    const lens = oneGraphFeeds(slots, 3, 0, {lens: true}, {[LENS.k]: k})!;
    expect([...lens[LENS_ON].data]).toEqual([1]);
    expect([...(lens[LENS.k].data as BigInt64Array)]).toEqual([5n]);
    expect([...idleFeeds(slots)[LENS_ON].data]).toEqual([0]);
  });

  it("is the default on WASM from 100 MB of float32 weights (gpt2, SmolLM2 and larger), never on onnxruntime-node or WebGPU", () => {
    const wasm = {executionProviders: ["wasm"]};
    expect(oneGraphByDefault(134_515_008, wasm)).toBe(true); // SmolLM2-135M
    expect(oneGraphByDefault(124_439_808, wasm)).toBe(true); // gpt2
    expect(oneGraphByDefault(260_000, wasm)).toBe(false); // stories260K
    expect(oneGraphByDefault(134_515_008, {executionProviders: ["cpu"]})).toBe(false);
    expect(oneGraphByDefault(134_515_008, {executionProviders: ["webgpu", "wasm"]})).toBe(false);
  });
});

describe("the one graph itself", () => {
  it("an edit slot is one input and a Mul and Add, no If: the only If is the lens's switch", () => {
    const {arch, build} = fixtureGraph("mini-llama", {editSlots: true, packed: true});
    const encoded = build();
    const graph = onnxProto.onnx.ModelProto.decode(encoded.model).graph!;
    expect(encoded.editSlots.length).toBeGreaterThan(2 * arch.config.numLayers);
    const slotInputs = graph.input!.map((i) => i.name!).filter((name) => name.endsWith(".edit"));
    expect(slotInputs).toEqual(encoded.editSlots.map(editSlotInput));
    // onnxruntime keeps a session state for each branch of an If, and runs each as a subgraph (graph/hooks.ts).
    expect(graph.node!.filter((n) => n.opType === "If").length).toBe(1);
  });
});
