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
import type {PatchingView, SweepCell} from "../analysis/inside-model.js";
import type {PatchKind} from "../analysis/patching.js";
import type {WorkerModel as Model} from "../runtime/worker-model.js";
import {
  caption,
  defineModelInputs,
  element,
  measureRedraw,
  type ObservableRuntime,
  type Observer,
  type RuntimeModule
} from "./shared.js";
import {PATCHING} from "../defaults.js";

export default function define(runtime: ObservableRuntime, observer: Observer): RuntimeModule {
  const main = runtime.module();
  defineModelInputs(main);
  main.variable().define("clean", [], () => null);
  main.variable().define("corrupt", [], () => null);
  main.variable().define("answers", [], () => null);
  main.variable().define("kind", [], () => PATCHING.kind.default);
  main
    .variable()
    .define(
      "patching",
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
    );
  main
    .variable(observer("heatmap"))
    .define(
      "heatmap",
      ["Plot", "loaded", "patching"],
      (Plot: typeof PlotModule, model: Model, patching: PatchingView) =>
        measureRedraw("embed-patching", () => patchingFigure(Plot, model, patching))
    );
  return main;
}

function patchingFigure(Plot: typeof PlotModule, model: Model, view: PatchingView): HTMLElement {
  const [{kind, hooks, cells}] = view.kinds;
  const T = view.pieces.length;
  const L = hooks.length;
  const show = (piece: string) => JSON.stringify(piece).slice(1, -1).replace(/ /g, "␣");
  const extent = Math.max(1e-6, ...cells.map((c) => Math.abs(c.value)));
  return element(
    "figure",
    {class: "lmw-patching", "data-kind": kind, "data-layers": L, "data-tokens": T},
    element(
      "figcaption",
      {},
      `Patching ${kind}: change in logit(${show(view.answer.token)}) − logit(${show(view.other.token)}) (clean ${view.cleanMetric.toFixed(2)}, corrupt ${view.corruptMetric.toFixed(2)})`
    ),
    Plot.plot({
      width: Math.min(900, 40 * T + 80),
      height: Math.max(10, Math.min(22, 600 / L)) * L + 110,
      marginLeft: 50,
      marginBottom: 60,
      x: {
        domain: Array.from({length: T}, (_, i) => i),
        tickFormat: (i: number) => show(view.pieces[i]),
        tickRotate: -35,
        label: "position →"
      },
      y: {domain: Array.from({length: L}, (_, l) => L - 1 - l), label: "↑ layer"},
      color: {
        type: "linear",
        scheme: "rdbu",
        domain: [-extent, extent],
        legend: true,
        label: "change in logit difference"
      },
      marks: [
        Plot.cell(cells, {x: "index", y: "layer", fill: "value", inset: 0.5}),
        Plot.tip(
          cells,
          Plot.pointer({
            x: "index",
            y: "layer",
            title: (d: SweepCell) =>
              `layer ${d.layer}, position ${d.index}: ${d.value.toFixed(3)}\ntop: ${d.top
                .slice(0, 3)
                .map((t) => JSON.stringify(t.token))
                .join(", ")}`
          })
        )
      ]
    }),
    element("small", {}, caption(model))
  );
}
