/**
 * Writing into the model against the fixtures' float64 references (test/fixtures/*\/interventions.*): the logit
 * lens, the three patching sweeps, head ablation, zero-ablation and steered generation — on onnxruntime-node and
 * onnxruntime-web's WASM, for every fixture (every family).
 */
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {loadModel, type Model} from "../src/node.js";
import {logitLens} from "../src/analysis/lens.js";
import {ablateHeads, defaultIds, pack, patchSweep, type PatchKind} from "../src/analysis/patching.js";
import {steer, steeringEdit, steeringVector} from "../src/analysis/steering.js";
import {parseEdit, parseIndex} from "../src/runtime/edits.js";
import {readInterventions} from "./helpers/interventions.js";
import {FIXTURES, RELATIVE, fixtureDir, relativeError} from "./helpers/fixtures.js";

// "web, one graph": WASM with every structure run on one graph (runtime/model.ts `oneGraph`).
describe.each(["node", "web", "web, one graph"] as const)("interventions on onnxruntime-%s", (layout) => {
  const runtime = layout === "node" ? "node" : "web";
  describe.each(FIXTURES)("%s", (name) => {
    const ref = readInterventions(name);
    let model: Model;
    beforeAll(async () => {
      model = await loadModel(fixtureDir(name), {runtime, oneGraph: layout === "web, one graph"});
    });
    afterAll(() => model?.dispose());

    it("logit lens: top-10 ids and log-probabilities per (layer, position), computed in the graph; the full logits", async () => {
      const c = ref.case("logit_lens");
      const lens = await logitLens(model, c.text, {k: 10, logits: true});
      expect(lens.input_ids).toEqual(c.input_ids);
      expect(lens.hooks).toEqual(c.hooks);
      const ids = ref.tensor("lens.top10_ids");
      expect(lens.topIds.shape).toEqual(ids.shape);
      expect(Array.from(lens.topIds.data)).toEqual(Array.from(ids.data));
      expect(relativeError(lens.topLogprobs.data, ref.tensor("lens.top10_logprobs").data)).toBeLessThan(RELATIVE);
      const logits = ref.tensor("lens.logits");
      expect(lens.logits!.shape).toEqual(logits.shape);
      expect(relativeError(lens.logits!.data, logits.data)).toBeLessThan(RELATIVE);
      // As the pages run it, without the full logits (on one graph: its switched lens); and a layer at a time, so
      // that the groups are put together in order (the fixtures' 2–5 layers fit one default group).
      for (const options of [{}, {layersAtOnce: 1}, {layersAtOnce: 2, logits: true}]) {
        const again = await logitLens(model, c.text, {k: 10, ...options});
        expect(Array.from(again.topIds.data), JSON.stringify(options)).toEqual(Array.from(ids.data));
        expect(relativeError(again.topLogprobs.data, lens.topLogprobs.data)).toBeLessThan(1e-6);
        expect(again.logits === undefined).toBe(!("logits" in options));
        if (again.logits) expect(relativeError(again.logits.data, logits.data)).toBeLessThan(RELATIVE);
      }
      await expect(logitLens(model, c.text, {layersAtOnce: 0.5})).rejects.toThrow(
        /the lens's layersAtOnce must be a whole number ≥ 1, got 0\.5/
      );
    });

    it.each(["resid", "attn", "mlp"] as PatchKind[])(
      "patching %s: every (layer, position), packed, over the corrupt run's cache",
      async (kind) => {
        const c = ref.case(`patch_${kind}`);
        const sweep = await patchSweep(model, c.clean, c.corrupt, kind, {
          ids: c.tracked_ids,
          full: true,
          maxTokens: 64
        });
        expect(sweep.clean_ids).toEqual(c.clean_ids);
        expect(sweep.corrupt_ids).toEqual(c.corrupt_ids);
        expect(sweep.hooks).toEqual(
          Array.from({length: ref.json.layers}, (_, l) => c.hook_template.replace("{layer}", String(l)))
        );
        const tracked = ref.tensor(`patch.${kind}.tracked_logits`);
        expect(sweep.logits.shape).toEqual(tracked.shape);
        expect(relativeError(sweep.logits.data, tracked.data)).toBeLessThan(RELATIVE);
        const full = ref.tensor(`patch.${kind}.last_logits`);
        expect(sweep.full!.shape).toEqual(full.shape);
        expect(relativeError(sweep.full!.data, full.data)).toBeLessThan(RELATIVE);
        const V = model.config.vocabSize;
        expect(
          relativeError(
            sweep.full!.data.subarray(2 * V, 3 * V),
            ref.tensor(`patch.${kind}.last_logits.layer0.pos2`).data
          )
        ).toBeLessThan(RELATIVE);
        expect(
          relativeError(
            c.tracked_ids.map((id: number) => sweep.clean[id]),
            c.clean_last_logits_tracked
          )
        ).toBeLessThan(RELATIVE);
        expect(
          relativeError(
            c.tracked_ids.map((id: number) => sweep.corrupt[id]),
            c.corrupt_last_logits_tracked
          )
        ).toBeLessThan(RELATIVE);
      }
    );

    it("patching one (layer, position) with a trace edit equals that run of the sweep", async () => {
      const c = ref.case("patch_resid");
      const hook = c.hook_template.replace("{layer}", "0");
      const clean = (await model.trace(c.clean, [hook]))[hook];
      const {logits} = await model.trace(c.corrupt, (m) => ({logits: m.lm_head.output}), {
        edits: [{hook, op: "set", value: clean, positions: [2]}]
      });
      const V = model.config.vocabSize;
      expect(
        relativeError(
          logits.data.subarray(logits.data.length - V),
          ref.tensor("patch.resid.last_logits.layer0.pos2").data
        )
      ).toBeLessThan(RELATIVE);
    });

    it("ablating every head in turn (its slice of the output projection's input set to 0)", async () => {
      const c = ref.case("ablate_head");
      const sweep = await ablateHeads(model, c.text, {ids: c.tracked_ids, full: true, maxTokens: 40});
      expect(sweep.input_ids).toEqual(c.input_ids);
      expect(sweep.hooks[0]).toBe(c.hook_template.replace("{layer}", "0"));
      expect(relativeError(sweep.logits.data, ref.tensor("ablate_head.tracked_logits").data)).toBeLessThan(RELATIVE);
      expect(relativeError(sweep.full!.data, ref.tensor("ablate_head.last_logits").data)).toBeLessThan(RELATIVE);
      expect(
        relativeError(
          c.tracked_ids.map((id: number) => sweep.base[id]),
          c.base_last_logits_tracked
        )
      ).toBeLessThan(RELATIVE);
      // One head by hand, through the trace API: head 1 of the last layer, columns D … 2D-1, scaled by 0.
      const D = ref.json.head_dim;
      const L = ref.json.layers;
      const hook = c.hook_template.replace("{layer}", String(L - 1));
      const {logits} = await model.trace(c.text, (m) => ({logits: m.lm_head.output}), {
        edits: [{hook, op: "scale", value: 0, index: `[:, :, ${D}:${2 * D}]`}]
      });
      const V = model.config.vocabSize;
      const want = ref
        .tensor("ablate_head.last_logits")
        .data.subarray(((L - 1) * ref.json.heads + 1) * V, ((L - 1) * ref.json.heads + 2) * V);
      expect(relativeError(logits.data.subarray(logits.data.length - V), want)).toBeLessThan(RELATIVE);
    });

    it("zero-ablating layer 1's MLP, read downstream and at the hook itself", async () => {
      const c = ref.case("zero_mlp");
      const out = await model.trace(c.text, (m) => {
        const hookProxy = c.hook.split(".").reduce((p: any, k: string) => p[k], m);
        hookProxy.set(0);
        return {mlp: hookProxy, logits: m.lm_head.output};
      });
      expect(Array.from(out.mlp.data).every((v) => v === 0)).toBe(true);
      expect(relativeError(out.logits.data, ref.tensor("zero_mlp.logits").data)).toBeLessThan(RELATIVE);
    });

    it("steering: the vector, the first step's logits, and both steered generations, with and without the cache", async () => {
      const c = ref.case("steer");
      const vector = await steeringVector(model, c.hook, c.from, c.to);
      expect(relativeError(vector, ref.tensor("steer.vector").data)).toBeLessThan(RELATIVE);
      const {logits} = await model.trace(c.prompt, (m) => ({logits: m.lm_head.output}), {
        edits: [steeringEdit(c.hook, vector, 4)]
      });
      const V = model.config.vocabSize;
      expect(
        relativeError(logits.data.subarray(logits.data.length - V), ref.tensor("steer.first_step_logits").data)
      ).toBeLessThan(RELATIVE);
      for (const g of c.generations) {
        expect(g.min_top2_logit_margin).toBeGreaterThan(1e-3);
        for (const useCache of [true, false]) {
          const result = await steer(model, c.prompt, {
            hook: c.hook,
            from: c.from,
            to: c.to,
            alpha: g.alpha,
            maxNewTokens: 20,
            stopAtEos: false,
            useCache
          });
          expect(result.input_ids).toEqual(c.prompt_ids);
          expect(result.new_ids, `alpha ${g.alpha}, cache ${useCache}`).toEqual(g.new_ids);
        }
      }
    });
  });
});

describe("edits: the API around the references", () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(fixtureDir("mini-llama"));
  });
  afterAll(() => model?.dispose());

  it("a new value reuses the session; the plain forward pass is untouched", async () => {
    const hook = "model.layers.0.output";
    const plain = (await model.trace("Once upon a time", [hook]))[hook];
    const a = (await model.trace("Once upon a time", [hook], {edits: [{hook, op: "add", value: 1}]}))[hook];
    const b = (await model.trace("Once upon a time", [hook], {edits: [{hook, op: "add", value: 2, positions: [-1]}]}))[
      hook
    ];
    const d = plain.shape[2];
    a.data.forEach((v, i) => expect(v).toBeCloseTo(plain.data[i] + 1, 5));
    b.data.forEach((v, i) => expect(v).toBeCloseTo(plain.data[i] + (i >= plain.data.length - d ? 2 : 0), 5));
    const again = (await model.trace("Once upon a time", [hook]))[hook];
    expect(Array.from(again.data)).toEqual(Array.from(plain.data));
    expect((model as unknown as {variants: Map<string, unknown>}).variants.size).toBe(2); // positions add an axis: a second structure
  });

  it("several edits at one hook compose in order; a range of the last axis", async () => {
    const hook = "model.layers.1.mlp.output";
    const plain = (await model.trace("a is a", [hook]))[hook];
    const out = (
      await model.trace("a is a", [hook], {
        edits: [
          {hook, op: "scale", value: 2, range: [4, 8]},
          {hook, op: "set", value: 5, index: [null, 0]}
        ]
      })
    )[hook];
    const d = plain.shape[2];
    out.data.forEach((v, i) => {
      const [t, j] = [Math.floor(i / d), i % d];
      const want = t === 0 ? 5 : j >= 4 && j < 8 ? 2 * plain.data[i] : plain.data[i];
      expect(v).toBeCloseTo(want, 5);
    });
  });

  it("clear errors: an unknown hook, a weight, a value that does not broadcast, prompts of different lengths", async () => {
    await expect(
      model.trace("a", ["lm_head.output"], {edits: [{hook: "model.layers.9.output", op: "set", value: 0}]})
    ).rejects.toThrow(/layers 0 to 1/);
    await expect(
      model.trace("a", ["lm_head.output"], {edits: [{hook: "model.norm.weight", op: "set", value: 0}]})
    ).rejects.toThrow(/is a weight/);
    await expect(
      model.trace("a is a", ["lm_head.output"], {edits: [{hook: "model.layers.0.output", op: "set", value: [1, 2, 3]}]})
    ).rejects.toThrow(/model\.layers\.0\.output.*broadcast/);
    await expect(patchSweep(model, "The city Paris", "The town of Rome is")).rejects.toThrow(
      /as many tokens.*clean is \d+.*corrupt \d+/
    );
    await expect(
      model.trace("a", ["lm_head.output"], {
        edits: [{hook: "model.layers.0.self_attn.attn_weights", op: "set", value: 0}]
      })
    ).rejects.toThrow(/cannot be edited/);
  });

  it("an index outside its axis is an error naming the hook, the axis, the index and the size, as PyTorch's IndexError", async () => {
    const hook = "model.layers.1.mlp.output";
    const trace = (edit: Record<string, unknown>) =>
      model.trace("a is a", [hook], {edits: [{hook, op: "set", value: 0, ...edit}]});
    const {input_ids, [hook]: plain} = await model.trace("a is a", [hook]);
    const [T, d] = [input_ids.length, plain.shape[2]];
    await expect(trace({index: "[:, 99]"})).rejects.toThrow(
      new RegExp(`edit at ${hook}: index 99 is out of bounds for axis 1 \\(token positions\\) with size ${T}`)
    );
    await expect(trace({index: `[:, ${-T - 1}]`})).rejects.toThrow(/index -\d+ is out of bounds for axis 1/);
    await expect(trace({index: "[:, :, 9999]"})).rejects.toThrow(
      new RegExp(`edit at ${hook}: index 9999 is out of bounds for axis 2 \\(the last\\) with size ${d}`)
    );
    await expect(trace({positions: [0, T]})).rejects.toThrow(new RegExp(`index ${T} is out of bounds for axis 1`));
    await expect(trace({range: [d - 2, d + 2]})).rejects.toThrow(
      new RegExp(`range \\[${d - 2}, ${d + 2}\\) is not inside axis 2 \\(the last\\), of size ${d}`)
    );
    // The pick's .set(value, where) goes the same way.
    await expect(
      model.trace("a is a", (m) => m.model.layers[1].mlp.output.set(0, {positions: [T + 5]}))
    ).rejects.toThrow(new RegExp(`${hook}: index ${T + 5} is out of bounds`));
  });

  it("slices clamp as PyTorch's do; negative indices count from the end", async () => {
    const hook = "model.layers.1.mlp.output";
    const run = async (index: string) =>
      Array.from((await model.trace("a is a", [hook], {edits: [{hook, op: "set", value: 0, index}]}))[hook].data);
    const {input_ids, [hook]: plain} = await model.trace("a is a", [hook]);
    const [T, d] = [input_ids.length, plain.shape[2]];
    expect(await run("[:, 1:99]")).toEqual(await run(`[:, 1:${T}]`));
    expect(await run("[:, -99:1]")).toEqual(await run("[:, 0]"));
    expect(await run("[:, -1]")).toEqual(await run(`[:, ${T - 1}]`));
    expect(await run("[:, :, 60:9999]")).toEqual(await run(`[:, :, 60:${d}]`));
    const zeroed = await run("[:, 1:99]");
    zeroed.forEach((v, i) => expect(v).toBe(i < d ? plain.data[i] : 0));
  });

  it("generation: positions count in the whole sequence it may reach; past its end they are an error", async () => {
    const hook = "model.layers.0.output";
    const prompt = model.encodeInput("a is a").ids;
    const n = 3;
    const edit = (position: number) => [{hook, op: "add" as const, value: 1, positions: [position]}];
    const reached = await model.generate(prompt, {
      maxNewTokens: n,
      stopAtEos: false,
      edits: edit(prompt.length + n - 1)
    });
    expect(reached.new_ids).toHaveLength(n);
    await expect(
      model.generate(prompt, {maxNewTokens: n, stopAtEos: false, edits: edit(prompt.length + n)})
    ).rejects.toThrow(
      new RegExp(`${hook}: index ${prompt.length + n} is out of bounds for axis 1 .* size ${prompt.length + n}`)
    );
  });

  it("the three patching sweeps share one session", async () => {
    const variants = (model as unknown as {variants: Map<string, unknown>}).variants;
    const before = variants.size;
    for (const kind of ["resid", "attn", "mlp"] as const)
      await patchSweep(model, "The city Paris", "The city Rome", kind, {ids: [1, 2]});
    expect(variants.size).toBe(before + 1);
  });

  it("the CLI's edit syntax", () => {
    expect(parseEdit("model.layers.1.mlp.output = 0")).toEqual({
      hook: "model.layers.1.mlp.output",
      op: "set",
      value: 0
    });
    expect(parseEdit("transformer.h.0.attn.c_proj.input[:, :, 16:24] *= 0.5")).toEqual({
      hook: "transformer.h.0.attn.c_proj.input",
      op: "scale",
      value: 0.5,
      index: [null, null, {start: 16, stop: 24}]
    });
    expect(parseEdit("model.layers.0.output[:, -1] += -2").index).toEqual([null, -1]);
    expect(parseIndex("[0, 2:]")).toEqual([0, {start: 2, stop: undefined}]);
    expect(() => parseEdit("model.layers.0.output += x")).toThrow(/not a number/);
    expect(() => parseEdit("model.layers.0.output[::2] = 1")).toThrow(/cannot read/);
  });

  it("packing: each sequence sees the shared past before its start and its own earlier tokens", () => {
    const {ids, offsets, feeds} = pack(
      [
        {tokens: [7, 8], start: 1},
        {tokens: [9], start: 2}
      ],
      3
    );
    expect(ids).toEqual([7, 8, 9]);
    expect(offsets).toEqual([0, 2]);
    expect(Array.from(feeds.position_ids.data as BigInt64Array, Number)).toEqual([1, 2, 2]);
    expect(Array.from(feeds.logits_index.data as BigInt64Array, Number)).toEqual([1, 2]);
    // rows: 3 past keys, then the 3 packed tokens; 0 = may look
    expect(Array.from(feeds.attention_mask.data as Uint8Array)).toEqual([
      0, 1, 1, 0, 1, 1, 0, 1, 1, 0, 0, 1, 0, 0, 1, 1, 1, 0
    ]);
  });

  it("default tracked ids: the clean run's top 4, then the corrupt run's not already there", () => {
    expect(defaultIds([5, 4, 3, 2, 1, 0], [0, 1, 2, 3, 4, 5], 2)).toEqual([0, 1, 5, 4]);
  });
});
