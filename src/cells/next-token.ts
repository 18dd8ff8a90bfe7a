/**
 * The next token, embeddable: for `prompt`, the model's `k` most likely next tokens with their
 * probabilities. One forward pass per (model, prompt).
 *
 *   new Runtime().module(define, Inspector.into(element)).redefine("prompt", "Once upon a time");
 *
 * Inputs (redefinable): model, hub, models, backend (see shared.ts), prompt, k. Shown: `nextTokens`.
 */
import type * as PlotModule from "@observablehq/plot";
import {topNext, type Candidate} from "../analysis/tokens.js";
import type {Tensor} from "../runtime/tensor.js";
import type {WorkerModel} from "../runtime/worker-model.js";
import {CELLS} from "../defaults.js";
import {caption, cell, element} from "./shared.js";

export default cell({
  inputs: {prompt: CELLS.nextToken.prompt, k: CELLS.nextToken.k},
  computed: {
    // The lane: a prompt typed on supersedes the older one still waiting for the model.
    logits: [
      ["loaded", "prompt"],
      async (model: WorkerModel, prompt: string) =>
        (await model.lane("embed-next-token").trace(prompt, ["lm_head.output"]))["lm_head.output"]!
    ],
    // A new k re-ranks the logits already there: no forward pass.
    candidates: [
      ["loaded", "logits", "k"],
      (model: WorkerModel, logits: Tensor, k: number) => topNext(model, logits, k)
    ]
  },
  shown: {name: "nextTokens", from: ["prompt", "candidates"], measure: "embed-next-token", draw: nextTokensView}
});

function nextTokensView(
  Plot: typeof PlotModule,
  model: WorkerModel,
  prompt: string,
  candidates: Candidate[]
): HTMLElement {
  return element(
    "figure",
    {class: "lmw-next-token", "data-prompt": prompt, "data-top": candidates[0]?.piece ?? ""},
    element("figcaption", {}, "After ", element("q", {}, prompt), ", the next token is most likely:"),
    Plot.plot({
      // Room for the longest token: about 7 px a character at the axis' 10 px font.
      marginLeft: Math.max(60, 8 + 7 * Math.max(0, ...candidates.map((d) => d.shown.length))),
      marginRight: 50,
      height: 24 * candidates.length + 40,
      x: {label: "probability", domain: [0, Math.max(0.05, candidates[0]?.probability ?? 0)]},
      y: {
        label: null,
        domain: candidates.map((d) => d.rank),
        tickFormat: (rank: number) => candidates[rank - 1]!.shown
      },
      marks: [
        Plot.barX(candidates, {x: "probability", y: "rank", fill: "steelblue"}),
        Plot.text(candidates, {
          x: "probability",
          y: "rank",
          text: (d: Candidate) => `${(d.probability * 100).toFixed(1)}%`,
          dx: 4,
          textAnchor: "start"
        }),
        Plot.ruleX([0])
      ]
    }),
    element("small", {}, caption(model))
  );
}
