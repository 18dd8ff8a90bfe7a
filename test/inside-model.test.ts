/**
 * The "Inside the model" pages' computations (src/analysis/inside-model.ts), on the trained stories260K:
 * what the pages and their data loaders show agrees with the engine and with the intervention references.
 */
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {loadModel, type Model} from "../src/node.js";
import {
  ablationView,
  defaultPair,
  firstToken,
  lensView,
  patchingView,
  steerDefaults,
  steeringView
} from "../src/analysis/inside-model.js";
import {argmax} from "../src/analysis/index.js";
import {readInterventions} from "./helpers/interventions.js";
import {fixtureDir} from "./helpers/fixtures.js";

describe("inside the model, on stories260K", () => {
  let model: Model;
  const ref = readInterventions("stories260K");
  beforeAll(async () => {
    model = await loadModel(fixtureDir("stories260K"));
  });
  afterAll(() => model?.dispose());

  it("lens cells: the last layer's top token is the model's own prediction, probabilities sorted", async () => {
    const prompt = "Once upon a time";
    const view = await lensView(model, prompt, 5);
    const L = model.config.numLayers;
    const {logits} = await model.trace(prompt, (m) => ({logits: m.lm_head.output}));
    const V = model.config.vocabSize;
    view.pieces.forEach((_, t) => {
      const cell = view.cells.find((c) => c.layer === L - 1 && c.position === t)!;
      expect(cell.id).toBe(argmax(logits.data.subarray(t * V, (t + 1) * V)));
      expect(cell.top.map((x) => x.prob)).toEqual([...cell.top.map((x) => x.prob)].sort((a, b) => b - a));
    });
    expect(view.cells).toHaveLength(L * view.pieces.length);
  });

  it("patching: the default pair is equally long; before the first differing token nothing changes; the metric is the reference's", async () => {
    const pair = defaultPair(model);
    expect(model.tokenizer.encode(pair.clean).ids.length).toBe(model.tokenizer.encode(pair.corrupt).ids.length);
    const c = ref.case("patch_resid");
    const [a, b] = c.tracked_ids;
    const view = await patchingView(model, c.clean, c.corrupt, {answers: [a, b], kinds: ["resid"]});
    expect(view.cleanMetric).toBeCloseTo(c.clean_last_logits_tracked[0] - c.clean_last_logits_tracked[1], 3);
    expect(view.corruptMetric).toBeCloseTo(c.corrupt_last_logits_tracked[0] - c.corrupt_last_logits_tracked[1], 3);
    const tracked = ref.tensor("patch.resid.tracked_logits");
    const n = c.tracked_ids.length;
    const T = c.clean_ids.length;
    const differs = c.clean_ids.findIndex((id: number, i: number) => id !== c.corrupt_ids[i]);
    for (const cell of view.kinds[0].cells) {
      const r = cell.layer * T + cell.index;
      expect(cell.metric).toBeCloseTo(tracked.data[r * n] - tracked.data[r * n + 1], 3);
      if (cell.index < differs) expect(Math.abs(cell.value)).toBeLessThan(1e-3);
    }
    // Patching the whole residual stream at the last layer's last position restores the clean run.
    const last = view.kinds[0].cells.find((x) => x.layer === model.config.numLayers - 1 && x.index === T - 1)!;
    expect(last.metric).toBeCloseTo(view.cleanMetric, 3);
  });

  it("ablation: one cell per (layer, head), against the reference's tracked logits", async () => {
    const c = ref.case("ablate_head");
    const [a, b] = c.tracked_ids;
    const view = await ablationView(model, c.text, {answers: [a, b]});
    const tracked = ref.tensor("ablate_head.tracked_logits");
    const n = c.tracked_ids.length;
    const H = model.config.numHeads;
    expect(view.cells).toHaveLength(model.config.numLayers * H);
    for (const cell of view.cells)
      expect(cell.metric).toBeCloseTo(
        tracked.data[(cell.layer * H + cell.index) * n] - tracked.data[(cell.layer * H + cell.index) * n + 1],
        3
      );
    expect(view.baseMetric).toBeCloseTo(c.base_last_logits_tracked[0] - c.base_last_logits_tracked[1], 3);
  });

  it("steering: the page's steered continuation is the reference's; answer words map to their first token", async () => {
    const c = ref.case("steer");
    const layer = Number(/layers\.(\d+)\./.exec(c.hook)![1]);
    // Read off the config, not the model's name: a 512-token vocabulary gets sentences, a large one ActAdd's words.
    expect(steerDefaults(model)).toMatchObject({from: c.from, to: c.to, prompt: c.prompt});
    expect(steerDefaults(model).layer).toBe(Math.floor(model.config.numLayers / 2));
    expect(steerDefaults({config: {numLayers: 12, vocabSize: 50257}})).toMatchObject({
      from: " Love",
      to: " Hate",
      layer: 6
    });
    const view = await steeringView(model, {
      prompt: c.prompt,
      from: c.from,
      to: c.to,
      alpha: 4,
      layer,
      maxNewTokens: 20
    });
    const want = c.generations.find((g: {alpha: number}) => g.alpha === 4).new_ids;
    // The continuation as it reads after the prompt (the page stops at end-of-sequence; these 20 never reach it).
    expect(want).not.toContain(2);
    const prompt = model.tokenizer.decode(c.prompt_ids, {skipSpecialTokens: true});
    expect(prompt + view.steered).toBe(model.tokenizer.decode([...c.prompt_ids, ...want], {skipSpecialTokens: true}));
    expect(model.tokenizer.idToPiece(firstToken(model, " Tom")).trim()).toBe("T");
  });
});
