/**
 * Writes relay/tests/nnsight_expected.json: the workbench engine's own results (onnxruntime, Node) for the relay's
 * five experiments on the repo's stories260K, which relay/tests/check_nnsight_local.py compares with the relay's
 * nnsight bodies run locally on the same weights. Each case names its experiment and holds the relay's params
 * (PROTOCOL.md) and what the workbench computes for them, in the relay's result layout (flat, row-major). Greedy
 * generation only: sampling draws from different generators in the two engines.
 *
 * Run from the repository root: npx tsx relay/tests/make_nnsight_expected.ts
 */
import {writeFileSync} from "node:fs";
import {loadModel, type Tensor} from "../../src/node.js";
import {logitLens} from "../../src/analysis/lens.js";
import {patchSweep, ablateHeads} from "../../src/analysis/patching.js";

const model = await loadModel("stories260K");
const ids = model.tokenize("Once upon a time, there was a little").ids;
const corrupt = model.tokenize("Once upon a time, there was a big").ids;
if (ids.length !== corrupt.length) throw new Error("the clean and corrupt prompts must tokenize to as many tokens");
// 9 significant digits round-trip a float32 exactly, in half the JSON of a double's 17.
const flat = (t: Tensor | Float32Array) => Array.from("data" in t ? t.data : t, (x) => Number(x.toPrecision(9)));

// trace: hooks across the forward order, positions, and an edit before a later read.
const hooks = [
  "model.embed_tokens.output",
  "model.layers.0.self_attn.o_proj.input",
  "model.layers.1.mlp.output",
  "model.layers.1.output",
  "model.layers.2.self_attn.output",
  "model.layers.3.output",
  "model.norm.output",
  "lm_head.output"
];
const positions = [0, 3, -1];
const edits = [
  {hook: "model.layers.1.mlp.output", op: "scale" as const, value: 0.5, positions: [2, 3]},
  {hook: "model.layers.2.self_attn.o_proj.input", op: "set" as const, value: 0, range: [8, 16] as [number, number]},
  {hook: "model.layers.3.output", op: "add" as const, value: 0.25, positions: [-1]}
];
const traced = await model.trace(ids, hooks, {edits});
const T = ids.length;
const at = positions.map((p) => (p + T) % T);
const trace = Object.fromEntries(
  hooks.map((h) => {
    const t = traced[h] as Tensor;
    const w = t.shape[t.shape.length - 1];
    return [h, at.flatMap((p) => flat(t).slice(p * w, (p + 1) * w))];
  })
);

// trace, every hook point of one layer (hooks.py's table, whose forward order the body relies on) and the
// final norm, whole (no positions; lm_head is read in the first trace), with an edit inside the MLP and one that selects no position.
const everyHook = [
  "model.embed_tokens.output",
  ...model.hookPoints().filter((h) => h.startsWith("model.layers.4.") && !h.includes("attn_weights")),
  "model.norm.output"
];
const everyEdit = [
  {
    hook: "model.layers.4.mlp.act_fn.output",
    op: "scale" as const,
    value: 2,
    positions: [1],
    range: [0, 50] as [number, number]
  },
  {hook: "model.layers.4.input_layernorm.output", op: "add" as const, value: 1, positions: [] as number[]}
];
const whole = await model.trace(ids, everyHook, {edits: everyEdit});
const traceEvery = Object.fromEntries(everyHook.map((h) => [h, flat(whole[h] as Tensor)]));

const generation = await model.generate(ids, {maxNewTokens: 12});
const lens = await logitLens(model, ids, {k: 5});
const answers = [model.tokenize(" girl").ids.at(-1)!, model.tokenize(" dog").ids.at(-1)!];
const sweep = async (kind: "resid" | "attn" | "mlp") => {
  const patch = await patchSweep(model, ids, corrupt, kind, {ids: answers, top: 5});
  return {
    experiment: "patching",
    params: {clean_ids: ids, corrupt_ids: corrupt, kind, answers, top: 5},
    expected: {
      clean: flat(patch.clean),
      corrupt: flat(patch.corrupt),
      logits: flat(patch.logits),
      top_ids: flat(patch.top!.ids),
      top_logits: flat(patch.top!.logits)
    }
  };
};
const ablation = await ablateHeads(model, ids, {ids: answers, top: 5});

const cases = {
  trace: {experiment: "trace", params: {input_ids: ids, hooks, positions, edits}, expected: trace},
  trace_every_hook: {
    experiment: "trace",
    params: {input_ids: ids, hooks: everyHook, edits: everyEdit},
    expected: traceEvery
  },
  generate: {experiment: "generate", params: {input_ids: ids, max_new_tokens: 12}, expected: {ids: generation.new_ids}},
  lens: {
    experiment: "lens",
    params: {input_ids: ids, k: 5},
    expected: {top_ids: flat(lens.topIds), top_logprobs: flat(lens.topLogprobs)}
  },
  patching: await sweep("resid"),
  patching_attn: await sweep("attn"),
  patching_mlp: await sweep("mlp"),
  ablation: {
    experiment: "ablation",
    params: {input_ids: ids, answers, top: 5},
    expected: {
      base: flat(ablation.base),
      logits: flat(ablation.logits),
      top_ids: flat(ablation.top!.ids),
      top_logits: flat(ablation.top!.logits)
    }
  }
};
const out = new URL("./nnsight_expected.json", import.meta.url);
writeFileSync(
  out,
  JSON.stringify({model: "stories260K", made_by: "npx tsx relay/tests/make_nnsight_expected.ts", cases}) + "\n"
);
console.log(`wrote ${out.pathname}: prompt ${JSON.stringify(ids)}, generated ${JSON.stringify(generation.new_ids)}`);
await model.dispose();
