/**
 * The live model behind the pages: the model control and "Run live" (both remembered across pages, with
 * ?hub=, ?backend= and ?weights=), the model loading in its worker with its status, "keep the last good
 * result", redraw measures and `window.lmw`. Pages do not call these one by one: the page kit
 * (docs/components/kit.ts) puts them together.
 */
import * as Inputs from "@observablehq/inputs";
import {html} from "htl";
import {readSiteModels, type SiteModel} from "../src/cells/shared.js";
import type {LoadProgress} from "../src/index.js";
import {loadWorkerModel, type WorkerModel} from "../src/runtime/worker-model.js";
import {
  DEFAULT_RELAY,
  NDIF_PREFIX,
  loadRemoteModel,
  type JobProgress,
  type RemoteModel
} from "../src/remote/remote-model.js";
import {isRandomWeights, weightsLabel} from "../src/runtime/weights.js";
import {formatBytes} from "../src/units.js";

/** The page's live model: in this tab's worker, or on NDIF through the relay ("Remote (NDIF)"). */
export type Model = WorkerModel | RemoteModel;

/** The models the datalist suggests. */
export const MODEL_CHOICES = [
  "gpt2",
  "HuggingFaceTB/SmolLM2-135M",
  "stories260K",
  "EleutherAI/pythia-160m",
  "Qwen/Qwen2.5-0.5B",
  "Qwen/Qwen3-0.6B",
  "google/gemma-3-270m"
];

// ---------------------------------------------------------------------------------------------------------
// The site's models and the page URL

/** Where the site's model folders are: /models/ next to the site root (this module is at /_import/components/). */
const MODELS_BASE = new URL("../../models/", import.meta.url).href;

/** The models the site ships ({id, name, files, weights}[], from /models/site.json, read once). */
export function siteModels(): Promise<SiteModel[]> {
  return readSiteModels(MODELS_BASE);
}

// ---------------------------------------------------------------------------------------------------------
// The reader's settings, kept across pages: the model, "Run live", and ?hub= ?backend= ?weights=. The page's
// address wins; what it does not say comes from this tab's earlier pages (sessionStorage) and is written
// back into the address, so that a reload or a shared link runs the same way.

interface Settings {
  model?: string;
  live?: boolean;
  /** "Remote (NDIF)" and the relay's address (this tab's sessionStorage only; the key is kept apart, below). */
  remote?: boolean;
  relay?: string;
  hub?: string;
  backend?: string;
  weights?: string;
}

const SETTINGS_KEY = "lmw:settings";
const URL_SETTINGS = ["hub", "backend", "weights"] as const;

function readSettings(): Settings {
  try {
    return JSON.parse(sessionStorage.getItem(SETTINGS_KEY) ?? "{}") as Settings;
  } catch {
    return {}; // storage refused (a sandboxed frame) or garbled: start afresh
  }
}

function saveSettings(patch: Settings): void {
  try {
    sessionStorage.setItem(SETTINGS_KEY, JSON.stringify({...readSettings(), ...patch}));
  } catch {
    // Storage refused: the settings then last for this page only.
  }
}

/** The settings of this page: the address first, then the tab's earlier pages. Run once, on load. */
function pageSettings(): Settings {
  const params = new URLSearchParams(location.search);
  const saved = readSettings();
  const settings: Settings = {...saved};
  for (const key of URL_SETTINGS) if (params.has(key)) settings[key] = params.get(key) ?? undefined;
  if (params.has("live")) settings.live = params.get("live") !== "0";
  if (params.has("model")) settings.model = params.get("model") ?? undefined;
  saveSettings(settings);
  let changed = false;
  for (const key of URL_SETTINGS) {
    if (settings[key] && !params.has(key)) (params.set(key, settings[key]!), (changed = true));
  }
  if (changed) history.replaceState(history.state, "", `${location.pathname}?${params}${location.hash}`);
  return settings;
}

const SETTINGS = typeof location === "undefined" ? {} : pageSettings();

export interface PageOptions {
  /** The Hub: `?hub=` of the page URL, else https://huggingface.co. */
  endpoint: string;
  /** False with `?backend=wasm`. */
  preferWebGPU: boolean;
  /** True with `?backend=webgpu`: WebGPU even on a software adapter, which "auto" leaves for WASM. */
  allowSoftwareAdapter: boolean;
  /** "jsep" with `?backend=webgpu-jsep`: WebGPU on onnxruntime-web's JSEP build, not its native provider. */
  webgpuBuild?: "jsep";
  /** "random" with `?weights=random`. */
  init?: "random";
}

export function pageOptions(): PageOptions {
  return {
    endpoint: SETTINGS.hub || "https://huggingface.co",
    preferWebGPU: SETTINGS.backend !== "wasm",
    allowSoftwareAdapter: SETTINGS.backend === "webgpu" || SETTINGS.backend === "webgpu-jsep",
    ...(SETTINGS.backend === "webgpu-jsep" ? {webgpuBuild: "jsep" as const} : {}),
    ...(SETTINGS.weights === "random" ? {init: "random" as const} : {})
  };
}

// ---------------------------------------------------------------------------------------------------------
// Controls

/**
 * The model control: a text input with a datalist of the usual models; submits on Enter or "Load". Opens on
 * the model the reader chose on an earlier page, else `value`.
 */
export function modelInput({
  value = "gpt2",
  label = "Model",
  datalist = MODEL_CHOICES,
  width = 320
} = {}): Inputs.Input<string> {
  const form = withClass(
    "lmw-model",
    Inputs.text({
      label,
      value: SETTINGS.model || value,
      datalist,
      submit: "Load",
      width,
      placeholder: "a Hub id, a shipped model, or a URL",
      spellcheck: false
    })
  );
  form.addEventListener("input", () => saveSettings({model: form.value}));
  return form;
}

/**
 * "Remote (NDIF)": run the model on NDIF through the relay (src/remote/, relay/PROTOCOL.md) instead of in this
 * tab — then the model box takes the Hub id NDIF hosts (meta-llama/Llama-3.1-8B). The relay's address and the
 * NDIF API key go with it; the key is kept like the Hub token (sessionStorage, this tab only, never in the page's
 * URL) and sent to the relay only, in a header. Its value: `{on, relay}`; it fires "input" when either changes
 * or a key is saved.
 */
export function remoteInput(): HTMLElement & {value: {on: boolean; relay: string}} {
  const on = html`<input type="checkbox" checked=${SETTINGS.remote === true} />` as HTMLInputElement;
  const relay = html`<input
    type="url"
    value=${SETTINGS.relay || DEFAULT_RELAY}
    size="24"
    spellcheck="false"
    aria-label="relay address"
  />` as HTMLInputElement;
  const key = html`<input
    type="password"
    autocomplete="off"
    spellcheck="false"
    placeholder=${sessionNdifKey() ? "a key is kept for this tab" : "NDIF API key"}
    size="24"
    aria-label="NDIF API key"
  />` as HTMLInputElement;
  const note = html`<span class="lmw-muted"></span>`;
  const fields = html`<span class="lmw-remote-fields" hidden=${!on.checked}>
    <label>relay ${relay}</label> <label>key ${key}</label> <button type="submit">Use key</button>${note}
  </span>`;
  const form = html`<form class="lmw-remote"><label>${on} Remote (NDIF)</label> ${fields}</form>` as HTMLFormElement & {
    value: {on: boolean; relay: string};
  };
  const current = () => ({on: on.checked, relay: relay.value.trim() || DEFAULT_RELAY});
  form.value = current();
  const changed = () => {
    form.value = current();
    (fields as HTMLElement).hidden = !on.checked;
    saveSettings({remote: on.checked, relay: form.value.relay});
    form.dispatchEvent(new Event("input", {bubbles: true}));
  };
  // The checkbox's and the address's own input events stop here: the form fires one "input" of its own.
  form.addEventListener("input", (event) => event.target !== form && event.stopPropagation(), {capture: true});
  on.addEventListener("change", changed);
  relay.addEventListener("change", changed);
  form.addEventListener("submit", (event) => {
    event.preventDefault(); // never submitted: no key in a URL
    const kept = keepSecret(NDIF_KEY, key.value);
    note.textContent = {kept: " kept for this tab only", forgotten: " key forgotten", refused: REFUSED}[kept];
    key.value = "";
    key.placeholder = sessionNdifKey() ? "a key is kept for this tab" : "NDIF API key";
    changed();
  });
  return form;
}

/** The model id to load: `ndif:<Hub id>` with "Remote (NDIF)" on (or typed so), else the id as typed. */
export function chosenModelId(typed: string, remote: {on: boolean}): string {
  const id = (typed ?? "").trim();
  return remote.on && !id.startsWith(NDIF_PREFIX) ? `${NDIF_PREFIX}${id}` : id;
}

function withClass<F extends HTMLElement>(name: string, form: F): F {
  form.classList.add(name);
  return form;
}

/** "Run live": off at first (the page shows precomputed numbers); on with `?live`, or if it was on the page before. */
export function liveToggle({label = "Run live"} = {}): Inputs.Input<boolean> {
  const form = withClass("lmw-live", Inputs.toggle({label, value: SETTINGS.live === true}));
  form.addEventListener("input", () => saveSettings({live: form.value}));
  return form;
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
  /** A remote model's job on NDIF: its state and queue position. */
  job?: JobProgress;
}

let latest = 0; // the newest followModel call
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

/**
 * Follows the live model for `id`: "idle" when `live` is off (nothing loads); else "loading" states with the
 * load's progress, then "ready" with the model, or "error" with a readable message (never a stack), each
 * handed to `update`. Loading and error states carry the previous ready model, so nothing upstream is lost.
 * A newer call stops an older one's load; the function returned stops this one's.
 */
export function followModel(
  id: string,
  {live = true, init, seed = 0}: {live?: boolean; init?: "checkpoint" | "random"; seed?: number},
  update: (state: ModelState) => void
): () => void {
  id = (id ?? "").trim();
  if (!live) {
    update({
      id,
      status: "idle",
      message: "precomputed numbers; turn on “Run live” to load the model in this page",
      model: ready
    });
    return () => {};
  }
  const call = ++latest;
  loading?.abort(new DOMException("a newer model was asked for", "AbortError"));
  const controller = (loading = new AbortController());
  let state: ModelState = {id, status: "loading", message: `loading ${id}…`, model: ready};
  const report = (next: ModelState) => update((state = next));
  report(state);
  void load(id, {init, seed, signal: controller.signal, update: report}).then((model) => {
    if (!model) return;
    if (call === latest) becomeReady(model);
    else model.dispose(); // superseded while loading: its worker is not needed
  });
  return () => {
    if (state.status === "loading") controller.abort(new DOMException("the page moved on", "AbortError"));
  };
}

/** Loads `id` in its worker, reporting each state through `update`; the model, or undefined on failure. */
async function load(
  id: string,
  {
    init,
    seed,
    signal,
    update
  }: {init?: "checkpoint" | "random"; seed: number; signal: AbortSignal; update: (state: ModelState) => void}
): Promise<Model | undefined> {
  if (id.startsWith(NDIF_PREFIX)) return loadRemote(id, {signal, update});
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
    bundled[m.id] = bundled[m.name] = m.url;
  }
  const where = bundled[id] ? "from this site" : /^https?:\/\//.test(id) ? `from ${id}` : `from ${page.endpoint}`;
  update({id, status: "loading", message: `loading ${id} ${where}…`, model: ready});
  const onProgress = (p: LoadProgress) =>
    update({
      id,
      status: "loading",
      message: p.message,
      model: ready,
      ...(p.loaded !== undefined ? {progress: {loaded: p.loaded, total: p.total}} : {})
    });
  try {
    const model = await loadWorkerModel(id, {
      bundled,
      endpoint: page.endpoint,
      token: sessionToken(),
      preferWebGPU: page.preferWebGPU,
      allowSoftwareAdapter: page.allowSoftwareAdapter,
      webgpuBuild: page.webgpuBuild,
      signal,
      onProgress,
      ...(random ? {init: "random" as const, seed} : {})
    });
    update({id, status: "ready", message: `${model.id} is ready`, model});
    return model;
  } catch (error) {
    const hint =
      !bundled[id] && !random && entry
        ? ` — this site ships ${id}'s config and tokenizer only; add ?weights=random to the address to run it with random weights`
        : "";
    update({id, status: "error", message: errorMessage(error) + hint, error, model: ready});
    return undefined;
  }
}

/**
 * Reads a remote model's config and tokenizer through the relay; from then on each of its jobs' states and queue
 * positions shows in the status line.
 */
async function loadRemote(
  id: string,
  {signal, update}: {signal: AbortSignal; update: (state: ModelState) => void}
): Promise<Model | undefined> {
  const relay = readSettings().relay || DEFAULT_RELAY; // as the model box has it now
  update({
    id,
    status: "loading",
    message: `reading ${id}'s config and tokenizer through the relay at ${relay}…`,
    model: ready
  });
  try {
    const model = await loadRemoteModel(id, {relay, apiKey: sessionNdifKey(), signal});
    model.onJob = (job) => {
      if (ready === model) update({id, status: "ready", message: jobMessage(job), model, job});
    };
    update({id, status: "ready", message: `${model.id} is ready on NDIF`, model});
    return model;
  } catch (error) {
    update({id, status: "error", message: errorMessage(error), error, model: ready});
    return undefined;
  }
}

/** "NDIF lens job: queued, position 3 in the queue". */
export function jobMessage(job: JobProgress): string {
  const position = job.position !== undefined ? `, position ${job.position} in the queue` : "";
  return `NDIF ${job.experiment} job: ${job.state.toLowerCase()}${position}`;
}

/**
 * Calls `listener` with the ready model now (undefined if none yet), then with each model that becomes ready;
 * the function returned unsubscribes. Cells that compute with the model follow this, not the load's state, so
 * download progress re-runs nothing.
 */
export function watchReady(listener: (model: Model | undefined) => void): () => void {
  listener(ready);
  readyListeners.add(listener);
  return () => readyListeners.delete(listener);
}

// ---------------------------------------------------------------------------------------------------------
// Views

/** What the model is: its id, weights, and the backend sentence. */
function describe(model: Model): HTMLElement {
  const random = isRandomWeights(model.weightsOrigin);
  return html`<div>
    <strong>${model.id}</strong> · ${model.config.architecture}, ${model.config.numLayers} layers,
    ${random ? html`<span class="lmw-badge random">${weightsLabel(model.weightsOrigin)}</span>` : weightsLabel(model.weightsOrigin)}
    <div class="lmw-backend">${model.backend}</div>
  </div>`;
}

/** The status element for a ModelState. */
export function modelStatus(state: ModelState): HTMLElement {
  const box = html`<div class="lmw-status" data-status=${state.status}></div>`;
  if (state.status === "loading") {
    const {loaded, total} = state.progress ?? {};
    box.append(
      html`<div>
        ${
          loaded !== undefined && total
            ? html`<progress value=${loaded} max=${total}></progress>`
            : html`<progress></progress>`
        }<span>${state.message}${loaded !== undefined && total ? "" : loaded ? ` (${formatBytes(loaded)})` : ""}</span>
      </div>`
    );
  } else if (state.status === "error") {
    box.append(html`<div class="lmw-error" role="alert">${state.id || "model"}: ${state.message}</div>`);
    if ((state.error as {code?: string} | undefined)?.code === "gated") box.append(tokenForm());
  } else if (state.status === "idle") {
    box.append(html`<div class="lmw-muted">${state.message}</div>`);
  } else if (state.job) {
    box.append(html`<div class="lmw-job" data-state=${state.job.state}>${state.message}</div>`);
  }
  if (state.model) {
    if (state.status !== "ready") box.append(html`<div class="lmw-muted">Still showing:</div>`);
    box.append(describe(state.model));
  }
  return box;
}

// The NDIF API key, kept as the Hub token is (below): this tab's sessionStorage, never the page's URL; src/remote/
// sends it to the relay only, as the X-NDIF-Api-Key header.
const NDIF_KEY = "lmw-ndif-key";
const sessionNdifKey = () => sessionSecret(NDIF_KEY);

// A Hugging Face token for gated models: asked for where a load fails as "gated", kept in sessionStorage (this
// tab, until it closes), never in the page's URL; src/browser.ts sends it to the Hub endpoint only.
const TOKEN_KEY = "lmw-hf-token";
const sessionToken = () => sessionSecret(TOKEN_KEY);

/** A secret this tab keeps (the NDIF key, the Hub token); undefined where none is kept or storage is blocked. */
function sessionSecret(key: string): string | undefined {
  try {
    return sessionStorage.getItem(key) || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Keep `value` as this tab's secret `key`, or forget it where `value` is blank. Says, for the note beside the field,
 * "kept" or "forgotten", or "refused" where this browser does not allow keeping it.
 */
function keepSecret(key: string, value: string): "kept" | "forgotten" | "refused" {
  try {
    if (value.trim()) sessionStorage.setItem(key, value.trim());
    else sessionStorage.removeItem(key);
    return value.trim() ? "kept" : "forgotten";
  } catch {
    return "refused";
  }
}

const REFUSED = " this browser does not allow keeping it";

/** A password field that keeps the token for this tab's session (the form never submits: no token in a URL). */
function tokenForm(): HTMLElement {
  const input = html`<input
    type="password"
    autocomplete="off"
    spellcheck="false"
    placeholder="hf_…"
    size="36"
  />` as HTMLInputElement;
  const note = html`<span class="lmw-muted"></span>`;
  const save = (event: Event) => {
    event.preventDefault();
    const kept = keepSecret(TOKEN_KEY, input.value);
    note.textContent = {
      kept: " kept for this tab only; press “Load” again",
      forgotten: " token forgotten",
      refused: REFUSED
    }[kept];
    input.value = "";
  };
  return html`<form class="lmw-token" onsubmit=${save}>
    <label>Hugging Face token ${input}</label> <button type="submit">Use token</button>${note}
  </form>`;
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
    if (error instanceof DOMException && error.name === "AbortError")
      return (lastGood.has(name) ? lastGood.get(name) : fallback) as T;
    const kept = lastGood.has(name);
    note.textContent = `${errorMessage(error)}${kept ? " — showing the previous result." : ""}`;
    return (kept ? lastGood.get(name) : fallback) as T;
  }
}
