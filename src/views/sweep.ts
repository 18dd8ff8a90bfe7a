/**
 * A patching or ablation sweep's plot: layers × positions (patching) or layers × heads (ablation), the value on
 * a diverging scale, a tip naming each cell. Plot comes in as an argument: the pages import it, the embeddable
 * cells load it lazily (src/cells/shared.ts says why), and both draw the same plot.
 */
import type * as PlotModule from "@observablehq/plot";
import type {SweepCell} from "../analysis/inside-model.js";

export interface SweepOptions {
  /** Column labels: the corrupt prompt's pieces (patching) or head numbers (ablation). */
  columns: readonly string[];
  columnLabel: string;
  layers: number;
  /** The colour scale's label and symmetric extent. */
  label: string;
  extent?: number;
  width?: number;
  title?: string;
}

export function sweepPlot(
  Plot: typeof PlotModule,
  cells: readonly SweepCell[],
  {columns, columnLabel, layers, label, extent, width = 900, title}: SweepOptions
): (SVGSVGElement | HTMLElement) & {value?: unknown} {
  const N = columns.length;
  const max = extent ?? Math.max(1e-6, ...cells.map((c) => Math.abs(c.value)));
  const range = (n: number) => Array.from({length: n}, (_, i) => i);
  return Plot.plot({
    title,
    width: Math.min(width, 80 + Math.max(24, Math.min(60, (width - 80) / N)) * N),
    height: 40 + Math.max(10, Math.min(22, 600 / layers)) * layers + 60,
    marginLeft: 60,
    marginBottom: 60,
    x: {
      domain: range(N),
      tickFormat: (i: number) => columns[i],
      tickRotate: N > 8 ? -35 : 0,
      label: `${columnLabel} →`
    },
    y: {domain: range(layers).reverse(), label: "↑ layer"},
    color: {type: "linear", scheme: "rdbu", domain: [-max, max], label, legend: true},
    marks: [
      Plot.cell(cells, {x: "index", y: "layer", fill: "value", inset: 0.5}),
      Plot.tip(
        cells,
        Plot.pointer({
          x: "index",
          y: "layer",
          title: (d: SweepCell) =>
            `layer ${d.layer}, ${columnLabel} ${d.index} (${columns[d.index]})\n${label}: ${d.value.toFixed(3)}\n` +
            `metric ${d.metric.toFixed(3)}; top: ${d.top
              .slice(0, 3)
              .map((t) => JSON.stringify(t.token))
              .join(", ")}`
        })
      )
    ]
  });
}
