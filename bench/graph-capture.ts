/**
 * What graph capture asks of the lean decoder (runtime/decode.ts), shown on onnxruntime-web's native WebGPU provider
 * (Dawn in Node; SwiftShader where there is no GPU). `npx tsx bench/graph-capture.ts [model]` (default stories260K)
 * decodes the reference's continuation three ways, each step after the first a replay:
 *
 * - "the captured decoder": `loadModel(…, {graphCapture: true})`, as the engine does it: the reference's tokens.
 * - "caller buffers": the cache, ids and lengths in buffers made here. ort-web registers a caller's buffer for a run
 *   and releases its handle when the run ends, so the replay's recorded bind groups name handles that are gone:
 *   Dawn refuses them ("no overload matched for createBindGroup").
 * - "logits made by a Reshape": buffers ort-web owns (outputs of a session of their own), but the logits output made
 *   by a Reshape, as the lean graph first made it, and the ArgMax reading it. A graph output that a Reshape makes is
 *   a copy into the caller's buffer, and a replay replays kernels, not copies: every replay's ArgMax reads the
 *   captured step's logits and gives its token, whatever ids are written into the inputs.
 *
 * Note that ort-web passes `enableGraphCapture` to the native provider only when the provider is given as an
 * object (`{name: "webgpu"}`); as the string "webgpu" the option is silently left off.
 */
process.env.VK_ICD_FILENAMES ??= "/usr/lib/chromium/vk_swiftshader_icd.json";
process.env.XDG_RUNTIME_DIR ??= "/tmp";
import {readFileSync} from "node:fs";
import {fileURLToPath} from "node:url";
import type {Tensor} from "onnxruntime-common";
import {loadModel} from "../src/node.js";
import {paddedHead} from "../src/graph/decode.js";
import {cacheNames, LOGITS} from "../src/graph/names.js";
import {FLOAT, GraphBuilder, INT32, INT64} from "../src/graph/onnx.js";
import {BUFFER_USAGE, MAP_MODE_READ, type GPUDeviceLike} from "../src/runtime/webgpu-types.js";

const id = process.argv[2] ?? "stories260K";
const model = await loadModel(id, {runtime: "webgpu-native", leanDecode: false});
// The engine's own handles, for this reproduction only.
const {ort} = (model as unknown as {options: {ort: any}}).options;
const weights = await (model as unknown as {weights: {loadAll(o: object): Promise<any>}}).weights.loadAll({});
/** The lean graph with its logits output made by a Reshape of the head's Gemm, and the ArgMax reading that output. */
const reshaped = (() => {
  const build = GraphBuilder.prototype.build;
  GraphBuilder.prototype.build = function (this: GraphBuilder, name: string) {
    const nodes = (this as unknown as {nodes: {opType: string; input: string[]; output: string[]}[]}).nodes;
    const producer = nodes.find((n) => n.output[0] === LOGITS)!;
    producer.output[0] = "head_gemm";
    this.op("Reshape", ["head_gemm", this.ints([1, -1])], {}, LOGITS);
    return build.call(this, name);
  };
  try {
    return model.arch.buildDecodeGraph!(weights);
  } finally {
    GraphBuilder.prototype.build = build;
  }
})();
const device = (await ort.env.webgpu.device) as GPUDeviceLike;
const {numLayers: L, numKeyValueHeads: KV, headDim, vocabSize: V} = model.config;
const C = 64;
const P = paddedHead(headDim).P;
const specs: [string, number, number[]][] = [];
for (let i = 0; i < L; i++) specs.push([`k${i}`, FLOAT, [1, KV, C, P]], [`v${i}`, FLOAT, [1, KV, C, P]]);
specs.push(["ids", INT64, [1, 1]], ["seq", INT32, [1]], ["tot", INT32, []], ["pos", INT64, [1, 1]]);
specs.push(["next", INT64, [1]], ["logits", FLOAT, [1, V]]);
const reference = JSON.parse(
  readFileSync(fileURLToPath(new URL(`../test/fixtures/${id}/reference.json`, import.meta.url)), "utf8")
).generations[0] as {input_ids: number[]; new_ids: number[]};

/** Tensors of those shapes: buffers made here, or outputs of a session that makes zeros of them. */
async function buffers(owned: boolean): Promise<Record<string, Tensor>> {
  if (!owned) {
    const usage = BUFFER_USAGE.STORAGE | BUFFER_USAGE.COPY_SRC | BUFFER_USAGE.COPY_DST;
    const bytes = (type: number) => (type === INT64 ? 8 : 4);
    return Object.fromEntries(
      specs.map(([name, type, dims]) => {
        const size = Math.max(16, dims.reduce((a, b) => a * b, 1) * bytes(type));
        const dataType = type === INT64 ? "int64" : type === INT32 ? "int32" : "float32";
        return [name, ort.Tensor.fromGpuBuffer(device.createBuffer({size, usage}), {dataType, dims})];
      })
    );
  }
  const g = new GraphBuilder();
  for (const [name, type, dims] of specs) {
    let t = g.op("Expand", [g.constant([0], [1], type), g.ints(dims.length ? dims : [1])]);
    if (!dims.length) t = g.op("ReduceMax", [t], {keepdims: 0});
    g.output(name, t, type, dims);
  }
  const zeros = await ort.InferenceSession.create(g.build("zeros").model, {
    executionProviders: [{name: "webgpu"}],
    preferredOutputLocation: "gpu-buffer"
  });
  return zeros.run({});
}

async function decode(owned: boolean): Promise<string> {
  const session = await ort.InferenceSession.create(reshaped.model, {
    externalData: reshaped.externalData,
    executionProviders: [{name: "webgpu"}],
    preferredOutputLocation: "gpu-buffer",
    graphOptimizationLevel: "all",
    enableGraphCapture: true
  });
  const t = await buffers(owned);
  const staging = device.createBuffer({size: 16, usage: BUFFER_USAGE.MAP_READ | BUFFER_USAGE.COPY_DST});
  const write = (tensor: Tensor, data: BigInt64Array | Int32Array) =>
    (device.queue as unknown as {writeBuffer(b: unknown, o: number, d: ArrayBufferView): void}).writeBuffer(
      tensor.gpuBuffer,
      0,
      data
    );
  let length = 0;
  const step = async (token: number, capture: boolean) => {
    write(t.ids, BigInt64Array.of(BigInt(token)));
    write(t.seq, Int32Array.of(length));
    write(t.tot, Int32Array.of(length + 1));
    write(t.pos, BigInt64Array.of(BigInt(length)));
    const feeds: Record<string, Tensor> = {input_ids: t.ids, seqlens_k: t.seq, total_sequence_length: t.tot};
    if (session.inputNames.includes("position_ids")) feeds.position_ids = t.pos;
    const fetches: Record<string, Tensor> = {next_token: t.next, [LOGITS]: t.logits};
    for (let i = 0; i < L; i++) {
      const names = cacheNames(i);
      feeds[names.pastKey] = fetches[names.presentKey] = t[`k${i}`];
      feeds[names.pastValue] = fetches[names.presentValue] = t[`v${i}`];
    }
    await session.run(feeds, fetches, capture ? {} : {extra: {gpu_graph_id: "-1"}});
    length++;
    const encoder = device.createCommandEncoder();
    encoder.copyBufferToBuffer(t.next.gpuBuffer, 0, staging, 0, 8);
    device.queue.submit([encoder.finish()]);
    await staging.mapAsync(MAP_MODE_READ);
    const next = Number(new BigInt64Array(staging.getMappedRange().slice(0, 8))[0]);
    staging.unmap();
    return next;
  };
  try {
    let next = -1;
    for (const token of reference.input_ids) next = await step(token, false);
    const out = [next];
    while (out.length < reference.new_ids.length) out.push((next = await step(next, true)));
    const same = out.join() === reference.new_ids.join();
    return same
      ? "the reference's tokens"
      : `tokens ${out.join(",")}, not the reference's ${reference.new_ids.join(",")}`;
  } catch (error) {
    return `failed: ${String((error as Error).message)
      .split("\n")[0]
      .slice(0, 200)}`;
  } finally {
    await session.release();
  }
}

const captured = await loadModel(id, {runtime: "webgpu-native", graphCapture: true});
const out = await captured.generate(reference.input_ids, {maxNewTokens: reference.new_ids.length, stopAtEos: false});
const same = out.new_ids.join() === reference.new_ids.join();
console.log(
  `${id}, the captured decoder (${(await captured.leanDecoder())?.captured ? "captured" : "NOT captured"}): ` +
    (same
      ? "the reference's tokens"
      : `tokens ${out.new_ids.join(",")}, not the reference's ${reference.new_ids.join(",")}`)
);
await captured.dispose();
// The failing ways, the one whose error leaves the provider unusable for another session last.
for (const owned of [true, false]) {
  console.log(`${id}, ${owned ? "logits made by a Reshape" : "caller buffers"}: ${await decode(owned)}`);
}
await model.dispose();
process.exit(0);
