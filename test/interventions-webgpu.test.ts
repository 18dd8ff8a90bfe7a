/**
 * Interventions on onnxruntime-web's WebGPU backend in Node (Dawn; here on Chromium's SwiftShader: right
 * answers, no timings), stories260K against its references: the logit lens, a packed patching sweep over the
 * corrupt run's cache (which stays on the GPU between runs), head ablation and the steered generations.
 */
// First: points Dawn at a Vulkan driver before anything starts it.
import {available} from "./helpers/swiftshader.js";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {RELATIVE, fixtureDir, relativeError} from "./helpers/fixtures.js";
import {readInterventions} from "./helpers/interventions.js";

const {loadModel} = await import("../src/node.js");
const {logitLens} = await import("../src/analysis/lens.js");
const {ablateHeads, patchSweep} = await import("../src/analysis/patching.js");
const {steer} = await import("../src/analysis/steering.js");
type Model = Awaited<ReturnType<typeof loadModel>>;

describe.skipIf(!available)("interventions on WebGPU in Node (Dawn)", () => {
  const ref = readInterventions("stories260K");
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(fixtureDir("stories260K"), {runtime: "webgpu"});
    // SwiftShader compiles every shader on the first run: minutes on a busy machine, outside the tests' timing.
    await model.trace("a is a", ["lm_head.output"]);
  }, 900_000);
  afterAll(() => model?.dispose());

  it("logit lens, patching (resid), head ablation", {timeout: 600_000}, async () => {
    const lens = await logitLens(model, ref.case("logit_lens").text, {k: 10});
    expect(Array.from(lens.topIds.data)).toEqual(Array.from(ref.tensor("lens.top10_ids").data));
    expect(relativeError(lens.topLogprobs.data, ref.tensor("lens.top10_logprobs").data)).toBeLessThan(RELATIVE);
    const c = ref.case("patch_resid");
    const sweep = await patchSweep(model, c.clean, c.corrupt, "resid", {ids: c.tracked_ids});
    expect(relativeError(sweep.logits.data, ref.tensor("patch.resid.tracked_logits").data)).toBeLessThan(RELATIVE);
    const a = ref.case("ablate_head");
    const ablation = await ablateHeads(model, a.text, {ids: a.tracked_ids});
    expect(relativeError(ablation.logits.data, ref.tensor("ablate_head.tracked_logits").data)).toBeLessThan(RELATIVE);
  });

  it("steered generation on the KV-cached path (the cache stays on the GPU)", {timeout: 600_000}, async () => {
    const c = ref.case("steer");
    for (const g of c.generations) {
      const result = await steer(model, c.prompt, {
        hook: c.hook,
        from: c.from,
        to: c.to,
        alpha: g.alpha,
        maxNewTokens: 20,
        stopAtEos: false
      });
      expect(result.new_ids, `alpha ${g.alpha}`).toEqual(g.new_ids);
    }
  });
});
