/**
 * The GPT-style decoder that GPT-2 and GPT-NeoX share, declared once: LayerNorms with biases, one projection that
 * makes q, k and v side by side, eager attention over the key/value cache, a biased MLP, and a sequential or parallel
 * residual. A family file gives its module tree (names, classes, parameters: what `print(model)` and
 * `named_parameters()` are read from), the names its blocks go by in the forward pass, and its switches; the hook
 * points, `aliasOf`, the traced graph and the lean decode graph are derived here, the last two from the same
 * sublayers in the same order.
 *
 *   h₀ = tokens[ids] (+ positions[pos])                          GPT-2's learned positions
 *   for each layer:
 *     x = norm_1(h);  q | k | v = qkv(x)                          GPT-2: thirds of c_attn; NeoX: each head's thirds
 *     q, k = rope(q), rope(k)                                     GPT-NeoX only: the first rotary dims of each head
 *     a = out(softmax(q kᵀ / √D + mask) v)
 *     sequential: h = h + a;  h = h + mlp(norm_2(h))             mlp(y) = down(act(up(y)))
 *     parallel:   h = h + a + mlp(norm_2(h))                      (GPT-NeoX's use_parallel_residual)
 *   logits = head(final_norm(h))
 */
import {GraphBuilder, INT64} from "../graph/onnx.js";
import {finishDecoder, hookSite} from "../graph/hooks.js";
import {
  DECODE,
  decodeHead,
  decodeInputs,
  groupQueryAttention,
  packHeads,
  packedProjection,
  padHeadRows,
  paddedHead,
  residualStream,
  rotaryTables
} from "../graph/decode.js";
import {
  bindWeights,
  cachedAttention,
  decoderInputs,
  layerNorm,
  linear,
  rotaryEmbedding,
  splitHeads,
  tiedHead,
  transpose
} from "../graph/layers.js";
import type {Activation} from "./activations.js";
import type {ModelConfig} from "./config.js";
import {type Module, parametersOf, printModule} from "./module-tree.js";
import {type Architecture, type GraphOptions, type Roles, LOGITS, blockOutputAliases} from "./types.js";

/** What a GPT-style family declares. Module names are relative to the layer (`attn.c_attn`) unless said to be paths. */
export interface GptStyle {
  config: ModelConfig;
  roles: Roles;
  /** The module tree as transformers 4.57 prints it, with each module's parameters. */
  modules: Module;
  /** Paths: the token embedding, GPT-2's learned positions, the final norm, the unembedding. */
  tokens: string;
  positions?: string;
  finalNorm: string;
  head: string;
  /** The layer's two norms; its attention and MLP blocks and their modules. */
  norms: [string, string];
  attention: {block: string; qkv: string; out: string};
  mlp: {block: string; up: string; act: string; down: string};
  /** GPT-2's Conv1D: weights stored `[in, out]`, used as they are (a Linear's `[out, in]` is transposed at load). */
  conv1d: boolean;
  /** How qkv's output holds q, k and v: "thirds" (GPT-2: q | k | v) or "heads" (GPT-NeoX: each head's q | k | v). */
  qkvLayout: "thirds" | "heads";
  /** The rotary embedding on the first `dim` dimensions of each head (GPT-NeoX). */
  rotary?: {dim: number; base: number};
  parallelResidual: boolean;
  activation: Activation;
  checkpointNames(name: string): string[];
  isBuffer(name: string): boolean;
}

export function gptDecoder(s: GptStyle): Architecture {
  const {config, roles, norms, attention: at, mlp: ml} = s;
  const {numLayers: L, hiddenSize: d, numHeads: H, headDim: D, vocabSize: V} = config;
  const R = s.rotary?.dim ?? D;
  const eps = config.normEps;
  const headOutput = `${s.head}.output`;

  function hookPoints(): string[] {
    const hooks = [`${s.tokens}.output`, ...(s.positions ? [`${s.positions}.output`] : [])];
    for (let i = 0; i < L; i++) {
      const [a, m] = [`${roles.layer(i)}.${at.block}`, `${roles.layer(i)}.${ml.block}`];
      hooks.push(
        `${roles.layer(i)}.${norms[0]}.output`,
        `${a}.${at.qkv}.output`,
        `${a}.attn_weights`,
        `${a}.${at.out}.input`,
        `${a}.${at.out}.output`,
        `${a}.output`,
        `${roles.layer(i)}.${norms[1]}.output`,
        ...[ml.up, ml.act, ml.down].map((p) => `${m}.${p}.output`),
        `${m}.output`,
        `${roles.layer(i)}.output`
      );
    }
    return [...hooks, `${s.finalNorm}.output`, headOutput];
  }

  /** A block's output is its last module's; the unembedding's output (GPT-NeoX's embed_out) is the logits. */
  const blockAlias = blockOutputAliases({[at.block]: at.out, [ml.block]: ml.down});
  const aliasOf = (path: string) => (path === headOutput && path !== LOGITS ? LOGITS : blockAlias(path));
  const parameters = () => parametersOf(s.modules);
  const shapeOf = new Map(parameters().map((p) => [p.name, p.shape]));
  const has = (name: string) => shapeOf.has(name);

  /** One graph's parameters: `inOut(name)` a projection's weight as `[in, out]` for `x · W`. */
  function weightsOf(g: GraphBuilder, weight: (name: string) => Float32Array) {
    const {w, wT} = bindWeights(g, weight, (name) => shapeOf.get(name)!);
    const inOut = (name: string) => (s.conv1d ? w(name) : wT(name));
    const ln = (x: string, module: string) => layerNorm(g, x, w(`${module}.weight`), w(`${module}.bias`), eps);
    const tokens = w(`${s.tokens}.weight`);
    const head = () => (config.tieWordEmbeddings ? tokens : w(`${s.head}.weight`));
    return {w, inOut, ln, tokens, head};
  }

  function buildGraph(weight: (name: string) => Float32Array, options: GraphOptions = {}) {
    const g = new GraphBuilder(options.weights, options.weightsAsInitializers);
    const hook = hookSite(g, {all: hookPoints(), aliasOf}, options);
    const {w, inOut, ln, tokens, head} = weightsOf(g, weight);
    const project = (x: string, name: string) =>
      linear(g, x, inOut(`${name}.weight`), has(`${name}.bias`) ? w(`${name}.bias`) : undefined);
    const {ids, pos, mask} = decoderInputs(g, {layers: L, kvHeads: H, headDim: D});
    const rope = s.rotary
      ? rotaryEmbedding(g, pos, {maxPositions: config.maxPositions, headDim: D, rotaryDim: R, base: s.rotary.base})
      : (x: string) => x;

    let h = hook(`${s.tokens}.output`, g.op("Gather", [tokens, ids], {axis: 0}));
    if (s.positions) {
      const rows = g.op("Gather", [w(`${s.positions}.weight`), pos.query], {axis: 0});
      h = g.op("Add", [h, hook(`${s.positions}.output`, g.op("Unsqueeze", [rows, g.ints([0])]))]);
    }
    const layerOutputs: string[] = [];
    for (let i = 0; i < L; i++) {
      const l = roles.layer(i);
      const [a, m] = [`${l}.${at.block}`, `${l}.${ml.block}`];
      const x = hook(`${l}.${norms[0]}.output`, ln(h, `${l}.${norms[0]}`));
      const qkv = hook(`${a}.${at.qkv}.output`, project(x, `${a}.${at.qkv}`));
      const [q, k, v] =
        s.qkvLayout === "thirds"
          ? g.opN("Split", [qkv, g.ints([d, d, d])], 3, {axis: -1}).map((t) => splitHeads(g, t, H, D))
          : g.opN("Split", [splitHeads(g, qkv, H, 3 * D), g.ints([D, D, D])], 3, {axis: -1});
      const shape = {heads: H, kvHeads: H, headDim: D};
      const names = {weights: `${a}.attn_weights`, merged: `${a}.${at.out}.input`};
      const merged = cachedAttention(g, hook, {query: rope(q), key: rope(k), value: v}, i, mask, shape, names);
      const attnOut = hook(`${a}.${at.out}.output`, project(merged, `${a}.${at.out}`));

      // Parallel residual: the MLP reads the layer's input, not h + attention.
      const mlpInput = s.parallelResidual ? h : g.op("Add", [h, attnOut]);
      const y = hook(`${l}.${norms[1]}.output`, ln(mlpInput, `${l}.${norms[1]}`));
      const up = hook(`${m}.${ml.up}.output`, project(y, `${m}.${ml.up}`));
      const act = hook(`${m}.${ml.act}.output`, s.activation.graph(g, up));
      const down = hook(`${m}.${ml.down}.output`, project(act, `${m}.${ml.down}`));
      const sum = s.parallelResidual ? g.op("Add", [g.op("Add", [down, attnOut]), h]) : g.op("Add", [mlpInput, down]);
      h = hook(`${l}.output`, sum);
      layerOutputs.push(h);
    }
    const [unembedding, normWeight, normBias] = [head(), w(`${s.finalNorm}.weight`), w(`${s.finalNorm}.bias`)];
    const finalNorm = (x: string) => layerNorm(g, x, normWeight, normBias, eps);
    const unembed = (x: string) => tiedHead(g, x, unembedding, d, V);
    finishDecoder(g, hook, {normPath: s.finalNorm, norm: finalNorm, unembed}, h, layerOutputs);
    return g.build(config.architecture);
  }

  /**
   * qkv's weight `[rows, 3d]` as `[in, out]` (rows 1: its bias) → q, k and v blocks side by side, each head in its
   * padded slots (`packHeads`).
   */
  function packQkv(m: Float32Array, rows: number): Float32Array {
    const parts = [0, 1, 2].map((part) => {
      const block = new Float32Array(rows * d);
      for (let r = 0; r < rows; r++)
        for (let h = 0; h < H; h++) {
          // thirds: q | k | v, each [heads·D]; heads: each head's q | k | v.
          const from = r * 3 * d + (s.qkvLayout === "thirds" ? part * d + h * D : (h * 3 + part) * D);
          block.set(m.subarray(from, from + D), r * d + h * D);
        }
      return {data: block, heads: H};
    });
    return packHeads(parts, rows, D, R);
  }

  /**
   * The lean decode graph (graph/decode.ts), over the same sublayers: each LayerNorm with the residual add and the
   * previous projection's bias in one SkipLayerNormalization, q/k/v in one MatMul, GroupQueryAttention (with the
   * rotary on the first rotary dims where the family has one: the others sit where its tables say cos 1, sin 0), the
   * activation with its bias in one kernel, the next token chosen on the GPU. Learned positions come in as
   * `position_ids`. With the parallel residual the MLP's norm reads the layer's input beside the attention's, and
   * both outputs join the stream in one Add, their biases as one.
   */
  function buildDecodeGraph(weight: (name: string) => Float32Array) {
    const g = new GraphBuilder();
    const {w, inOut, tokens, head} = weightsOf(g, weight);
    const {P} = paddedHead(D, R);
    const {ids, seqlensK, totalLength} = decodeInputs(g, {layers: L, kvHeads: H, headDim: D});
    const rotary = s.rotary
      ? rotaryTables(g, {positions: config.maxPositions, headDim: D, rotary: R, base: s.rotary.base})
      : undefined;
    let embedded = g.op("Gather", [tokens, ids], {axis: 0});
    if (s.positions) {
      const positions = g.input(DECODE.positions, INT64, [1, "T"]);
      embedded = g.op("Add", [embedded, g.op("Gather", [w(`${s.positions}.weight`), positions], {axis: 0})]);
    }
    const stream = residualStream(g, embedded, eps);
    const norm = (module: string) => stream.norm(w(`${module}.weight`), w(`${module}.bias`));
    const asInOut = (name: string, rows: number, cols: number) =>
      s.conv1d ? weight(name) : transpose(weight(name), rows, cols);
    for (let i = 0; i < L; i++) {
      const l = roles.layer(i);
      const [a, m] = [`${l}.${at.block}`, `${l}.${ml.block}`];
      const x = norm(`${l}.${norms[0]}`);
      const input = stream.current;
      const qkvName = `${a}.${at.qkv}`;
      const packed = {
        weight: packQkv(asInOut(`${qkvName}.weight`, 3 * d, d), d),
        bias: has(`${qkvName}.bias`) ? packQkv(weight(`${qkvName}.bias`), 1) : undefined,
        rows: d
      };
      const qkv = packedProjection(g, x, qkvName, packed);
      const lengths = {seqlensK, totalLength};
      const context = groupQueryAttention(g, qkv, i, lengths, {heads: H, kvHeads: H, headDim: D, rotary});
      const outName = `${a}.${at.out}.weight`;
      const outWeight = padHeadRows(asInOut(outName, d, d), H, D, d, R);
      const attnOut = g.op("MatMul", [context, g.weight(outName, outWeight, [H * P, d])]);
      const outBias = has(`${a}.${at.out}.bias`) ? `${a}.${at.out}.bias` : undefined;
      const mlp = (y: string) => {
        const up = g.op("MatMul", [y, inOut(`${m}.${ml.up}.weight`)]);
        return g.op("MatMul", [s.activation.fused(g, up, w(`${m}.${ml.up}.bias`)), inOut(`${m}.${ml.down}.weight`)]);
      };
      const downBias = `${m}.${ml.down}.bias`;
      if (s.parallelResidual) {
        const post = `${l}.${norms[1]}`;
        const y = layerNorm(g, input, w(`${post}.weight`), w(`${post}.bias`), eps);
        // Both biases go in with the residual, as one.
        const attnBias = outBias ? weight(outBias) : undefined;
        const joint = attnBias ? weight(downBias).map((b, k) => b + attnBias[k]) : weight(downBias);
        stream.add(g.op("Add", [attnOut, mlp(y)]), g.weight(`${l}.output.bias`, joint, [d]));
      } else {
        // The projections' biases are added by the next SkipLayerNormalization, with the residual.
        stream.add(attnOut, outBias ? w(outBias) : undefined);
        stream.add(mlp(norm(`${l}.${norms[1]}`)), w(downBias));
      }
    }
    decodeHead(g, norm(s.finalNorm), head(), d);
    return g.build(`${config.architecture} (decode)`);
  }

  return {
    config,
    slidingWindows: Array.from({length: L}, () => null),
    roles,
    parameters,
    hookPoints,
    moduleTree: () => printModule(s.modules),
    buildGraph,
    buildDecodeGraph,
    aliasOf,
    checkpointNames: s.checkpointNames,
    isBuffer: s.isBuffer
  };
}
