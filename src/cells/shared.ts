/**
 * What the embeddable cells share: the few @observablehq/runtime types they touch, the inputs every cell
 * has (model, hub, models, backend), and the model itself — loaded once per page for all the cells that
 * name it, so two embedded cells run one model, not two.
 */
import type * as PlotModule from "@observablehq/plot";
import type {WorkerModel as Model} from "../runtime/worker-model.js";
import {weightsLabel} from "../runtime/weights.js";
import {measureRedraw} from "../views/measure.js";

export {measureRedraw};

// The engine and Plot are imported lazily, inside the cells' variables, as an Observable notebook's
// `require` does: Framework 1.13 cannot export a module whose static imports reach node_modules packages
// that have dependencies of their own (it fails resolving their versioned paths).

/** A variable of an @observablehq/runtime module. */
export interface RuntimeVariable {
  define(name: string, inputs: string[], definition: (...args: any[]) => unknown): RuntimeVariable;
}
/** An @observablehq/runtime module, as `runtime.module()` makes it. */
export interface RuntimeModule {
  variable(observer?: unknown): RuntimeVariable;
  redefine(name: string, value: unknown): RuntimeVariable;
  value(name: string): Promise<unknown>;
}
export interface ObservableRuntime {
  module(): RuntimeModule;
}
/** `Inspector.into(element)`, or any function giving an observer for a named cell (or none). */
export type Observer = (name?: string) => unknown;

/**
 * The inputs every cell has, as redefinable variables:
 * - `model`: a model the site ships ("stories260K"), a Hub id ("HuggingFaceTB/SmolLM2-135M") or a URL;
 * - `hub`: the Hub for ids (default https://huggingface.co);
 * - `models`: where the site's own models are (default: the `models/` folder of the site this module came from);
 * - `backend`: "auto" (WebGPU where the browser has a hardware adapter, else WASM), "webgpu" (a software
 *   adapter too) or "wasm".
 * And `loaded`, the model itself.
 */
export function defineModelInputs(main: RuntimeModule): void {
  main.variable().define("model", [], () => "stories260K");
  main.variable().define("hub", [], () => "https://huggingface.co");
  main.variable().define("models", [], () => siteModelsBase());
  main.variable().define("backend", [], () => "auto");
  main.variable().define("Plot", [], () => import("@observablehq/plot"));
  main
    .variable()
    .define(
      "loaded",
      ["model", "hub", "models", "backend"],
      (model: string, hub: string, models: string, backend: string) => sharedModel(model, {hub, models, backend})
    );
}

/** A cell: its own inputs and their defaults, what it computes from them, and the one view it shows. */
export interface CellSpec {
  /** Redefinable inputs besides the model's (`defineModelInputs`), with their defaults. */
  inputs: Record<string, unknown>;
  /** Values computed from others (by name; "loaded" is the model): `[their names, definition]`. */
  computed: Record<string, [string[], (...values: any[]) => unknown]>;
  /** The view: `name`, drawn by `draw(Plot, model, ...the values in from)`, its redraw measured as `measure`. */
  shown: {
    name: string;
    from: string[];
    measure: string;
    draw: (Plot: typeof PlotModule, model: Model, ...values: any[]) => HTMLElement;
  };
}

/**
 * A cell's `define(runtime, observer)`, for `new Runtime().module(define, Inspector.into(element))`: one
 * module with the model's inputs, the cell's inputs, its computed values and its view, as every cell builds it.
 */
export function cell({
  inputs,
  computed,
  shown
}: CellSpec): (runtime: ObservableRuntime, observer: Observer) => RuntimeModule {
  return (runtime, observer) => {
    const main = runtime.module();
    defineModelInputs(main);
    for (const [name, value] of Object.entries(inputs)) main.variable().define(name, [], () => value);
    for (const [name, [from, definition]] of Object.entries(computed)) main.variable().define(name, from, definition);
    main
      .variable(observer(shown.name))
      .define(shown.name, ["Plot", "loaded", ...shown.from], (Plot: typeof PlotModule, model: Model, ...values) =>
        measureRedraw(shown.measure, () => shown.draw(Plot, model, ...values))
      );
    return main;
  };
}

/** The site's models folder: this module is served at `<site>/_import/src/cells/…`. */
function siteModelsBase(): string {
  return new URL("../../../models/", import.meta.url).href;
}

const loads = new Map<string, Promise<Model>>();

/** One load per (model, hub, models, backend) in the page. A failed load is forgotten, so it can be retried. */
export function sharedModel(
  id: string,
  {hub, models, backend}: {hub: string; models: string; backend: string}
): Promise<Model> {
  const key = JSON.stringify([id, hub, models, backend]);
  let load = loads.get(key);
  if (!load) {
    load = (async () => {
      // The model runs in its own worker: the embedding page keeps painting during a forward pass.
      const [{loadWorkerModel}, bundled] = await Promise.all([
        import("../runtime/worker-model.js"),
        shippedModels(models)
      ]);
      return loadWorkerModel(id, {
        bundled,
        endpoint: hub,
        preferWebGPU: backend !== "wasm",
        allowSoftwareAdapter: backend === "webgpu"
      });
    })();
    load.catch(() => loads.delete(key));
    loads.set(key, load);
  }
  return load;
}

/** A model the site ships, as `<models>/site.json` lists it. */
export interface SiteModel {
  id: string;
  name: string;
  files: string[];
  /** Whether its checkpoint ships too (else config and tokenizer only). */
  weights: boolean;
  /** The folder its files are in (absolute URL, ending in "/"). */
  url: string;
}

const siteJson = new Map<string, Promise<SiteModel[]>>();

/**
 * The site's model list, `site.json` in the models folder `models` (a built site's `/models/`). `npm start`'s
 * preview server serves a data loader's files only under `/_file/`, so where `/models/site.json` is not found
 * the same folder is read there; each model's `url` says where its files were found.
 */
export function readSiteModels(models: string): Promise<SiteModel[]> {
  let list = siteJson.get(models);
  if (!list) {
    const read = async (base: string) => {
      const response = await fetch(new URL("site.json", base));
      if (!response.ok) return undefined;
      const {models: entries} = (await response.json()) as {models: Omit<SiteModel, "url">[]};
      return entries.map((m) => ({...m, url: new URL(`${m.name}/`, base).href}));
    };
    const preview = new URL(`/_file${new URL(models).pathname}`, models).href;
    list = read(models)
      .then((found) => found ?? read(preview))
      .then((found) => found ?? [])
      .catch(() => []);
    siteJson.set(models, list);
  }
  return list;
}

/** name → folder URL of each model the site ships with its weights. */
async function shippedModels(models: string): Promise<Record<string, string>> {
  const bundled: Record<string, string> = {};
  for (const m of await readSiteModels(models)) if (m.weights) bundled[m.id] = bundled[m.name] = m.url;
  return bundled;
}

/** "stories260K · trained weights · WASM (2 threads): …" */
export function caption(model: Model): string {
  return `${model.id} · ${weightsLabel(model.weightsOrigin)} · ${model.backend}`;
}

/** An element with attributes and children, for the few views here (Plot draws the rest). */
export function element(
  tag: string,
  attributes: Record<string, string | number>,
  ...children: (Node | string)[]
): HTMLElement {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  node.append(...children);
  return node;
}
