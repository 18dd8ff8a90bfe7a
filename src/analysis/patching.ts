/**
 * Activation patching and head ablation as sweeps: one patched (or ablated) run per (layer, position) or
 * (layer, head), each read at its last position.
 *
 * The runs are packed: many of them go side by side along the token axis of one session run, each with its own
 * positions and a mask that keeps it to itself, so the weights are read once for dozens of runs. Patching also
 * reuses the corrupt run: patching position p leaves every position before p as the corrupt run had it (attention
 * is causal), so a patched run only computes positions p … T-1, over the corrupt run's cached keys and values
 * for 0 … p-1 — about half the tokens of T full runs. And before the first token where the two prompts differ,
 * the clean and corrupt runs are the same: a patch there changes nothing, and its result is the corrupt run's.
 */
import {LOGITS} from "../graph/names.js";
import {PACKED} from "../graph/names.js";
import type {Cache} from "../runtime/cache.js";
import {releaseCache} from "../runtime/cache.js";
import type {Edit, Feed} from "../runtime/edits.js";
import type {Model} from "../runtime/model.js";
import type {Tensor} from "../runtime/tensor.js";
import {WorkbenchError} from "../errors.js";
import {PATCHING} from "../defaults.js";
import {topK} from "./index.js";

export type PatchKind = (typeof PATCHING.kind.choices)[number];
export const PATCH_KINDS: readonly PatchKind[] = PATCHING.kind.choices;

export interface SweepOptions {
  /** The token ids whose logits to keep for every run; default: see `defaultIds`. */
  ids?: number[];
  /** Also keep every run's full last-position logits (`[…, V]`: for small vocabularies and tests). */
  full?: boolean;
  /** Also keep each run's `top` most likely next tokens (ids and logits), for a view that opens one run. */
  top?: number;
  /** At most this many tokens per session run (default `PATCHING.maxTokens`): a bound on the packed run's memory. */
  maxTokens?: number;
  /** Called after each packed run with the runs done and the total. */
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface PatchSweep {
  kind: PatchKind;
  clean_ids: number[];
  corrupt_ids: number[];
  clean_tokens: string[];
  corrupt_tokens: string[];
  /** The hook patched at each layer (`roles.resid/attn/mlp`). */
  hooks: string[];
  /** The tracked token ids. */
  ids: number[];
  /** Last-position logits of the tracked ids for each patched run, `[L, T, ids.length]`. */
  logits: Tensor;
  /** Every patched run's last-position logits `[L, T, V]`, with `full`. */
  full?: Tensor;
  /** With `top`: each run's most likely next tokens, `ids` and `logits` `[L, T, top]`. */
  top?: {ids: Tensor; logits: Tensor};
  /** The unpatched runs' last-position logits `[V]`. */
  clean: Float32Array;
  corrupt: Float32Array;
}

export interface AblationSweep {
  input_ids: number[];
  tokens: string[];
  /** The hook whose head slice is zeroed at each layer (`roles.heads`). */
  hooks: string[];
  ids: number[];
  /** Last-position logits of the tracked ids with head h of layer l knocked out, `[L, H, ids.length]`. */
  logits: Tensor;
  full?: Tensor;
  top?: {ids: Tensor; logits: Tensor};
  /** The unablated run's last-position logits `[V]`. */
  base: Float32Array;
}

/** The clean run's 4 most likely next tokens, then the corrupt run's 4 most likely not already listed. */
export function defaultIds(
  clean: ArrayLike<number>,
  corrupt: ArrayLike<number>,
  each: number = PATCHING.each
): number[] {
  const ids = topK(clean, each);
  for (const id of topK(corrupt, each + ids.length)) {
    if (ids.length >= 2 * each) break;
    if (!ids.includes(id)) ids.push(id);
  }
  return ids;
}

/** A fixed order of the sweep's edit sites (kind-major), so that every kind's sweep has the same graph structure. */
function editOrder(model: Model, hook: string): number {
  for (let l = 0; l < model.config.numLayers; l++) {
    const k = PATCH_KINDS.findIndex((kind) => patchHook(model, kind, l) === hook);
    if (k >= 0) return k * model.config.numLayers + l;
  }
  return -1;
}

/** Where each role sits in a layer: the hook a patch of that kind writes at. */
export function patchHook(model: Model, kind: PatchKind, layer: number): string {
  const {roles} = model.arch;
  if (kind === "resid") return roles.resid(layer);
  if (kind === "attn") return roles.attn(layer);
  if (kind === "mlp") return roles.mlp(layer);
  throw new WorkbenchError(`unknown patching kind ${kind as string}: use resid, attn or mlp`);
}

/**
 * Run the corrupt prompt once for every (layer, position), with the `kind` block's output at that layer and
 * position set to the clean run's value there.
 */
export async function patchSweep(
  model: Model,
  clean: string | number[],
  corrupt: string | number[],
  kind: PatchKind = PATCHING.kind.default,
  options: SweepOptions = {}
): Promise<PatchSweep> {
  const c = model.encodeInput(clean);
  const x = model.encodeInput(corrupt);
  if (c.ids.length !== x.ids.length) {
    throw new WorkbenchError(
      `the clean and corrupt prompts must have as many tokens to patch position by position: clean is ${c.ids.length} ` +
        `(${JSON.stringify(c.tokens)}), corrupt ${x.ids.length} (${JSON.stringify(x.tokens)})`
    );
  }
  const L = model.config.numLayers;
  const T = c.ids.length;
  const hooks = Array.from({length: L}, (_, l) => patchHook(model, kind, l));
  const cleanRun = await model.forward(c.ids, [...hooks, LOGITS]);
  // The corrupt run once, keeping its keys and values: every patched run starts from them.
  const corruptRun = await model.run(x.ids, undefined, [LOGITS], true);
  try {
    const cleanLast = lastRow(cleanRun.get(LOGITS)!);
    const corruptLast = lastRow(corruptRun.outputs.get(LOGITS)!);
    const ids = options.ids ?? defaultIds(cleanLast, corruptLast);
    checkIds(model, ids);
    const d = cleanRun.get(hooks[0])!.shape[2];
    // Run (l, p) computes positions p … T-1; its first token is the patched one.
    const runs = hooks.flatMap((_, l) => Array.from({length: T}, (_, p) => ({layer: l, start: p})));
    let firstDifference = c.ids.findIndex((id, i) => id !== x.ids[i]);
    if (firstDifference < 0) firstDifference = T;
    const results = await sweep(model, runs, {
      unchanged: (r) => (r.start < firstDifference ? corruptLast : undefined),
      tokens: (r) => x.ids.slice(r.start),
      start: (r) => r.start,
      cache: corruptRun.cache,
      past: T,
      // Edits at every kind's hooks, the other kinds' selecting nothing: one graph structure, hence one session,
      // serves all three sweeps (a session holds its own copy of the weights).
      edits: (chunk, offsets, N) =>
        PATCH_KINDS.flatMap((k) =>
          k === kind
            ? []
            : hooks.map((_, l): Edit => ({hook: patchHook(model, k, l), op: "set", value: 0, positions: []}))
        )
          .concat(
            hooks.map((hook, l) => {
              const value = new Float32Array(N * d);
              const positions: number[] = [];
              const cleanValue = cleanRun.get(hook)!.data;
              chunk.forEach((r, j) => {
                if (r.layer !== l) return;
                positions.push(offsets[j]);
                value.set(cleanValue.subarray(r.start * d, (r.start + 1) * d), offsets[j] * d);
              });
              return {
                hook,
                op: "set",
                value: positions.length ? {shape: [1, N, d], data: value} : 0,
                positions
              } satisfies Edit;
            })
          )
          .sort((a, b) => editOrder(model, a.hook) - editOrder(model, b.hook)),
      ids,
      full: options.full,
      options
    });
    return {
      kind,
      clean_ids: c.ids,
      corrupt_ids: x.ids,
      clean_tokens: c.tokens,
      corrupt_tokens: x.tokens,
      hooks,
      ids,
      ...sweepTensors(results, [L, T], ids, model.config.vocabSize),
      clean: cleanLast,
      corrupt: corruptLast
    };
  } finally {
    releaseCache(corruptRun.cache);
  }
}

/** Knock out every attention head in turn (its slice of `roles.heads` set to 0 at every position). */
export async function ablateHeads(
  model: Model,
  input: string | number[],
  options: SweepOptions = {}
): Promise<AblationSweep> {
  const {ids: inputIds, tokens} = model.encodeInput(input);
  const {numLayers: L, numHeads: H, headDim: D} = model.config;
  const T = inputIds.length;
  const hooks = Array.from({length: L}, (_, l) => model.arch.roles.heads(l));
  const base = lastRow((await model.forward(inputIds, [LOGITS])).get(LOGITS)!);
  const ids = options.ids ?? topK(base, 2 * PATCHING.each);
  checkIds(model, ids);
  const runs = hooks.flatMap((_, l) => Array.from({length: H}, (_, h) => ({layer: l, head: h})));
  const width = H * D;
  const results = await sweep(model, runs, {
    tokens: () => inputIds,
    start: () => 0,
    cache: undefined,
    past: 0,
    // One scale per layer: 0 on the knocked-out head's columns of its run's rows, 1 elsewhere (x · 1 is x exactly).
    edits: (chunk, offsets, N) =>
      hooks.map((hook, l) => {
        if (!chunk.some((r) => r.layer === l)) return {hook, op: "scale", value: 1} satisfies Edit;
        const value = new Float32Array(N * width).fill(1);
        chunk.forEach((r, j) => {
          if (r.layer !== l) return;
          for (let t = 0; t < T; t++)
            value.fill(0, (offsets[j] + t) * width + r.head * D, (offsets[j] + t) * width + (r.head + 1) * D);
        });
        return {hook, op: "scale", value: {shape: [1, N, width], data: value}} satisfies Edit;
      }),
    ids,
    full: options.full,
    options
  });
  return {
    input_ids: inputIds,
    tokens,
    hooks,
    ids,
    ...sweepTensors(results, [L, H], ids, model.config.vocabSize),
    base
  };
}

/** A sweep's results as tensors over its runs `[L, N]` (N positions, or heads): the tracked logits, and the full and top ones where kept. */
function sweepTensors(
  results: Awaited<ReturnType<typeof sweep>>,
  [L, N]: [number, number],
  ids: number[],
  V: number
): Pick<PatchSweep, "logits" | "full" | "top"> {
  return {
    logits: {shape: [L, N, ids.length], data: results.tracked},
    full: results.full && {shape: [L, N, V], data: results.full},
    top: results.top && {
      ids: {shape: [L, N, results.topK], data: results.top.ids},
      logits: {shape: [L, N, results.topK], data: results.top.logits}
    }
  };
}

interface SweepPlan<R> {
  /** For a run known to equal an unedited one (patching where both prompts agree so far), that run's logits. */
  unchanged?(run: R): Float32Array | undefined;
  /** The tokens a run computes, and the position of its first one. */
  tokens(run: R): number[];
  start(run: R): number;
  /** Keys and values of positions 0 … past-1 shared by every run (a run starting at p sees those before p). */
  cache: Cache | undefined;
  past: number;
  /** The edits of one packed run: `offsets[j]` is the row of run j's first token, `N` the rows in all. */
  edits(chunk: R[], offsets: number[], N: number): Edit[];
  ids: number[];
  full?: boolean;
  options: SweepOptions;
}

/** Pack the runs into as few session runs as `maxTokens` allows; the tracked (and full) last-position logits of each, in order. */
async function sweep<R>(
  model: Model,
  runs: R[],
  plan: SweepPlan<R>
): Promise<{
  tracked: Float32Array;
  full?: Float32Array;
  top?: {ids: Float32Array; logits: Float32Array};
  topK: number;
}> {
  const V = model.config.vocabSize;
  const topK_ = Math.min(plan.options.top ?? 0, V);
  const top = topK_
    ? {ids: new Float32Array(runs.length * topK_), logits: new Float32Array(runs.length * topK_)}
    : undefined;
  const maxTokens = plan.options.maxTokens ?? (model.oneGraph ? PATCHING.oneGraphMaxTokens : PATCHING.maxTokens);
  const tracked = new Float32Array(runs.length * plan.ids.length);
  const full = plan.full ? new Float32Array(runs.length * V) : undefined;
  const record = (r: number, row: Float32Array) => {
    plan.ids.forEach((id, m) => (tracked[r * plan.ids.length + m] = row[id]));
    full?.set(row, r * V);
    if (top) {
      topK(row, topK_).forEach((id, m) => {
        top.ids[r * topK_ + m] = id;
        top.logits[r * topK_ + m] = row[id];
      });
    }
  };
  // The runs to compute, by index; the others are copies of a run already made.
  const todo: number[] = [];
  runs.forEach((run, r) => {
    const same = plan.unchanged?.(run);
    if (same) record(r, same);
    else todo.push(r);
  });
  let done = 0;
  plan.options.onProgress?.(runs.length - todo.length, runs.length);
  while (done < todo.length) {
    if (plan.options.signal?.aborted) throw new WorkbenchError("the sweep was cancelled");
    const chunk: R[] = [];
    let N = 0;
    for (let i = done; i < todo.length; i++) {
      const n = plan.tokens(runs[todo[i]]).length;
      if (chunk.length && N + n > maxTokens) break;
      chunk.push(runs[todo[i]]);
      N += n;
    }
    const packed = pack(
      chunk.map((r) => ({tokens: plan.tokens(r), start: plan.start(r)})),
      plan.past
    );
    const edits = plan.edits(chunk, packed.offsets, packed.ids.length);
    const extras = model.editExtras(edits);
    const {outputs} = await model.run(packed.ids, plan.cache, [LOGITS], false, {
      structure: {...extras.structure, packed: true, hooks: []},
      feeds: {...extras.feeds, ...packed.feeds}
    });
    const logits = outputs.get(LOGITS)!.data; // [1, chunk.length, V]
    chunk.forEach((_, j) => record(todo[done + j], logits.subarray(j * V, (j + 1) * V)));
    done += chunk.length;
    plan.options.onProgress?.(runs.length - todo.length + done, runs.length);
  }
  return {tracked, full, top, topK: topK_};
}

/**
 * Sequences side by side: `ids`, and the packed graph's inputs — each token's position, a mask that lets it
 * see the shared past before its sequence's start and its own sequence's earlier tokens only, and the row of
 * each sequence's last token (the only logits made).
 */
export function pack(
  sequences: {tokens: number[]; start: number}[],
  past: number
): {ids: number[]; offsets: number[]; feeds: Record<string, Feed>} {
  const N = sequences.reduce((n, s) => n + s.tokens.length, 0);
  const S = past + N;
  const ids: number[] = [];
  const offsets: number[] = [];
  const positions = new BigInt64Array(N);
  const last = new BigInt64Array(sequences.length);
  const mask = new Uint8Array(N * S).fill(1); // 1: may not look
  sequences.forEach((s, j) => {
    const offset = ids.length;
    offsets.push(offset);
    ids.push(...s.tokens);
    last[j] = BigInt(offset + s.tokens.length - 1);
    for (let t = 0; t < s.tokens.length; t++) {
      const row = (offset + t) * S;
      positions[offset + t] = BigInt(s.start + t);
      mask.fill(0, row, row + Math.min(s.start, past)); // the shared past before this sequence's start
      mask.fill(0, row + past + offset, row + past + offset + t + 1); // its own tokens up to this one
    }
  });
  return {
    ids,
    offsets,
    feeds: {
      [PACKED.positions]: {type: "int64", data: positions, dims: [N]},
      [PACKED.mask]: {type: "bool", data: mask, dims: [N, S]},
      [PACKED.logitsIndex]: {type: "int64", data: last, dims: [sequences.length]}
    }
  };
}

function lastRow(t: Tensor): Float32Array {
  const V = t.shape[t.shape.length - 1];
  return t.data.slice(t.data.length - V);
}

function checkIds(model: Model, ids: number[]): void {
  if (ids.length === 0) throw new WorkbenchError("no token ids to track");
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= model.config.vocabSize) {
      throw new WorkbenchError(`token id ${id} is outside the vocabulary (0 to ${model.config.vocabSize - 1})`);
    }
  }
}
