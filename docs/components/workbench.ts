/**
 * The pieces every lecture page uses: the model control, the live model with its status, "keep the last
 * good result", the precomputed/live badge, redraw measures and `window.lmw`.
 *
 * A page, cell by cell (each fenced ```js block is one cell):
 *
 *   import {modelInput, liveToggle, liveModel, currentModel, modelStatus, keepLast, errorNote,
 *     sourceBadge, measureRedraw} from "./components/workbench.js";
 *
 *   const modelId = view(modelInput({value: "gpt2"}));   // form.lmw-model: text + datalist, submits on Enter or "Load"
 *   const live = view(liveToggle());                      // form.lmw-live: "Run live" (on at once with ?live in the URL)
 *   const state = liveModel(modelId, {live});             // generator: {id, status, message, progress?, model?, error?}
 *   display(modelStatus(state));                          // progress bar, backend, model + weights, or the error
 *   const model = currentModel();                         // generator: undefined, then each model that becomes ready
 *   const data = model ? await keepLast("tokens", analyse(model, prompt), precomputed) : precomputed;
 *   display(errorNote("tokens"));                         // where keepLast shows a failure (empty otherwise)
 *   display(sourceBadge(model ? {live: true, model} : {live: false, id: precomputed.id, weightsOrigin: …}));
 *   display(measureRedraw("top-k", () => Plot.plot(…)));
 *
 * liveModel(id, {live = true, init, seed}) — async generator for a Framework generator cell.
 *   live false → one {status: "idle"} (nothing loads). Otherwise "loading" states (progress {loaded, total}
 *   of the current download, throttled) then "ready" with `model`, or "error" with a readable `message`
 *   (never a stack) and `error`. Loading/error states carry the previous ready model as `model`, so nothing
 *   upstream is lost. Models the site ships with weights (stories260K) load from /models/<name>/ (offline);
 *   others from the Hub: `?hub=<url>` in the page URL, else https://huggingface.co. `init: "random"` (or
 *   `?weights=random`) runs a shipped model's config and tokenizer with random weights (seed 0) instead.
 *   `?backend=wasm` forces WASM. A newer liveModel aborts an older one's load. On ready it sets
 *   `window.lmw = {model, runs: () => model?.runs ?? 0}`.
 * currentModel() — async generator: yields undefined at once, then every model that becomes ready. Cells
 *   that compute with the model depend on this, not on the state, so download progress re-runs nothing.
 * modelStatus(state) — the status element: a <progress> while loading, then the model, its weights and
 *   the backend sentence (model.backend); the error message in red, with the previous model kept.
 * keepLast(name, work, fallback?) — awaits `work` (a promise or a function returning one). On success
 *   remembers and returns its value and clears errorNote(name); on failure shows the message in
 *   errorNote(name) and returns the last good value for `name` (else `fallback`). Never throws.
 * errorNote(name) — the element (one per name) where keepLast shows `name`'s failure.
 * sourceBadge({live, model?, id?, weightsOrigin?}) — "precomputed" or "live", the model and its weights.
 * measureRedraw(name, fn) — runs fn (sync or async) between marks; records
 *   performance.measure("lmw:redraw:" + name); returns fn's result.
 * siteModels() — the models the site ships ({id, name, files, weights}[], from /models/site.json).
 * weightsLabel(origin) — "trained weights" or "random weights (seed 0)".
 * pageOptions() — {endpoint, preferWebGPU, init} read from the page URL (?hub=, ?backend=wasm, ?weights=random).
 */
import * as Inputs from "@observablehq/inputs";
import {html} from "htl";
import type {LoadProgress} from "../src/index.js";
import {loadWorkerModel, type WorkerModel as Model} from "../src/runtime/worker-model.js";
import {weightsLabel} from "../src/runtime/weights.js";
import {measureRedraw} from "../src/views/measure.js";

export {measureRedraw, weightsLabel};

/** The models the datalist suggests. */
export const MODEL_CHOICES = ["gpt2", "HuggingFaceTB/SmolLM2-135M", "stories260K"];

// ---------------------------------------------------------------------------------------------------------
// The site's models and the page URL

export interface SiteModel {
  id: string;
  name: string;
  files: string[];
  weights: boolean;
}

/** Where the site's model folders are: /models/ next to the site root (this module is at /_import/components/). */
const MODELS_BASE = new URL("../../models/", import.meta.url).href;

let siteModelsPromise: Promise<SiteModel[]> | undefined;

export function siteModels(): Promise<SiteModel[]> {
  return (siteModelsPromise ??= fetch(new URL("site.json", MODELS_BASE))
    .then((r) => (r.ok ? r.json() : {models: []}))
    .then((j: {models: SiteModel[]}) => j.models)
    .catch(() => []));
}

export interface PageOptions {
  /** The Hub: `?hub=` of the page URL, else https://huggingface.co. */
  endpoint: string;
  /** False with `?backend=wasm`. */
  preferWebGPU: boolean;
  /** "random" with `?weights=random`. */
  init?: "random";
}

export function pageOptions(): PageOptions {
  const params = new URLSearchParams(location.search);
  return {
    endpoint: params.get("hub") || "https://huggingface.co",
    preferWebGPU: params.get("backend") !== "wasm",
    ...(params.get("weights") === "random" ? {init: "random" as const} : {})
  };
}


// ---------------------------------------------------------------------------------------------------------
// Controls

/** The model control: a text input with a datalist of the usual models; submits on Enter or "Load". */
export function modelInput({value = "gpt2", label = "Model", datalist = MODEL_CHOICES, width = 320} = {}): HTMLFormElement {
  return withClass("lmw-model", Inputs.text({
    label,
    value,
    datalist,
    submit: "Load",
    width,
    placeholder: "a Hub id, a shipped model, or a URL",
    spellcheck: false
  } as Record<string, unknown>));
}

function withClass(name: string, form: HTMLFormElement): HTMLFormElement {
  form.classList.add(name);
  return form;
}

/** "Run live": off by default (the page shows precomputed numbers); on at once with `?live` in the URL. */
export function liveToggle({label = "Run live"} = {}): HTMLFormElement {
  return withClass("lmw-live", Inputs.toggle({label, value: new URLSearchParams(location.search).has("live")}));
}

// ---------------------------------------------------------------------------------------------------------
// The live model

export type ModelStatus = "idle" | "loading" | "ready" | "error";

export interface ModelState {
  id: string;
  status: ModelStatus;
  message: string;
  /** Bytes of the current download. */
  progress?: {loaded: number; total?: number};
  /** Ready: the new model. Loading or error: the previous ready model, if any. */
  model?: Model;
  error?: unknown;
}

declare global {
  interface Window {
    lmw?: {model: Model | undefined; runs: () => number};
  }
}

let latest = 0; // the newest liveModel call
let loading: AbortController | undefined;
let ready: Model | undefined;
const readyListeners = new Set<(model: Model) => void>();

function becomeReady(model: Model): void {
  // The previous model's worker holds its whole session: free it. A call still on it ends with an
  // AbortError, which keepLast passes over.
  if (ready && ready !== model) ready.dispose();
  ready = model;
  window.lmw = {model, runs: () => model?.runs ?? 0};
  for (const listener of readyListeners) listener(model);
}

/** A readable message: the error's own message (WorkbenchErrors name what was wrong), never a stack. */
export function errorMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split("\n")[0]!.replace(/^Error: /, "") || "the model could not be loaded";
}

export async function* liveModel(
  id: string,
  {live = true, init, seed = 0}: {live?: boolean; init?: "checkpoint" | "random"; seed?: number} = {}
): AsyncGenerator<ModelState> {
  id = (id ?? "").trim();
  if (!live) {
    yield {id, status: "idle", message: "precomputed numbers; turn on “Run live” to load the model in this page", model: ready};
    return;
  }
  const call = ++latest;
  loading?.abort(new DOMException("a newer model was asked for", "AbortError"));
  const controller = (loading = new AbortController());
  const page = pageOptions();
  const shipped = await siteModels();
  const entry = shipped.find((m) => m.id === id || m.name === id);
  // Random weights only stand in for a checkpoint the site does not have: a model that ships with its
  // weights (stories260K) always runs them, whatever ?weights= says.
  const random = (init ?? page.init) === "random" && entry !== undefined && !entry.weights;
  // Ship by name: those with weights always; one without, when it runs with random weights.
  const bundled: Record<string, string> = {};
  for (const m of shipped) {
    if (!m.weights && !(random && m === entry)) continue;
    bundled[m.id] = bundled[m.name] = new URL(`${m.name}/`, MODELS_BASE).href;
  }
  const where = bundled[id] ? "from this site" : /^https?:\/\//.test(id) ? `from ${id}` : `from ${page.endpoint}`;

  // Progress arrives by callback; the generator yields the newest state, at most every 100 ms.
  let state: ModelState = {id, status: "loading", message: `loading ${id} ${where}…`, model: ready};
  let wake: () => void = () => {};
  let last = 0;
  const update = (next: ModelState, force = false) => {
    state = next;
    const now = performance.now();
    if (force || now - last > 100) {
      last = now;
      wake();
    }
  };
  const onProgress = (p: LoadProgress) =>
    update(
      {id, status: "loading", message: p.message, model: ready, ...(p.loaded !== undefined ? {progress: {loaded: p.loaded, total: p.total}} : {})},
      p.stage !== "download"
    );
  const done = loadWorkerModel(id, {
    bundled,
    endpoint: page.endpoint,
    preferWebGPU: page.preferWebGPU,
    signal: controller.signal,
    onProgress,
    ...(random ? {init: "random" as const, seed} : {})
  }).then(
    (model) => {
      if (call === latest) becomeReady(model);
      else model.dispose(); // superseded while loading: its worker is not needed
      update({id, status: "ready", message: `${model.id} is ready`, model}, true);
    },
    (error) => {
      const hint = !bundled[id] && !random && shipped.some((m) => m.id === id || m.name === id)
        ? ` — this site ships ${id}'s config and tokenizer only; add ?weights=random to the address to run it with random weights`
        : "";
      update({id, status: "error", message: errorMessage(error) + hint, error, model: ready}, true);
    }
  );

  try {
    yield state;
    for (;;) {
      const settled = await Promise.race([done.then(() => true), new Promise<false>((resolve) => (wake = () => resolve(false)))]);
      yield state;
      if (settled && state.status !== "loading") return;
    }
  } finally {
    if (state.status === "loading") controller.abort(new DOMException("the page moved on", "AbortError"));
  }
}

/** Undefined at once, then each model that becomes ready (the current one first, if any). */
export async function* currentModel(): AsyncGenerator<Model | undefined> {
  const queue: Model[] = [];
  let wake: () => void = () => {};
  const listener = (model: Model) => {
    queue.push(model);
    wake();
  };
  readyListeners.add(listener);
  try {
    yield ready;
    for (;;) {
      while (queue.length) {
        const model = queue.shift()!;
        if (model !== ready) continue; // superseded
        yield model;
      }
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    readyListeners.delete(listener);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Views

const STYLE = `
.lmw-status { font: 13px var(--sans-serif); margin: 0.25rem 0 1rem; max-width: 640px; }
.lmw-status progress { width: 240px; vertical-align: middle; margin-right: 0.5rem; }
.lmw-status .lmw-error { color: var(--theme-red, #c00); }
.lmw-status .lmw-backend, .lmw-status .lmw-muted { color: var(--theme-foreground-muted, #666); }
.lmw-badge { display: inline-block; font: 12px var(--sans-serif); padding: 1px 8px; border-radius: 10px;
  border: 1px solid currentColor; margin: 0.25rem 0; }
.lmw-badge.precomputed { color: var(--theme-foreground-muted, #666); }
.lmw-badge.live { color: var(--theme-green, #2a7d2e); }
.lmw-badge.random { color: var(--theme-orange, #c46100); }
.lmw-error-note:empty { display: none; }
.lmw-error-note { color: var(--theme-red, #c00); font: 13px var(--sans-serif); margin: 0.25rem 0; }
`;

if (typeof document !== "undefined" && !document.getElementById("lmw-workbench-style")) {
  const style = document.createElement("style");
  style.id = "lmw-workbench-style";
  style.textContent = STYLE;
  document.head.append(style);
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

/** What the model is: its id, weights, and the backend sentence. */
function describe(model: Model): HTMLElement {
  const random = model.weightsOrigin !== "checkpoint";
  return html`<div><strong>${model.id}</strong> · ${model.config.architecture}, ${model.config.numLayers} layers,
    ${random ? html`<span class="lmw-badge random">${weightsLabel(model.weightsOrigin)}</span>` : weightsLabel(model.weightsOrigin)}
    <div class="lmw-backend">${model.backend}</div></div>`;
}

/** The status element for a ModelState. */
export function modelStatus(state: ModelState): HTMLElement {
  const box = html`<div class="lmw-status" data-status=${state.status}></div>`;
  if (state.status === "loading") {
    const {loaded, total} = state.progress ?? {};
    box.append(html`<div>${
      loaded !== undefined && total ? html`<progress value=${loaded} max=${total}></progress>` : html`<progress></progress>`
    }<span>${state.message}${loaded !== undefined && total ? "" : loaded ? ` (${mb(loaded)})` : ""}</span></div>`);
  } else if (state.status === "error") {
    box.append(html`<div class="lmw-error" role="alert">${state.id || "model"}: ${state.message}</div>`);
  } else if (state.status === "idle") {
    box.append(html`<div class="lmw-muted">${state.message}</div>`);
  }
  if (state.model) {
    if (state.status !== "ready") box.append(html`<div class="lmw-muted">Still showing:</div>`);
    box.append(describe(state.model));
  }
  return box;
}

/** "precomputed" or "live", which model, and its weights. */
export function sourceBadge({live, model, id, weightsOrigin}: {live: boolean; model?: Model; id?: string; weightsOrigin?: string}): HTMLElement {
  const name = model?.id ?? id ?? "";
  const origin = model?.weightsOrigin ?? weightsOrigin;
  const random = origin !== undefined && origin !== "checkpoint";
  return html`<span class="lmw-badge ${live ? "live" : "precomputed"} ${random ? "random" : ""}" data-source=${live ? "live" : "precomputed"}>${
    live ? "live" : "precomputed"}${name ? ` · ${name}` : ""}${origin ? ` · ${weightsLabel(origin)}` : ""}</span>`;
}

// ---------------------------------------------------------------------------------------------------------
// Keep the last good result

const lastGood = new Map<string, unknown>();
const notes = new Map<string, HTMLElement>();

/** The element where keepLast shows `name`'s failure (empty, hence hidden, when all is well). */
export function errorNote(name: string): HTMLElement {
  let note = notes.get(name);
  if (!note) {
    note = html`<div class="lmw-error-note" role="alert" data-for=${name}></div>` as HTMLElement;
    notes.set(name, note);
  }
  return note;
}

export async function keepLast<T>(name: string, work: Promise<T> | (() => Promise<T> | T), fallback?: T): Promise<T> {
  const note = errorNote(name);
  try {
    const value = await (typeof work === "function" ? work() : work);
    lastGood.set(name, value);
    note.textContent = "";
    return value;
  } catch (error) {
    // Superseded by a newer input, or the model was replaced: the newer run shows its own result.
    if (error instanceof DOMException && error.name === "AbortError") return (lastGood.has(name) ? lastGood.get(name) : fallback) as T;
    const kept = lastGood.has(name);
    note.textContent = `${errorMessage(error)}${kept ? " — showing the previous result." : ""}`;
    return (kept ? lastGood.get(name) : fallback) as T;
  }
}
