/**
 * The page kit: what every page of the site sets itself up with, in one call — the model control, "Run live",
 * the live model's status, the page's precomputed numbers for the model asked for and the line that says where
 * the numbers come from — and the few views the pages share (notes, the top-tokens table). A page is then its
 * data, this call, its analysis and its view (each block one of the page's cells; docs/logit-lens.md in full):
 *
 *   import {modelPage, keepLast, errorNote} from "./components/kit.js";
 *
 *   const precomputed = FileAttachment("data/precomputed/logit-lens.json").json();
 *
 *   const {controls, modelId, live, running, stored} = modelPage({value: "stories260K", precomputed: precomputed.models});
 *   display(controls);
 *
 *   const lens = running ? await keepLast("lens", () => running.lane("lens").analyse("lensView", prompt), stored) : stored;
 *
 * `modelId`, `live`, `running` and `stored` are generators: each is a reactive value of the page, and a cell
 * that uses one re-runs when it changes — `running` only when a model becomes ready or "Run live" flips, never
 * for download progress.
 */
import {html} from "htl";
import {Generators} from "observablehq:stdlib"; // Framework's own standard library
import {isRandomWeights, weightsLabel} from "../src/runtime/weights.js";
import {measureRedraw} from "../src/views/measure.js";
import {tokenLabel} from "../src/views/tokens.js";
import {
  chosenModelId,
  errorMessage,
  errorNote,
  followModel,
  keepLast,
  liveToggle,
  modelInput,
  modelStatus,
  remoteInput,
  watchReady,
  type Model,
  type ModelState
} from "./workbench.js";

export {errorMessage, errorNote, keepLast, measureRedraw, weightsLabel};

/** What a page's precomputed data holds for each model: which model (by Hub id and short name) and its weights. */
export interface Precomputed {
  id: string;
  name?: string;
  weightsOrigin?: string;
}

export interface ModelPage<T> {
  /** The model control, "Run live", the live model's status and (with `precomputed`) where the numbers come from. */
  controls: HTMLElement;
  /** The model asked for, as typed. */
  modelId: AsyncGenerator<string>;
  /** "Run live". */
  live: AsyncGenerator<boolean>;
  /** The model the page computes with: the ready model while "Run live" is on (the previous one while another loads). */
  running: AsyncGenerator<Model | undefined>;
  /** The precomputed entry for the model asked for, else the fallback's (with `precomputed`). */
  stored: AsyncGenerator<T>;
}

/**
 * Sets a page up. `value`: the model it opens on (unless the reader chose another on an earlier page);
 * `precomputed`: the page's entries, one per model the site was built with; `fallback`: the one to show for a
 * model that was not precomputed (else the first); `alwaysLive`: no "Run live" toggle, the model loads at once.
 */
export function modelPage<T extends Precomputed>({
  value,
  precomputed,
  fallback,
  alwaysLive = false
}: {
  value: string;
  precomputed?: T[];
  fallback?: string;
  alwaysLive?: boolean;
}): ModelPage<T> {
  const modelForm = modelInput({value});
  const remoteForm = remoteInput();
  const liveForm = alwaysLive ? undefined : liveToggle();
  const isLive = () => liveForm?.value ?? true;
  const status = html`<div class="lmw-status-slot"></div>`;
  const source = html`<div class="lmw-source-slot"></div>`;

  // The load follows the model control and "Run live" from now on, whichever cells read what. Its states
  // redraw the status at most once a frame: a burst of download progress is one redraw.
  let stop = () => {};
  let pending: ModelState | undefined;
  const showStatus = (state: ModelState) => {
    if (!pending) requestAnimationFrame(() => (status.replaceChildren(modelStatus(pending!)), (pending = undefined)));
    pending = state;
  };
  const follow = () => {
    stop();
    stop = followModel(chosenModelId(modelForm.value, remoteForm.value), {live: isLive()}, showStatus);
  };
  modelForm.addEventListener("input", follow);
  remoteForm.addEventListener("input", follow);
  liveForm?.addEventListener("input", follow);
  follow();

  // The model the page computes with, told only when it changes.
  let ready: Model | undefined;
  let running: Model | undefined | null = null; // null: not told yet
  const runningListeners = new Set<(model: Model | undefined) => void>();
  const updateRunning = () => {
    const next = isLive() ? ready : undefined;
    if (next === running) return;
    running = next;
    for (const listener of runningListeners) listener(next);
  };
  watchReady((model) => ((ready = model), updateRunning()));
  liveForm?.addEventListener("input", updateRunning);

  // Where the numbers come from, redrawn when the model, "Run live" or the running model changes.
  const entryFor = (id: string) => (precomputed ? precomputedFor(precomputed, id, fallback) : undefined);
  const showSource = () => {
    if (precomputed)
      source.replaceChildren(sourceLine(running ?? undefined, entryFor(modelForm.value)!, modelForm.value, isLive()));
  };
  runningListeners.add(showSource);
  modelForm.addEventListener("input", showSource);
  liveForm?.addEventListener("input", showSource);
  showSource();

  return {
    controls: html`<div class="lmw-controls">${modelForm}${remoteForm}${liveForm ?? ""}${status}${source}</div>`,
    modelId: Generators.input(modelForm),
    live: liveForm
      ? Generators.input(liveForm)
      : Generators.observe((notify: (live: boolean) => void) => {
          notify(true);
        }),
    running: Generators.observe((notify: (model: Model | undefined) => void) => {
      notify(running ?? undefined);
      runningListeners.add(notify);
      return () => runningListeners.delete(notify);
    }),
    stored: Generators.observe((notify: (entry: T) => void) => {
      let last: T | undefined;
      const send = () => {
        const entry = entryFor(modelForm.value)!;
        if (entry !== last) notify((last = entry));
      };
      send();
      modelForm.addEventListener("input", send);
      return () => modelForm.removeEventListener("input", send);
    })
  };
}

// ---------------------------------------------------------------------------------------------------------
// The precomputed numbers

/** Whether a precomputed entry is for `id`: its Hub id ("HuggingFaceTB/SmolLM2-135M") or its name ("SmolLM2-135M"). */
function isFor(entry: Precomputed, id: string): boolean {
  return entry.id === id || entry.name === id || entry.id.split("/").pop() === id;
}

/** The precomputed entry for exactly this model, or undefined. */
export function findPrecomputed<T extends Precomputed>(entries: T[], id: string): T | undefined {
  return entries.find((entry) => isFor(entry, id));
}

/** The precomputed entry for a model, else the fallback's, else the first. */
export function precomputedFor<T extends Precomputed>(entries: T[], id: string, fallback?: string): T {
  return findPrecomputed(entries, id) ?? (fallback ? findPrecomputed(entries, fallback) : undefined) ?? entries[0]!;
}

/** "precomputed" or "live", which model, and its weights. */
export function sourceBadge({
  live,
  model,
  id,
  weightsOrigin
}: {
  live: boolean;
  model?: Model;
  id?: string;
  weightsOrigin?: string;
}): HTMLElement {
  const name = model?.id ?? id ?? "";
  const origin = model?.weightsOrigin ?? weightsOrigin;
  const random = isRandomWeights(origin);
  return html`<span
    class="lmw-badge ${live ? "live" : "precomputed"} ${random ? "random" : ""}"
    data-source=${live ? "live" : "precomputed"}
    >${live ? "live" : "precomputed"}${name ? ` · ${name}` : ""}${origin ? ` · ${weightsLabel(origin)}` : ""}</span
  >`;
}

/** The badge for what the page shows, and, where the model asked for was not precomputed, what stands in for it. */
function sourceLine(running: Model | undefined, stored: Precomputed, modelId: string, live: boolean): HTMLElement {
  const missing = !running && !isFor(stored, modelId);
  return html`<p class="lmw-source">
    ${running ? sourceBadge({live: true, model: running}) : sourceBadge({live: false, id: stored.id, weightsOrigin: stored.weightsOrigin})}
    ${missing ? html`<span class="muted">${modelId} was not precomputed; showing ${stored.id}. ${capitalize(runLiveHint(live, "to load it"))}.</span>` : ""}
  </p>`;
}

/**
 * What the reader can do about precomputed numbers: turn on "Run live" — or, where it is on already, wait for
 * the model (or fix the error its status shows). `action`: "for yours", "to see layer 3".
 */
export function runLiveHint(live: boolean, action: string): string {
  return live ? `the live model is not ready yet (see its status above)` : `turn on “Run live” ${action}`;
}

/** "Precomputed for “Once upon a time”: turn on “Run live” for yours." — where the reader asked for other inputs. */
export function precomputedOnly(what: unknown, live: boolean, action = "for yours"): HTMLElement {
  return html`<p class="muted">Precomputed for ${what}: ${runLiveHint(live, action)}.</p>`;
}

/**
 * The note over numbers from random weights ("" for trained ones): what they are, why — the site was built
 * without the checkpoint (precomputed), or the address asks for random weights (live) — what still holds
 * (`holds`, the page's own sentence), and how to get trained ones. `what`: "numbers", or what else the page shows.
 */
export function randomWeightsNote(
  origin: string | undefined,
  {live, holds, what = "numbers"}: {live: boolean; holds: string; what?: string}
): HTMLElement | "" {
  if (!isRandomWeights(origin)) return "";
  const why = live
    ? "this site ships its configuration and tokenizer only, and the address asks for random weights (?weights=random)"
    : "the trained ones could not be downloaded where the site was built";
  const remedy = live
    ? html`Remove <code>?weights=random</code> from the address to load the trained weights from the Hub`
    : html`Turn on “Run live” to load the trained weights from the Hub`;
  return html`<p class="note">
    These ${what} come from <strong>${weightsLabel(origin)}</strong>: the model's real configuration and tokenizer, with
    weights drawn at random because ${why}. ${holds} ${remedy}, or pick <code>stories260K</code>, which ships with its
    trained weights.
  </p>`;
}

// ---------------------------------------------------------------------------------------------------------
// Shared views

/** "1 token", "2 tokens": a count with its noun, singular or plural ("position" → "positions"). */
export function count(n: number, noun: string, plural = `${noun}s`): string {
  return `${n} ${n === 1 ? noun : plural}`;
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/**
 * A run's top tokens as a table under its caption: a token column and a `column` of numbers ("logit",
 * "probability"); `className` names the table for the page's tests and styles.
 */
export function topTokens(
  caption: unknown,
  top: {token: string; logit?: number; prob?: number}[],
  {column = "logit", className = ""}: {column?: "logit" | "probability"; className?: string} = {}
): HTMLElement {
  const number = (t: {logit?: number; prob?: number}) => (column === "logit" ? t.logit : t.prob)!.toFixed(3);
  return html`<table class="lmw-top ${className}">
    <caption>
      ${caption}
    </caption>
    <tr>
      <th>token</th>
      <th>${column}</th>
    </tr>
    ${top.map(
      (t) =>
        html`<tr>
          <td><code>${tokenLabel(t.token)}</code></td>
          <td>${number(t)}</td>
        </tr>`
    )}
  </table>`;
}
