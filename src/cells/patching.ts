/**
 * Activation patching, embeddable: the corrupt prompt run once per (layer, position) with one block's output
 * there set to the clean run's value (packed into few batched runs), as a heatmap of how much each patch moved
 * the logit difference of two answers away from the corrupt run's.
 *
 *   const module = new Runtime().module(define, Inspector.into(element));
 *   module.redefine("kind", "attn");
 *
 * Inputs (redefinable): model, hub, models, backend (see shared.ts), clean, corrupt (null: the model's default
 * pair), answers (null: the pair's; else two words, e.g. [" Mary", " John"]), kind ("resid", "attn" or "mlp").
 * Shown: `heatmap`; `patching` holds the sweep's cells.
 */
import type * as PlotModule from "@observablehq/plot";
import type {PatchingView} from "../analysis/inside-model.js";
import type {PatchKind} from "../analysis/patching.js";
import type {WorkerModel as Model} from "../runtime/worker-model.js";
import {caption, cell, element} from "./shared.js";
import {sweepPlot} from "../views/sweep.js";
import {PATCHING} from "../defaults.js";

export default cell({
  inputs: {clean: null, corrupt: null, answers: null, kind: PATCHING.kind.default},
  computed: {
    patching: [
      ["loaded", "clean", "corrupt", "answers", "kind"],
      async (
        model: Model,
        clean: string | null,
        corrupt: string | null,
        answers: [string, string] | null,
        kind: PatchKind
      ) => {
        // All three run in the model's worker.
        const pair = await model.analyse("defaultPair");
        const ids: [number, number] = answers
          ? [await model.analyse("firstToken", answers[0]), await model.analyse("firstToken", answers[1])]
          : pair.answers;
        return model.analyse("patchingView", clean ?? pair.clean, corrupt ?? pair.corrupt, {
          answers: ids,
          kinds: [kind]
        });
      }
    ]
  },
  shown: {name: "heatmap", from: ["patching"], measure: "embed-patching", draw: patchingFigure}
});

function patchingFigure(Plot: typeof PlotModule, model: Model, view: PatchingView): HTMLElement {
  const [{kind, hooks, cells}] = view.kinds;
  const T = view.pieces.length;
  const L = hooks.length;
  const show = (piece: string) => JSON.stringify(piece).slice(1, -1).replace(/ /g, "␣");
  return element(
    "figure",
    {class: "lmw-patching", "data-kind": kind, "data-layers": L, "data-tokens": T},
    element(
      "figcaption",
      {},
      `Patching ${kind}: change in logit(${show(view.answer.token)}) − logit(${show(view.other.token)}) (clean ${view.cleanMetric.toFixed(2)}, corrupt ${view.corruptMetric.toFixed(2)})`
    ),
    sweepPlot(Plot, cells, {
      columns: view.pieces.map(show),
      columnLabel: "position",
      layers: L,
      label: "change in logit difference"
    }),
    element("small", {}, caption(model))
  );
}
