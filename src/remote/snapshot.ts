/**
 * NDIF snapshots: the relay's results for a big model, saved at build time by the data loader
 * docs/data/ndif-snapshot.json.py (with NDIF_API_KEY; without one it says why there is none), so that the "Big
 * models (NDIF)" page shows a logit lens and a patching sweep of Llama-3.1-8B without a relay. Each saved result
 * is the relay's answer as JSON — `{experiment, params, header, tensors: {name: {dtype, shape, data}}, pieces}`
 * with `pieces` the display piece of every token id it mentions — and becomes here the same `LensView` and
 * `PatchingView` the other pages draw, through the same view code (analysis/inside-model.ts).
 */
import {lensViewOf, patchingViewOf, type Decode, type LensView, type PatchingView} from "../analysis/inside-model.js";
import type {PatchKind} from "../analysis/patching.js";
import {WorkbenchError} from "../errors.js";
import type {Tensor} from "../runtime/tensor.js";

export interface SnapshotTensor {
  dtype: "F32" | "I32";
  shape: number[];
  data: number[];
}

/** One relay result, as the snapshot loader saves it. */
export interface SnapshotResult {
  experiment: string;
  params: Record<string, unknown>;
  header: Record<string, unknown>;
  tensors: Record<string, SnapshotTensor>;
  /** Display pieces (" Paris") by token id, for every id the result mentions. */
  pieces: Record<string, string>;
}

/** The loader's output: results, or `snapshot: null` and the reason there are none. */
export interface NdifSnapshot {
  model: string;
  snapshot?: null;
  reason?: string;
  made?: string;
  nnsight?: string;
  protocol?: number;
  results?: {lens?: SnapshotResult; patching?: SnapshotResult};
}

/** The logit lens view of a saved `lens` result. */
export function snapshotLensView(result: SnapshotResult): LensView {
  const read = reader(result, "lens");
  const inputIds = read.ids("input_ids");
  const L = read.hooks().length;
  const topIds = read.tensor("top_ids", [L, inputIds.length]);
  const lens = {
    input_ids: inputIds,
    hooks: read.hooks(),
    topIds,
    topLogprobs: read.tensor("top_logprobs", topIds.shape)
  };
  return lensViewOf(lens, read.text("prompt", inputIds), read.decode);
}

/** The patching view of a saved `patching` result (one kind: the sweep the loader ran). */
export function snapshotPatchingView(result: SnapshotResult): PatchingView {
  const read = reader(result, "patching");
  const cleanIds = read.ids("clean_ids");
  const corruptIds = read.ids("corrupt_ids");
  const hooks = read.hooks();
  const [L, T] = [hooks.length, corruptIds.length];
  const answers = read.ids("ids");
  const kind = result.header.kind;
  if (kind !== "resid" && kind !== "attn" && kind !== "mlp")
    throw read.error(`header.kind is ${JSON.stringify(kind)}, not resid, attn or mlp`);
  const topIds = read.tensor("top_ids", [L, T]);
  const sweep = {
    kind: kind as PatchKind,
    corrupt_ids: corruptIds,
    hooks,
    logits: read.tensor("logits", [L, T, answers.length]),
    top: {ids: topIds, logits: read.tensor("top_logits", topIds.shape)},
    clean: read.tensor("clean", [undefined]).data,
    corrupt: read.tensor("corrupt", [undefined]).data
  };
  return patchingViewOf(read.text("clean", cleanIds), read.text("corrupt", corruptIds), [sweep], answers, read.decode);
}

/** Reading a saved result's fields, each checked, each failure naming the experiment and the field. */
function reader(result: SnapshotResult, experiment: string) {
  const error = (what: string) => new WorkbenchError(`the NDIF snapshot's ${experiment} result: ${what}`);
  if (!result || typeof result !== "object" || result.experiment !== experiment)
    throw error(`experiment is ${JSON.stringify(result?.experiment)}, not ${experiment}`);
  const decode: Decode = (id) => {
    const piece = result.pieces?.[String(id)];
    if (typeof piece !== "string") throw error(`pieces has no entry for token id ${id}`);
    return piece;
  };
  const ids = (name: string): number[] => {
    const value = result.header?.[name];
    if (!Array.isArray(value) || value.length === 0 || !value.every(Number.isInteger))
      throw error(`header.${name} is not a list of token ids`);
    return value as number[];
  };
  return {
    error,
    decode,
    ids,
    hooks(): string[] {
      const hooks = result.header?.hooks;
      if (!Array.isArray(hooks) || hooks.length === 0 || !hooks.every((h) => typeof h === "string"))
        throw error("header.hooks is not a list of hook paths");
      return hooks as string[];
    },
    /** A saved tensor, its leading axes checked against `shape` (undefined: any length). */
    tensor(name: string, shape: (number | undefined)[]): Tensor {
      const t = result.tensors?.[name];
      if (!t) throw error(`it has no tensor ${name}`);
      const size = Array.isArray(t.shape) ? t.shape.reduce((n, d) => n * d, 1) : NaN;
      if (!Array.isArray(t.data) || t.data.length !== size)
        throw error(`tensor ${name} has ${t.data?.length} values for shape [${t.shape}]`);
      if (!shape.every((n, i) => n === undefined || t.shape[i] === n))
        throw error(`tensor ${name} has shape [${t.shape.join(", ")}], expected [${shape.map((n) => n ?? "n")}, …]`);
      return {shape: t.shape, data: Float32Array.from(t.data)};
    },
    /** The text a field of `params` holds, else the pieces of its ids put together. */
    text(name: string, tokenIds: number[]): string {
      const given = result.params?.[name];
      return typeof given === "string" ? given : tokenIds.map(decode).join("");
    }
  };
}
