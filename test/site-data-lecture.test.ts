/**
 * The lecture pages' data loaders (docs/data/{anatomy,context,attention}.json.ts), run as the build runs them,
 * against the engine's own computations on the same models (loaded through docs/data/site-models.ts).
 */
import {beforeAll, describe, expect, it} from "vitest";
import {
  activationMatrix,
  ANATOMY_DEFAULTS,
  anatomyTrace,
  defaultModule,
  summarizeWeight
} from "../src/analysis/anatomy.js";
import {ATTENTION_DEFAULTS, attentionTrace, defaultLayerHead, parameterShares} from "../src/analysis/attention.js";
import {
  CONTEXT_DEFAULTS,
  checkAtLayer,
  contextTrace,
  exerciseSimilarity,
  wordSimilarity
} from "../src/analysis/context.js";
import {residualHook} from "../src/analysis/hooks.js";
import {matrix, row} from "../src/analysis/index.js";
import {loadSiteModel, siteModels} from "../docs/data/site-models.js";
import {builtData} from "./helpers/site.js";

/** A loader's output as the site build shipped it (the build shared with the browser tests). */
const loader = (name: string): Promise<any> => builtData(`data/precomputed/${name}.json`);

/** Every number within `rel` of the reference (relative to the reference's largest magnitude). */
function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, rel = 1e-3): void {
  expect(got.length).toBe(want.length);
  let scale = 0,
    worst = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]!));
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
  expect(worst).toBeLessThanOrEqual(rel * (scale || 1));
}

const data: Record<string, any> = {};
beforeAll(async () => {
  const [anatomy, context, attention] = await Promise.all(["anatomy", "context", "attention"].map(loader));
  Object.assign(data, {anatomy, context, attention});
});

const ids = () => siteModels().map((m) => m.id);

describe("lecture data loaders", () => {
  it("cover every site model", () => {
    expect(ids().length).toBeGreaterThan(0);
    for (const d of Object.values(data)) expect(d.models.map((m: {id: string}) => m.id)).toEqual(ids());
  });

  it("anatomy.json: the weight heatmap, both outputs, the check and the residual vectors equal the engine's", async () => {
    for (const id of ids()) {
      const stored = data.anatomy.models.find((m: {id: string}) => m.id === id);
      const model = await loadSiteModel(id);
      expect(stored.weightsOrigin).toBe(model.weightsOrigin);
      const module = defaultModule(model);
      expect(stored.module).toBe(module);
      const weight = summarizeWeight(`${module}.weight`, await model.weight(`${module}.weight`), data.anatomy.cells);
      expect(stored.weight.shape).toEqual(weight.shape);
      expect(stored.weight.stats.mean).toBeCloseTo(weight.stats.mean, 9);
      expectClose(stored.weight.heatmap.data, weight.heatmap.data, 5e-3);
      const a = await anatomyTrace(model, ANATOMY_DEFAULTS.promptA);
      const b = await anatomyTrace(model, ANATOMY_DEFAULTS.promptB);
      [a, b].forEach((t, i) => {
        expect(stored.prompts[i].pieces).toEqual(t.pieces);
        expectClose(
          stored.prompts[i].output.data,
          activationMatrix(t.tensors[`${module}.output`]!, data.anatomy.cells).data,
          5e-3
        );
      });
      expect(stored.equality).toMatchObject({weightsIdentical: true, activationsIdentical: false});
      const resid = a.tensors[residualHook(model.config, stored.layer)]!;
      expect(stored.residual.shape).toEqual(resid.shape);
      a.pieces.forEach((_, t) => expectClose(stored.residual.vectors[t], row(resid, 0, t)));
    }
  });

  it("context.json: the check at every layer, the 'break' similarities and the exercise equal the engine's", async () => {
    for (const id of ids()) {
      const stored = data.context.models.find((m: {id: string}) => m.id === id);
      const model = await loadSiteModel(id);
      const [ca, cb] = [
        await contextTrace(model, CONTEXT_DEFAULTS.checkA),
        await contextTrace(model, CONTEXT_DEFAULTS.checkB)
      ];
      for (let l = 0; l < model.config.numLayers; l++) {
        const check = checkAtLayer(ca, cb, l);
        expect(stored.check.layers[l].holds).toBe(true);
        expect(stored.check.layers[l].positions.map((p: {identical: boolean}) => p.identical)).toEqual(
          check.positions.map((p) => p.identical)
        );
      }
      const traces = [];
      for (const s of CONTEXT_DEFAULTS.sentences) traces.push(await contextTrace(model, s));
      const points = wordSimilarity(traces, CONTEXT_DEFAULTS.word);
      expectClose(
        stored.similarity.map((p: {similarity: number}) => p.similarity),
        points.map((p) => p.similarity),
        1e-5
      );
      const yours = await contextTrace(model, CONTEXT_DEFAULTS.exercise);
      const t = stored.exercise.word.position;
      const mine = exerciseSimilarity(yours, t, traces, CONTEXT_DEFAULTS.word);
      expectClose(
        stored.exercise.byPosition[t].flat(),
        mine.map((p) => p.similarity),
        1e-5
      );
    }
  });

  it("attention.json: the shares and every head of the default layer equal the engine's; rows sum to 1", async () => {
    for (const id of ids()) {
      const stored = data.attention.models.find((m: {id: string}) => m.id === id);
      const model = await loadSiteModel(id);
      expect(stored.shares).toEqual(parameterShares(model.counts()));
      const {layer, head} = defaultLayerHead(model.config);
      expect([stored.layer, stored.head]).toEqual([layer, head]);
      const trace = await attentionTrace(model, ATTENTION_DEFAULTS.prompt);
      expect(stored.pieces).toEqual(trace.pieces);
      expect(stored.heads).toHaveLength(model.config.numHeads);
      stored.heads.forEach((rows: number[][], h: number) => {
        expectClose(rows.flat(), matrix(trace.layers[layer]!, 0, h).data);
        for (const r of rows) expect(r.reduce((x, y) => x + y, 0)).toBeCloseTo(1, 3);
      });
    }
  });
});
