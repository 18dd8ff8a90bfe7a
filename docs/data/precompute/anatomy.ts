// Page 3, precomputed for each site model: the lecture's module (layer 10's MLP gate, clamped) — its weight
// as a heatmap (block-averaged to ≤ 96 × 96) with shape and statistics, its output for the two default
// prompts, the weights-vs-activations equality check — and the residual stream of prompt A at that layer.
import {ANATOMY_DEFAULTS, activationMatrix, anatomyTrace, defaultModule, equalityCheck, summarizeWeight} from "../../../src/analysis/anatomy.js";
import {clampIndex, residualHook} from "../../../src/analysis/hooks.js";
import {row} from "../../../src/analysis/index.js";
import type {Downsampled} from "../../../src/analysis/matrix.js";
import {precompute} from "../site-models.js";

const CELLS = 96; // the page draws ≤ 256 a side live; the precomputed heatmap keeps the JSON small
const round = (v: number) => Number(v.toPrecision(4));
const compact = ({data, ...rest}: Downsampled) => ({...rest, data: Array.from(data, (v) => Number(v.toPrecision(3)))});

export default precompute({
  file: "anatomy.json",
  head: {defaults: ANATOMY_DEFAULTS, cells: CELLS},
  async compute(model) {
    const module = defaultModule(model);
    const layer = clampIndex(ANATOMY_DEFAULTS.layer, model.config.numLayers);
    const [a, b] = [await anatomyTrace(model, ANATOMY_DEFAULTS.promptA), await anatomyTrace(model, ANATOMY_DEFAULTS.promptB)];
    const [weightA, weightB] = [await model.weight(`${module}.weight`), await model.weight(`${module}.weight`)];
    const output = `${module}.output`;
    const weight = summarizeWeight(`${module}.weight`, weightA, CELLS);
    const hook = residualHook(model.config, layer);
    const resid = a.tensors[hook]!;
    return {
      module,
      layer,
      weight: {...weight, heatmap: compact(weight.heatmap)},
      prompts: [a, b].map((t) => ({prompt: t.prompt, pieces: t.pieces, shape: t.tensors[output]!.shape, output: compact(activationMatrix(t.tensors[output]!, CELLS))})),
      equality: equalityCheck(weightA, weightB, a.tensors[output]!, b.tensors[output]!),
      residual: {hook, shape: resid.shape, vectors: a.pieces.map((_, t) => Array.from(row(resid, 0, t), round))}
    };
  }
});
