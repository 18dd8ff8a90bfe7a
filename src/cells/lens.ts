/**
 * The logit lens, embeddable: every layer's output read through the model's own final norm and unembedding,
 * a heatmap of layers × positions, each cell the top token with its probability as colour. One forward pass
 * per (model, prompt); the top-k is computed inside the graph.
 *
 *   const module = new Runtime().module(define, Inspector.into(element));
 *   module.redefine("prompt", "The Eiffel Tower is in the city of");
 *
 * Inputs (redefinable): model, hub, models, backend (see shared.ts), prompt, k. Shown: `heatmap`; `lens`
 * holds the cells ({layer, position, token, prob, top}).
 */
import type * as PlotModule from "@observablehq/plot";
import type {LensCell, LensView} from "../analysis/inside-model.js";
import {LOGIT_LENS} from "../defaults.js";
import type {WorkerModel as Model} from "../runtime/worker-model.js";
import {caption, cell, element} from "./shared.js";

export default cell({
  inputs: {prompt: LOGIT_LENS.prompt, k: LOGIT_LENS.k.default},
  computed: {
    lens: [["loaded", "prompt", "k"], (model: Model, prompt: string, k: number) => model.analyse("lensView", prompt, k)]
  },
  shown: {name: "heatmap", from: ["lens"], measure: "embed-lens", draw: lensFigure}
});

function lensFigure(Plot: typeof PlotModule, model: Model, lens: LensView): HTMLElement {
  const T = lens.pieces.length;
  const L = lens.hooks.length;
  const show = (piece: string) => JSON.stringify(piece).slice(1, -1).replace(/ /g, "␣");
  const positions = Array.from({length: T}, (_, i) => i);
  return element(
    "figure",
    {class: "lmw-lens", "data-layers": L, "data-tokens": T},
    element("figcaption", {}, "The top token at each layer (rows) and position (columns), its probability as colour"),
    Plot.plot({
      width: Math.min(900, 70 * T + 80),
      height: 24 * L + 110,
      marginLeft: 50,
      marginBottom: 60,
      x: {domain: positions, tickFormat: (i: number) => show(lens.pieces[i]), tickRotate: -35, label: "position →"},
      y: {domain: Array.from({length: L}, (_, l) => L - 1 - l), label: "↑ layer"},
      color: {scheme: "viridis", domain: [0, 1], legend: true, label: "probability"},
      marks: [
        Plot.cell(lens.cells, {x: "position", y: "layer", fill: "prob", inset: 0.5}),
        Plot.text(lens.cells, {
          x: "position",
          y: "layer",
          text: (d: LensCell) => show(d.token).slice(0, 9),
          fill: (d: LensCell) => (d.prob > 0.55 ? "black" : "white"),
          fontSize: 10
        }),
        Plot.tip(
          lens.cells,
          Plot.pointer({
            x: "position",
            y: "layer",
            title: (d: LensCell) => d.top.map((t) => `${JSON.stringify(t.token)} ${t.prob.toFixed(3)}`).join("\n")
          })
        )
      ]
    }),
    element("small", {}, caption(model))
  );
}
