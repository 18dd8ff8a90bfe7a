/**
 * The "Inside the model" pages' computations, shared by their data loaders (build time, Node) and the pages
 * live (browser): the logit lens as cells, patching and ablation sweeps as heatmap cells under a logit-difference
 * metric, and steered against plain generation. Each returns plain JSON-able data, so a loader can store it.
 */
import {logitLens, type LogitLens} from "./lens.js";
import {ablateHeads, patchSweep, PATCH_KINDS, type PatchKind, type PatchSweep, type AblationSweep} from "./patching.js";
import {steeringEdit, steeringVector} from "./steering.js";
import {topK} from "./index.js";
import type {Model} from "../runtime/model.js";
import {WorkbenchError} from "../errors.js";
import {LOGITS} from "../graph/names.js";
import {GENERATION, LOGIT_LENS, PATCHING, steeringDefaults} from "../defaults.js";

const round = (v: number) => Number(v.toPrecision(4));

// ---------------------------------------------------------------------------------------------------------
// Logit lens

/** The lens page's and cell's defaults (src/defaults.ts states them). */
export const LENS_DEFAULTS = {prompt: LOGIT_LENS.prompt, k: LOGIT_LENS.k.default} as const;

export interface LensCell {
  layer: number;
  position: number;
  /** The most likely token at this layer and position, and its probability under the lens. */
  id: number;
  token: string;
  prob: number;
  /** The top k, most likely first. */
  top: {id: number; token: string; prob: number}[];
}

export interface LensView {
  prompt: string;
  /** The prompt's tokens as text pieces (" is"), one per position. */
  pieces: string[];
  hooks: string[];
  cells: LensCell[];
}

export async function lensView(model: Model, prompt: string, k: number = LOGIT_LENS.k.default): Promise<LensView> {
  const lens = await logitLens(model, prompt, {k});
  return lensViewOf(lens, prompt, (id) => model.tokenizer.idToPiece(id));
}

/** A token id's display piece (" Paris"), from the model's own tokenizer. */
export type Decode = (id: number) => string;

/**
 * The lens view of a logit lens's answer, whichever model computed it: `logitLens` here, or the NDIF relay's
 * `lens` experiment (src/remote/), whose result has the same fields.
 */
export function lensViewOf(
  lens: Pick<LogitLens, "input_ids" | "hooks" | "topIds" | "topLogprobs">,
  prompt: string,
  decode: Decode
): LensView {
  const T = lens.input_ids.length;
  const k = lens.topIds.shape[2];
  const cells: LensCell[] = [];
  lens.hooks.forEach((_, layer) => {
    for (let position = 0; position < T; position++) {
      const top = Array.from({length: k}, (_, j) => {
        const at = (layer * T + position) * k + j;
        const id = lens.topIds.data[at];
        return {id, token: decode(id), prob: round(Math.exp(lens.topLogprobs.data[at]))};
      });
      cells.push({layer, position, ...top[0], top});
    }
  });
  return {prompt, pieces: lens.input_ids.map(decode), hooks: lens.hooks, cells};
}

// ---------------------------------------------------------------------------------------------------------
// Activation patching

/** Clean/corrupt pairs, the first whose prompts have as many tokens the default (src/defaults.ts states them). */
export const PATCH_PAIRS = PATCHING.pairs;

export interface PatchPair {
  clean: string;
  corrupt: string;
  /** The metric's two tokens: the clean run's answer and the corrupt run's (the first token of each word). */
  answers: [number, number];
}

/** The first of PATCH_PAIRS whose prompts have as many tokens in the model's tokenizer, with its answer ids. */
export function defaultPair(model: Pick<Model, "id" | "tokenizer">): PatchPair {
  const count = (text: string) => model.tokenizer.encode(text).ids.length;
  const pair = PATCH_PAIRS.find((p) => count(p.clean) === count(p.corrupt));
  if (!pair)
    throw new WorkbenchError(
      `${model.id}: none of the default clean/corrupt pairs has as many tokens in both prompts; type your own`
    );
  return {
    clean: pair.clean,
    corrupt: pair.corrupt,
    answers: [firstToken(model, pair.answers[0]), firstToken(model, pair.answers[1])]
  };
}

/** The first token of a word as it follows other text (" Mary"), without the tokenizer's added specials. */
export function firstToken(model: Pick<Model, "id" | "tokenizer">, word: string): number {
  const {ids} = model.tokenizer.encode(word);
  const special = new Set([model.tokenizer.bosTokenId, model.tokenizer.eosTokenId]);
  // SentencePiece may split off the word's "▁" as a token of its own: take the first that shows text.
  const id = ids.find((i) => !special.has(i) && model.tokenizer.idToPiece(i).trim() !== "");
  if (id === undefined)
    throw new WorkbenchError(`${JSON.stringify(word)} has no token of its own in ${model.id}'s tokenizer`);
  return id;
}

export interface SweepCell {
  layer: number;
  /** A position (patching) or a head (ablation). */
  index: number;
  /** The metric of this run: logit(answer) − logit(other). */
  metric: number;
  /**
   * The change the edit made to the metric: patching, metric − the corrupt run's (as much as clean − corrupt where
   * the patch restores the clean answer; in logits rather than normalized, which blows up where the two runs barely
   * differ); ablation, metric − the base run's.
   */
  value: number;
  /** The run's most likely next tokens. */
  top: {id: number; token: string; logit: number}[];
}

export interface PatchingView {
  clean: string;
  corrupt: string;
  /** The corrupt prompt's pieces (the columns). */
  pieces: string[];
  answer: {id: number; token: string};
  other: {id: number; token: string};
  cleanMetric: number;
  corruptMetric: number;
  kinds: {kind: PatchKind; hooks: string[]; cells: SweepCell[]}[];
}

/** The metric's default tokens: the clean run's answer against the corrupt run's (its second choice where they agree). */
export function defaultAnswers(clean: ArrayLike<number>, corrupt: ArrayLike<number>): [number, number] {
  const answer = topK(clean, 1)[0];
  const [first, second] = topK(corrupt, 2);
  return [answer, first === answer ? second : first];
}

/**
 * The three patching sweeps (resid, attn, mlp) of a clean/corrupt pair, under the logit difference of `answers`
 * (default: `defaultAnswers` of the two unpatched runs). One sweep per kind, each packed (patching.ts).
 */
export async function patchingView(
  model: Model,
  clean: string,
  corrupt: string,
  {
    answers,
    kinds = PATCH_KINDS,
    top = PATCHING.top,
    onProgress
  }: {
    answers?: [number, number];
    kinds?: readonly PatchKind[];
    top?: number;
    onProgress?: (kind: PatchKind, done: number, total: number) => void;
  } = {}
): Promise<PatchingView> {
  const ids = answers ?? defaultAnswers(await lastLogits(model, clean), await lastLogits(model, corrupt));
  const sweeps: ViewedPatchSweep[] = [];
  for (const kind of kinds) {
    const sweep = await patchSweep(model, clean, corrupt, kind, {
      ids,
      top,
      onProgress: (done, total) => onProgress?.(kind, done, total)
    });
    sweeps.push({...sweep, top: sweep.top!});
  }
  return patchingViewOf(clean, corrupt, sweeps, ids, (id) => model.tokenizer.idToPiece(id));
}

/** What a view needs of a sweep (`patchSweep`'s answer, or the NDIF relay's `patching` result): `top` kept. */
export type ViewedPatchSweep = Pick<PatchSweep, "kind" | "corrupt_ids" | "hooks" | "logits"> & {
  top: NonNullable<PatchSweep["top"]>;
  clean: ArrayLike<number>;
  corrupt: ArrayLike<number>;
};

/**
 * The patching view of sweeps that tracked `answers` (one sweep per kind, their logits `[L, T, 2]`), whichever
 * model computed them: `patchSweep` here, or the NDIF relay's `patching` experiment (src/remote/).
 */
export function patchingViewOf(
  clean: string,
  corrupt: string,
  sweeps: readonly ViewedPatchSweep[],
  [a, b]: readonly [number, number] | readonly number[],
  decode: Decode
): PatchingView {
  const metric = (logits: ArrayLike<number>) => logits[a] - logits[b];
  const cleanMetric = metric(sweeps[0].clean);
  const corruptMetric = metric(sweeps[0].corrupt);
  return {
    clean,
    corrupt,
    pieces: sweeps[0].corrupt_ids.map(decode),
    answer: {id: a, token: decode(a)},
    other: {id: b, token: decode(b)},
    cleanMetric: round(cleanMetric),
    corruptMetric: round(corruptMetric),
    kinds: sweeps.map((sweep) => ({
      kind: sweep.kind,
      hooks: sweep.hooks,
      cells: sweepCells(sweep.logits.data, sweep.logits.shape, sweep.top, decode, (m) => m - corruptMetric)
    }))
  };
}

export interface AblationView {
  prompt: string;
  pieces: string[];
  answer: {id: number; token: string};
  other: {id: number; token: string};
  baseMetric: number;
  hooks: string[];
  cells: SweepCell[];
}

export const ABLATION_DEFAULTS = {prompt: PATCHING.ablationPrompt} as const;

/** Every head knocked out in turn; each cell the change in logit(answer) − logit(other) (default: the base run's top two). */
export async function ablationView(
  model: Model,
  prompt: string,
  {
    answers,
    top = PATCHING.top,
    onProgress
  }: {answers?: [number, number]; top?: number; onProgress?: (done: number, total: number) => void} = {}
): Promise<AblationView> {
  const ids = answers ?? (topK(await lastLogits(model, prompt), 2) as [number, number]);
  const sweep: AblationSweep = await ablateHeads(model, prompt, {ids, top, onProgress});
  return ablationViewOf(prompt, {...sweep, top: sweep.top!}, ids, (id) => model.tokenizer.idToPiece(id));
}

/** What a view needs of a head-ablation sweep (`ablateHeads`'s answer, or the NDIF relay's `ablation` result). */
export type ViewedAblationSweep = Pick<AblationSweep, "input_ids" | "hooks" | "logits"> & {
  top: NonNullable<AblationSweep["top"]>;
  base: ArrayLike<number>;
};

/** The ablation view of a sweep that tracked `answers`, whichever model computed it. */
export function ablationViewOf(
  prompt: string,
  sweep: ViewedAblationSweep,
  [a, b]: readonly [number, number] | readonly number[],
  decode: Decode
): AblationView {
  const baseMetric = sweep.base[a] - sweep.base[b];
  return {
    prompt,
    pieces: sweep.input_ids.map(decode),
    answer: {id: a, token: decode(a)},
    other: {id: b, token: decode(b)},
    baseMetric: round(baseMetric),
    hooks: sweep.hooks,
    cells: sweepCells(sweep.logits.data, sweep.logits.shape, sweep.top, decode, (m) => m - baseMetric)
  };
}

/** The next-token logits after `text` (one forward pass). */
async function lastLogits(model: Model, text: string): Promise<Float32Array> {
  const logits = (await model.trace(text, [LOGITS]))[LOGITS];
  return logits.data.slice(logits.data.length - model.config.vocabSize);
}

function sweepCells(
  tracked: Float32Array,
  [L, N, n]: number[],
  top: {ids: {data: Float32Array; shape: number[]}; logits: {data: Float32Array}},
  decode: (id: number) => string,
  value: (metric: number) => number
): SweepCell[] {
  const k = top.ids.shape[2];
  const cells: SweepCell[] = [];
  for (let layer = 0; layer < L; layer++) {
    for (let index = 0; index < N; index++) {
      const r = layer * N + index;
      const metric = tracked[r * n] - tracked[r * n + 1];
      cells.push({
        layer,
        index,
        metric: round(metric),
        value: round(value(metric)),
        top: Array.from({length: k}, (_, j) => ({
          id: top.ids.data[r * k + j],
          token: decode(top.ids.data[r * k + j]),
          logit: round(top.logits.data[r * k + j])
        }))
      });
    }
  }
  return cells;
}

// ---------------------------------------------------------------------------------------------------------
// Steering

export interface SteeringView {
  hook: string;
  layer: number;
  alpha: number;
  from: string;
  to: string;
  prompt: string;
  /** Continuations (text only), plain (unless asked not to) and steered. */
  plain?: string;
  steered: string;
}

/** The steered and the plain continuation of `prompt`, greedy; `onToken` streams the steered one. */
export async function steeringView(
  model: Model,
  {
    prompt,
    from,
    to,
    alpha,
    layer,
    maxNewTokens = GENERATION.maxNewTokens.default,
    plain: withPlain = true,
    onToken,
    signal
  }: {
    prompt: string;
    from: string;
    to: string;
    alpha: number;
    layer: number;
    maxNewTokens?: number;
    plain?: boolean;
    onToken?: (which: "plain" | "steered", text: string) => void;
    signal?: AbortSignal;
  }
): Promise<SteeringView> {
  const hook = model.arch.roles.resid(layer);
  const vector = await steeringVector(model, hook, from, to);
  // The continuation as it reads after the prompt: decoded with the prompt, then cut (decoded alone,
  // SentencePiece would drop its first space).
  const promptIds = model.encodeInput(prompt).ids;
  const shown = model.tokenizer.decode(promptIds, {skipSpecialTokens: true});
  const continuation = (ids: number[]) =>
    model.tokenizer.decode([...promptIds, ...ids], {skipSpecialTokens: true}).slice(shown.length);
  const run = async (which: "plain" | "steered") => {
    const ids: number[] = [];
    const generation = await model.generate(prompt, {
      maxNewTokens,
      stopAtEos: true,
      signal,
      edits: which === "steered" ? [steeringEdit(hook, vector, alpha)] : undefined,
      onToken: ({id}) => {
        ids.push(id);
        onToken?.(which, continuation(ids));
      }
    });
    return continuation(generation.new_ids);
  };
  const plain = withPlain ? await run("plain") : undefined;
  const steered = await run("steered");
  return {hook, layer, alpha, from, to, prompt, plain, steered};
}

/**
 * The steering page's defaults for a model (its prompts, alpha, layer), read off its config — the vocabulary's
 * size and the layer count — not its name: src/defaults.ts's `steeringDefaults` says why.
 */
export function steerDefaults(model: {config: {numLayers: number; vocabSize: number}}) {
  return steeringDefaults(model.config);
}

/**
 * The computations a page runs on a live model, by name: the page's model lives in a Web Worker
 * (runtime/worker.ts), which runs them there and answers with their plain data (`LanguageModel.analyse`).
 */
export const INSIDE_VIEWS = {lensView, patchingView, ablationView, steeringView, defaultPair, firstToken};
export type InsideViews = typeof INSIDE_VIEWS;
