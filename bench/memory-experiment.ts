// Experiment (not part of the bench): where SmolLM2-135M's peak RSS comes from, and what lowers it.
//   tsx bench/memory-experiment.ts baseline|noprepack   or   node --expose-gc --import tsx bench/memory-experiment.ts file
import {readFileSync, writeFileSync, mkdtempSync} from "node:fs";
import {tmpdir} from "node:os";
import {join} from "node:path";
import * as ort from "onnxruntime-node";
import {architectureFor, normalizeConfig} from "../src/arch/index.js";
import {randomWeights} from "../src/runtime/weights.js";
import {LOGITS, cacheNames} from "../src/arch/types.js";
const variant = process.argv[2] ?? "baseline";
const rss = () => ((process.resourceUsage().maxRSS * 1024) / 1e6).toFixed(0);
const config = normalizeConfig(JSON.parse(readFileSync("../shared/models/SmolLM2-135M/config.json", "utf8")));
const arch = architectureFor(config);
const make = await randomWeights(arch, 0).loadAll();
let encoded: any = arch.buildGraph(make);
let model: any;
console.log(variant, "after build maxRSS", rss(), "current", (process.memoryUsage().rss / 1e6).toFixed(0));
const opts: any = {executionProviders: ["cpu"], graphOptimizationLevel: "all"};
model = encoded.model;
if (variant === "file") {
  const dir = mkdtempSync(join(tmpdir(), "lmw-"));
  writeFileSync(join(dir, "weights.bin"), encoded.externalData[0].data);
  writeFileSync(join(dir, "model.onnx"), encoded.model);
  model = join(dir, "model.onnx");
  encoded = undefined;
  (globalThis as any).gc?.();
  console.log(variant, "after gc current", (process.memoryUsage().rss / 1e6).toFixed(0));
} else {
  opts.externalData = encoded.externalData;
}
if (variant === "noprepack") opts.extra = {session: {disable_prepacking: "1"}};
if (variant === "noarena") opts.enableCpuMemArena = false;
const t = performance.now();
const session = await ort.InferenceSession.create(model, opts);
encoded = undefined;
console.log(variant, "session", (performance.now() - t).toFixed(0), "ms; maxRSS", rss(), "current", (process.memoryUsage().rss / 1e6).toFixed(0));
const feeds: any = {input_ids: new ort.Tensor("int64", BigInt64Array.from({length: 10}, (_, i) => BigInt(i + 1)), [1, 10])};
for (let i = 0; i < config.numLayers; i++) {
  const n = cacheNames(i);
  feeds[n.pastKey] = new ort.Tensor("float32", new Float32Array(0), [1, config.numKeyValueHeads, 0, config.headDim]);
  feeds[n.pastValue] = new ort.Tensor("float32", new Float32Array(0), [1, config.numKeyValueHeads, 0, config.headDim]);
}
const times: number[] = [];
for (let r = 0; r < 12; r++) { const t0 = performance.now(); await session.run(feeds, [LOGITS]); times.push(performance.now() - t0); }
times.sort((a, b) => a - b);
console.log(variant, "fwd10 median", times[6].toFixed(1), "ms; maxRSS", rss());
