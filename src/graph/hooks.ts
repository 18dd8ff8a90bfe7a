/**
 * Hook points in a graph being built. An architecture names each intermediate tensor by its Hugging Face
 * module path as it builds the forward pass (`hook("model.layers.3.output", h)`); the ones a run asked for
 * become graph outputs, the others stay anonymous so that onnxruntime can fuse across them.
 *
 * Every architecture goes through `hookSite` for this, so that whatever is done at a hook point is written
 * once, here, and not in each `src/arch/` file:
 *
 * - exposing it (a graph output under its path);
 * - writing into it (an edit): the tensor is replaced before anything downstream reads it, as in nnsight where
 *   assigning to a module's `.output` does so. A read of the same hook sees the edited value. The values and
 *   the positions an edit touches are graph *inputs*, so a new value never needs a new session; only the
 *   structure (which hooks, which operation, along which axes) is baked into the graph;
 * - the logit lens: the model's own final norm and unembedding over every layer's output, with top-k in the
 *   graph (`finishDecoder`), so that `[layers, T, vocab]` never has to be copied out;
 * - packed runs: several sequences side by side along the token axis, each with its own positions, a mask that
 *   keeps them apart, and logits only where asked (`packed`), for patching sweeps in few session runs.
 */
import {type GraphBuilder, type WeightInputs, BOOL, FLOAT, INT64} from "./onnx.js";
import {LOGIT_LENS} from "../defaults.js";
import {editInputs, editSlotInput, LENS, LENS_ON, LOGITS, PACKED} from "./names.js";

export {editInputs, LENS, PACKED};

export type EditOp = "set" | "add" | "scale";

/** Where and how a graph writes into a hook point; the values themselves are inputs (see `editInputs`). */
export interface EditSite {
  /** The hook point, by module path. */
  hook: string;
  /** `set`: x := v, `add`: x := x + v, `scale`: x := x · v, where the selection holds; v broadcasts against x. */
  op: EditOp;
  /**
   * The axes along which the edit selects (PyTorch order, negative from the end), e.g. `[1]` for positions of a
   * `[1, T, d]` hook, `[-1]` for one head's columns. Each takes a list of `[from, to)` intervals as inputs;
   * the edit applies where every selected axis's index is inside one of its intervals. None: everywhere.
   */
  axes: number[];
}

export interface GraphOptions {
  /** The hook points to expose as graph outputs; all of them when omitted. */
  hooks?: string[];
  /** Writes into hook points, applied in this order (several at one hook point compose). */
  edits?: EditSite[];
  /** Add the logit lens outputs (`LENS`), with `lens.k` as an input. */
  lens?: boolean;
  /**
   * With `lens`: its full `[L, T, V]` logits as an output too (`LENS.logits`). Without them a lens run holds a few
   * layers' logits at a time (`lensLayersAtOnce`) instead of every layer's.
   */
  lensLogits?: boolean;
  /** With `lens`: how many layers it unembeds in one MatMul (default `LOGIT_LENS.layersAtOnce` in defaults.ts). */
  lensLayersAtOnce?: number;
  /** Take positions, the attention mask and the rows to unembed as inputs (`PACKED`): sequences packed side by side. */
  packed?: boolean;
  /**
   * The model's weights as graph inputs shared by all its graphs (graph/onnx.ts `WeightInputs`); without it, the
   * graph holds its weights as initializers of its own.
   */
  weights?: WeightInputs;
  /** `weights` as this graph's own initializers rather than inputs (graph/onnx.ts `GraphBuilder`). */
  weightsAsInitializers?: boolean;
  /**
   * One graph for every run of a model (with `packed`): an edit slot at every hook point that can be edited
   * (`x · scale + value`, its scale and value an input, `editSlotInput`; `GraphBuilder.editSlots` lists them in
   * order), and the logit lens behind its own switch (`LENS_ON`); every run feeds every slot and the switch. A
   * runtime that gives every session its own copy of the weights (onnxruntime-web's WASM) then needs one session
   * for the trace, the lens, patching and edits alike (docs/performance.md, "The tab").
   */
  editSlots?: boolean;
}

/** What an architecture's graph needs to know about its own hook points. */
export interface HookNames {
  /** Every hook point, in forward order. */
  all: string[];
  /** For a hook point that is the very tensor of another (a module whose output is its last layer's), that other. */
  aliasOf(path: string): string | undefined;
}

interface SiteState {
  options: GraphOptions;
  /** Edit indices by the hook point (alias resolved) they apply at. */
  editsAt: Map<string, number[]>;
  /** Hook points whose edits have been written. */
  done: Set<string>;
  /** Set by `decoderInputs` when it made the packed inputs. */
  packedInputs: boolean;
  /** The hook points the graph has named, in order, and the order `HookNames.all` promised (aliases left out). */
  named: string[];
  promised: string[];
}

/** Per graph being built: its options and where its edits are, for `decoderInputs` and `finishDecoder`. */
const sites = new WeakMap<GraphBuilder, SiteState>();

/** The options a graph is being built with (`hookSite` must have been called on it first). */
export function graphOptionsOf(g: GraphBuilder): GraphOptions {
  return sites.get(g)?.options ?? {};
}

/** `decoderInputs` says it made the packed inputs (a graph that builds its own would ignore `packed` silently). */
export function markPackedInputs(g: GraphBuilder): void {
  const state = sites.get(g);
  if (state) state.packedInputs = true;
}

/**
 * The `hook(path, tensor)` of one graph: returns the tensor to use downstream under that path — edited if the
 * run writes there, renamed to its path if it is exposed.
 */
export function hookSite(g: GraphBuilder, names: HookNames, options: GraphOptions = {}) {
  const canonical = (path: string) => names.aliasOf(path) ?? path;
  const wanted = new Set((options.hooks ?? names.all).map(canonical));
  const editsAt = new Map<string, number[]>();
  (options.edits ?? []).forEach((site, k) => {
    const at = canonical(site.hook);
    editsAt.set(at, [...(editsAt.get(at) ?? []), k]);
  });
  // The logits (and what aliases them) are named by finishDecoder, not by hook().
  const promised = names.all.filter((p) => names.aliasOf(p) === undefined && p !== LOGITS);
  const state: SiteState = {options, editsAt, done: new Set(), packedInputs: false, named: [], promised};
  sites.set(g, state);
  return (path: string, tensor: string): string => {
    state.named.push(path);
    let edited = applyEdits(g, state, path, tensor);
    if (options.editSlots && !g.isRead(tensor)) edited = editSlot(g, path, edited);
    return wanted.has(path) ? g.output(path, edited) : edited;
  };
}

export type Hook = ReturnType<typeof hookSite>;

/** Every edit at `path`, in order, on `tensor`. */
function applyEdits(g: GraphBuilder, state: SiteState, path: string, tensor: string): string {
  const edits = state.editsAt.get(path);
  if (!edits) return tensor;
  // An architecture that names a tensor only after a node has read it (attention weights, made inside the
  // attention block) cannot have it edited: the reader would see the original.
  if (g.isRead(tensor)) {
    throw new Error(
      `${path} cannot be edited: the graph reads it before naming it, so an edit would not reach downstream`
    );
  }
  state.done.add(path);
  let x = tensor;
  for (const k of edits) x = editTensor(g, x, k, state.options.edits![k]);
  return x;
}

/** One edit: `Where(selection, op(x, value), x)`, the selection made in the graph from the interval inputs. */
function editTensor(g: GraphBuilder, x: string, k: number, site: EditSite): string {
  const names = editInputs(k);
  const value = g.input(names.value, FLOAT);
  const edited = site.op === "set" ? value : g.op(site.op === "add" ? "Add" : "Mul", [x, value]);
  let selection: string | undefined;
  for (const axis of site.axes) {
    const along = axisSelection(
      g,
      x,
      axis,
      g.input(names.from(axis), INT64, [`edit${k}_axis${axis}_n`]),
      g.input(names.to(axis), INT64, [`edit${k}_axis${axis}_n`])
    );
    selection = selection ? g.op("And", [selection, along]) : along;
  }
  if (!selection) return site.op === "set" ? g.op("Expand", [value, g.op("Shape", [x])]) : edited;
  return g.op("Where", [selection, edited, x]);
}

/**
 * The edit slot at `path` (`GraphOptions.editSlots`): `x · scale + value`, scale and value the two halves of its
 * input (`editSlotInput`) along the first axis. JavaScript makes them (runtime/one-graph.ts): over the hook's whole
 * shape where a run edits there — `set`, `add` and `scale` are `(0, v)`, `(1, v)` and `(v, 0)` inside the edit's
 * selection and `(1, 0)` outside it, the same numbers as the ops themselves (x · 1 + v = x + v and x · v + 0 = x · v
 * exactly; x · 0 + v = v for any finite x) — and `[1, 0]`, broadcast, everywhere else, which gives x back exactly.
 * No `If` and no selection in the graph: onnxruntime keeps a session state for each branch of every `If` (363 slots
 * on SmolLM2-135M, ~45 MB) and runs each `If` as a subgraph, and selecting in the graph took ~125 nodes a slot
 * (docs/performance.md, "The tab, on one graph").
 */
function editSlot(g: GraphBuilder, path: string, x: string): string {
  g.editSlots.push(path);
  const [scale, value] = g.opN("Split", [g.input(editSlotInput(path), FLOAT)], 2, {axis: 0});
  return g.op("Add", [g.op("Mul", [x, scale!]), value!]);
}

/**
 * A bool mask that broadcasts against `x`: true at the indices of `axis` inside one of the intervals
 * `[from[j], to[j])` (negative bounds count from the end, as in Python), size 1 along every other axis.
 */
function axisSelection(g: GraphBuilder, x: string, axis: number, from: string, to: string): string {
  const shape = g.op("Shape", [x]);
  const size = g.op("Gather", [shape, g.constant([axis], [], INT64)], {axis: 0});
  const zero = g.constant([0], [], INT64);
  const python = (i: string) => g.op("Where", [g.op("Less", [i, zero]), g.op("Add", [i, size]), i]);
  const index = g.op("Unsqueeze", [g.op("Range", [zero, size, g.constant([1], [], INT64)]), g.ints([1])]); // [size, 1]
  const inside = g.op("And", [g.op("GreaterOrEqual", [index, python(from)]), g.op("Less", [index, python(to)])]); // [size, n]
  // Any interval: a max over them, in float (the one ReduceMax type every backend has).
  const any = g.op("ReduceMax", [g.op("Cast", [inside], {to: FLOAT})], {axes: [1], keepdims: 0});
  const mask = g.op("Greater", [any, g.scalar(0)]); // [size]
  // Reshape to [1, …, size, …, 1]: ones of x's rank, with -1 along `axis`.
  const ones = g.op("Expand", [g.constant([1], [1], INT64), g.op("Shape", [shape])]);
  const broadcast = g.op("ScatterElements", [ones, g.constant([axis], [1], INT64), g.constant([-1], [1], INT64)], {
    axis: 0
  });
  return g.op("Reshape", [mask, broadcast]);
}

/** How a decoder turns a residual stream into logits: its final norm, then the unembedding. */
export interface DecoderHead {
  /** The final norm's module path: `model.norm`, `transformer.ln_f`, `gpt_neox.final_layer_norm`. */
  normPath: string;
  /**
   * The final norm, `[1, T, d]` → `[1, T, d]` (any leading dimensions: the logit lens gives it `[G, T, d]`, a group
   * of layers).
   */
  norm(x: string): string;
  /** The unembedding, `[…, d]` → `[1, T, vocab]` or `[…, vocab]` (soft-capping included where the family has it). */
  unembed(x: string): string;
}

/**
 * The end of every decoder graph: the final norm (a hook point) and the logits. `layerOutputs` are the
 * residual stream after each layer (as edited), which the logit lens reads through the model's own head.
 */
export function finishDecoder(g: GraphBuilder, hook: Hook, head: DecoderHead, h: string, layerOutputs: string[]): void {
  const state = sites.get(g);
  if (!state) throw new Error("finishDecoder: the graph has no hookSite");
  const {options} = state;
  let final = hook(`${head.normPath}.output`, head.norm(h));
  checkHookOrder(state);
  if (options.packed) {
    if (!state.packedInputs) throw new Error("a packed graph needs decoderInputs (graph/layers.ts) to make its inputs");
    final = g.op("Gather", [final, g.input(PACKED.logitsIndex, INT64, ["N"])], {axis: 1});
  }
  let logits = applyEdits(g, state, LOGITS, head.unembed(final));
  if (options.editSlots) logits = editSlot(g, LOGITS, logits);
  g.output(LOGITS, logits);
  if (options.editSlots) switchedLens(g, head, layerOutputs);
  else if (options.lens) logitLens(g, head, layerOutputs, options.lensLogits ?? false, options.lensLayersAtOnce);
  const missed = [...state.editsAt.keys()].filter((path) => !state.done.has(path));
  if (missed.length) throw new Error(`edits at ${missed.join(", ")}: the graph has no such hook point`);
}

/**
 * A family's `hookPoints()` is its forward order; the graph must name exactly those, in that order, or a hook
 * point would be listed that no graph has (or named where the list says otherwise).
 */
function checkHookOrder({named, promised}: SiteState): void {
  const k = named.findIndex((path, i) => path !== promised[i]);
  if (k === -1 && named.length === promised.length) return;
  const at = k === -1 ? named.length : k;
  throw new Error(
    `hook points out of order at ${at}: the graph named ${named[at] ?? "nothing more"} where hookPoints() lists ${promised[at] ?? "nothing more"}`
  );
}

/**
 * The logit lens behind a switch (`LENS_ON`, default off): off, its outputs are empty and nothing is computed. On,
 * its full logits are empty too: a run that wants them (`lensLogits`) takes a graph of its own
 * (runtime/one-graph.ts).
 */
function switchedLens(g: GraphBuilder, head: DecoderHead, layerOutputs: string[]): void {
  const on = g.input(LENS_ON, BOOL, []);
  const k = g.input(LENS.k, INT64, [1]);
  const lens = g.subgraph("logit lens", () => {
    const [logits, logprobs, ids] = lensOutputs(g, head, layerOutputs, k, false, false);
    return [
      [logits, FLOAT],
      [logprobs, FLOAT],
      [ids, INT64]
    ];
  });
  const none = g.subgraph("no logit lens", () => [
    [g.constant([], [0, 0, 0]), FLOAT],
    [g.constant([], [0, 0, 0]), FLOAT],
    [g.constant([], [0, 0, 0], INT64), INT64]
  ]);
  const outs = [LENS.logits, LENS.topLogprobs, LENS.topIds];
  g.opN("If", [on], 3, {then_branch: lens, else_branch: none}, outs);
  g.output(LENS.logits, LENS.logits);
  g.output(LENS.topLogprobs, LENS.topLogprobs);
  g.output(LENS.topIds, LENS.topIds, INT64);
}

/** Every layer's output through the final norm and the unembedding, then its top-k. */
function logitLens(
  g: GraphBuilder,
  head: DecoderHead,
  layerOutputs: string[],
  withLogits: boolean,
  atOnce: number | undefined
): void {
  const k = g.input(LENS.k, INT64, [1]);
  const [logits, logprobs, ids] = lensOutputs(g, head, layerOutputs, k, true, withLogits, atOnce);
  if (withLogits) g.output(LENS.logits, logits);
  g.output(LENS.topLogprobs, logprobs);
  g.output(LENS.topIds, ids, INT64);
}

/**
 * The lens's top-`k` log-probabilities and ids `[L, T, k]`, and its `[L, T, V]` logits where `withLogits` (else an
 * empty `[0, 0, 0]`); `named`: as `LENS` names them.
 */
function lensOutputs(
  g: GraphBuilder,
  head: DecoderHead,
  layerOutputs: string[],
  k: string,
  named: boolean,
  withLogits: boolean,
  atOnce: number = LOGIT_LENS.layersAtOnce.default
): [string, string, string] {
  const parts: {logits: string; logprobs: string; ids: string}[] = [];
  for (let first = 0; first < layerOutputs.length; first += atOnce) {
    const group = layerOutputs.slice(first, first + atOnce);
    const stacked = g.op("Concat", group, {axis: 0}); // [G, T, d]: the batch axis holds the layers
    // Reshape's 0 keeps the vocabulary axis, whether the unembedding gave [1, G·T, V] or [G, T, V].
    const logits = g.op("Reshape", [head.unembed(head.norm(stacked)), g.ints([group.length, -1, 0])]);
    // Top-k of the logits, then minus their log-sum-exp: the same as top-k of LogSoftmax, without writing and
    // reading back a second [G, T, V] tensor.
    const [values, ids] = g.opN("TopK", [logits, k], 2, {axis: -1, largest: 1, sorted: 1});
    const logSumExp = g.op("ReduceLogSumExp", [logits], {axes: [-1], keepdims: 1});
    parts.push({logits, logprobs: g.op("Sub", [values, logSumExp]), ids: ids!});
  }
  const stack = (key: "logits" | "logprobs" | "ids", name: string) =>
    g.op(
      "Concat",
      parts.map((p) => p[key]),
      {axis: 0},
      named ? name : undefined
    );
  const logits = withLogits ? stack("logits", LENS.logits) : g.constant([], [0, 0, 0]);
  return [logits, stack("logprobs", LENS.topLogprobs), stack("ids", LENS.topIds)];
}
