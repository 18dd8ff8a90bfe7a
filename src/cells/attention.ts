/**
 * An attention pattern, embeddable: the weights one head of one layer gives each earlier token, as a
 * heatmap with the tokens on both axes. One forward pass per (model, prompt) fetches every layer's
 * weights; changing `layer` or `head` only re-slices them.
 *
 *   const module = new Runtime().module(define, Inspector.into(element));
 *   module.redefine("layer", 3);
 *
 * Inputs (redefinable): model, hub, models, backend (see shared.ts), prompt, layer, head. Shown: `heatmap`.
 */
import type * as PlotModule from "@observablehq/plot";
import type {AttentionTrace} from "../analysis/attention.js";
import {visible} from "../analysis/tokens.js";
import type {WorkerModel} from "../runtime/worker-model.js";
import {CELLS} from "../defaults.js";
import {caption, cell, element} from "./shared.js";

interface Cell {
  query: number;
  key: number;
  weight: number;
}

export default cell({
  inputs: {prompt: CELLS.attention.prompt, layer: CELLS.attention.layer, head: CELLS.attention.head},
  computed: {
    // The lane: a prompt typed on supersedes the older one still waiting for the model.
    attention: [
      ["loaded", "prompt"],
      (model: WorkerModel, prompt: string) => model.lane("embed-attention").analyse("attentionTrace", prompt)
    ]
  },
  shown: {name: "heatmap", from: ["attention", "layer", "head"], measure: "embed-attention", draw: heatmapView}
});

function heatmapView(
  Plot: typeof PlotModule,
  model: WorkerModel,
  {pieces, layers}: AttentionTrace,
  layer: number,
  head: number
): HTMLElement {
  const {numLayers, numHeads} = model.config;
  if (!Number.isInteger(layer) || layer < 0 || layer >= numLayers)
    throw new RangeError(`layer ${layer}: ${model.id} has layers 0 to ${numLayers - 1}`);
  if (!Number.isInteger(head) || head < 0 || head >= numHeads)
    throw new RangeError(`head ${head}: ${model.id} has heads 0 to ${numHeads - 1}`);
  const T = pieces.length;
  const data = layers[layer].data; // [1, heads, T, T]
  const cells: Cell[] = [];
  for (let q = 0; q < T; q++)
    for (let k = 0; k <= q; k++) cells.push({query: q, key: k, weight: data[(head * T + q) * T + k]});
  // As the site shows tokens: a leading space as "·", whatever the tokenizer's own marker ("Ġ", "▁").
  const label = (i: number) => visible(pieces[i]!);
  const positions = Array.from({length: T}, (_, i) => i);
  return element(
    "figure",
    {class: "lmw-attention", "data-layer": layer, "data-head": head, "data-tokens": T},
    element(
      "figcaption",
      {},
      `Layer ${layer}, head ${head}: how much each token (row) attends to each earlier token (column)`
    ),
    Plot.plot({
      width: Math.min(640, 28 * T + 120),
      height: Math.min(620, 28 * T + 100),
      marginLeft: 80,
      marginBottom: 70,
      x: {domain: positions, tickFormat: label, tickRotate: -45, label: "key →"},
      y: {domain: positions, tickFormat: label, label: "↓ query"},
      color: {scheme: "blues", domain: [0, 1], legend: true, label: "attention"},
      marks: [
        Plot.cell(cells, {x: "key", y: "query", fill: "weight", inset: 0.5, title: (d: Cell) => d.weight.toFixed(3)})
      ]
    }),
    element("small", {}, caption(model))
  );
}
