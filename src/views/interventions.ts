/**
 * Views of the "Inside the model" pages, on Observable Plot: the logit lens (layers × positions, each cell the
 * top token, its probability as colour), a patching sweep (layers × positions) and a head ablation sweep
 * (layers × heads), both on a diverging scale. A pointer tip names every cell; a click selects it (the figure's
 * `value`, with an `input` event, as an Observable input does), for a page to open that run's top-k.
 */
import * as Plot from "@observablehq/plot";
import type {LensCell, SweepCell} from "../analysis/inside-model.js";
import {tokenLabel} from "./tokens.js";
import {sweepPlot, type SweepOptions} from "./sweep.js";

const range = (n: number) => Array.from({length: n}, (_, i) => i);

export interface LensOptions {
  pieces: readonly string[];
  layers: number;
  width?: number;
  title?: string;
}

/** The logit lens: rows are layers (the first at the bottom, as the residual stream rises), columns positions. */
export function lensHeatmap(
  cells: readonly LensCell[],
  {pieces, layers, width = 900, title}: LensOptions
): HTMLElement {
  const T = pieces.length;
  const cellWidth = Math.max(36, Math.min(90, (width - 80) / T));
  const plot = Plot.plot({
    title,
    width: Math.min(width, 80 + cellWidth * T),
    height: 40 + 22 * layers + 60,
    marginLeft: 60,
    marginBottom: 60,
    x: {
      domain: range(T),
      tickFormat: (i: number) => tokenLabel(pieces[i]),
      tickRotate: -35,
      label: "position (the token read) →"
    },
    y: {domain: range(layers).reverse(), label: "↑ layer"},
    color: {type: "linear", scheme: "viridis", domain: [0, 1], label: "probability of the top token", legend: true},
    marks: [
      Plot.cell(cells, {x: "position", y: "layer", fill: "prob", inset: 0.5}),
      Plot.text(cells, {
        x: "position",
        y: "layer",
        text: (d: LensCell) => clip(tokenLabel(d.token), cellWidth),
        fill: (d: LensCell) => (d.prob > 0.55 ? "black" : "white"),
        fontSize: 10
      }),
      Plot.tip(
        cells,
        Plot.pointer({
          x: "position",
          y: "layer",
          title: (d: LensCell) =>
            `layer ${d.layer}, after ${JSON.stringify(pieces[d.position])}\n` +
            d.top.map((t) => `${JSON.stringify(t.token)}  ${t.prob.toFixed(3)}`).join("\n")
        })
      )
    ]
  });
  return selectable(plot, cells);
}

export type {SweepOptions} from "./sweep.js";

/** A sweep (views/sweep.ts draws it), its cells selectable. */
export function sweepHeatmap(cells: readonly SweepCell[], options: SweepOptions): HTMLElement {
  return selectable(sweepPlot(Plot, cells, options), cells);
}

/** A click on the plot selects the cell under the pointer tip: `figure.value` (null until then), announced by an `input` event. */
function selectable<T>(plot: (SVGSVGElement | HTMLElement) & {value?: unknown}, _cells: readonly T[]): HTMLElement {
  const figure = document.createElement("div") as HTMLDivElement & {value: T | null};
  figure.className = "lmw-selectable";
  figure.append(plot);
  // null, not undefined: Framework's view() waits for a first value that is not undefined.
  figure.value = null;
  // Plot announces every pointer move with an input event of its own: kept inside, so that only a click
  // (a new selection) re-runs what depends on this view.
  plot.addEventListener("input", (event) => event.stopPropagation());
  plot.addEventListener("click", () => {
    // Plot.pointer sets the plot's value to the cell it points at.
    const picked = (plot as {value?: T}).value;
    if (picked === undefined) return;
    figure.value = picked;
    figure.dispatchEvent(new Event("input", {bubbles: true}));
  });
  return figure;
}

function clip(text: string, width: number): string {
  const max = Math.max(2, Math.floor(width / 6.5));
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}
