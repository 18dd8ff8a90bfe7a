/**
 * The next token, embeddable: for `prompt`, the model's `k` most likely next tokens with their
 * probabilities. One forward pass per (model, prompt).
 *
 *   new Runtime().module(define, Inspector.into(element)).redefine("prompt", "Once upon a time");
 *
 * Inputs (redefinable): model, hub, models, backend (see shared.ts), prompt, k. Shown: `nextTokens`.
 */
import type * as PlotModule from "@observablehq/plot";
import {softmax, topK} from "../analysis/index.js";
import type {Model} from "../runtime/model.js";
import {caption, defineModelInputs, element, measureRedraw, type ObservableRuntime, type Observer, type RuntimeModule} from "./shared.js";

export interface NextToken {
  rank: number;
  id: number;
  token: string;
  probability: number;
}

export default function define(runtime: ObservableRuntime, observer: Observer): RuntimeModule {
  const main = runtime.module();
  defineModelInputs(main);
  main.variable().define("prompt", [], () => "Once upon a time, there was a little");
  main.variable().define("k", [], () => 10);
  main.variable().define("logits", ["loaded", "prompt"], async (model: Model, prompt: string) => {
    const {"lm_head.output": logits} = await model.trace(prompt, ["lm_head.output"]);
    const vocab = model.config.vocabSize;
    return logits.data.subarray(logits.data.length - vocab); // the last position's scores
  });
  main.variable().define("candidates", ["loaded", "logits", "k"], (model: Model, logits: Float32Array, k: number) => {
    const probs = softmax(logits);
    return topK(probs, k).map((id, i): NextToken => ({rank: i + 1, id, token: model.tokenizer.decode([id]), probability: probs[id]}));
  });
  main.variable(observer("nextTokens")).define(
    "nextTokens",
    ["Plot", "loaded", "prompt", "candidates"],
    (Plot: typeof PlotModule, model: Model, prompt: string, candidates: NextToken[]) =>
      measureRedraw("embed-next-token", () => nextTokensView(Plot, model, prompt, candidates))
  );
  return main;
}

function nextTokensView(Plot: typeof PlotModule, model: Model, prompt: string, candidates: NextToken[]): HTMLElement {
  const shown = (token: string) => JSON.stringify(token).slice(1, -1).replace(/ /g, "␣");
  return element("figure", {class: "lmw-next-token", "data-prompt": prompt, "data-top": candidates[0]?.token ?? ""},
    element("figcaption", {}, "After ", element("q", {}, prompt), ", the next token is most likely:"),
    Plot.plot({
      marginLeft: 100,
      marginRight: 50,
      height: 24 * candidates.length + 40,
      x: {label: "probability", domain: [0, Math.max(0.05, candidates[0]?.probability ?? 0)]},
      y: {label: null, domain: candidates.map((d) => d.rank), tickFormat: (rank: number) => shown(candidates[rank - 1].token)},
      marks: [
        Plot.barX(candidates, {x: "probability", y: "rank", fill: "steelblue"}),
        Plot.text(candidates, {x: "probability", y: "rank", text: (d: NextToken) => `${(d.probability * 100).toFixed(1)}%`, dx: 4, textAnchor: "start"}),
        Plot.ruleX([0])
      ]
    }),
    element("small", {}, caption(model))
  );
}
