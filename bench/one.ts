/**
 * One benchmark run in its own process, so that its peak memory (`maxRSS`) is its own:
 *
 *   tsx bench/one.ts --model SmolLM2-135M --init random --runtime node|web [--quick] --out file.json
 *   tsx bench/one.ts --floor --runtime node --out file.json        the machine's limits
 *
 * Writes a JSON object to `--out`; `bench.ts` turns it into rows.
 */
import {writeFileSync} from "node:fs";
import {parseArgs} from "node:util";
import {LOGITS} from "../src/arch/types.js";
import {loadModel} from "../src/node.js";
import {copyBandwidth, matmulRate, median, passCost} from "./measure.js";

const {values: args} = parseArgs({
  options: {
    model: {type: "string"},
    runtime: {type: "string", default: "node"},
    floor: {type: "boolean", default: false},
    quick: {type: "boolean", default: false},
    init: {type: "string", default: "checkpoint"},
    out: {type: "string"}
  }
});
const runtime = args.runtime === "web" ? "web" : "node";

export interface FloorResult {
  kind: "floor";
  runtime: "node" | "web";
  matmulN: number;
  flopRate: number;
  bandwidth: number;
}

export interface ModelResult {
  kind: "model";
  model: string;
  runtime: "node" | "web";
  parameters: number;
  graphBuildMs: number;
  sessionCreateMs: number;
  /** Per prompt length: median ms, logits only and every hook point; FLOPs and weight bytes of the pass. */
  forward: {tokens: number; logitsMs: number; allHooksMs: number; hooks: number; flops: number; weightBytes: number}[];
  generate: {context: number; newTokens: number; kvTokensPerS: number; noKvTokensPerS: number; sameTokens: boolean};
  peakRssMb: number;
  reps: {forward: number; generate: number};
}

async function floor(): Promise<FloorResult> {
  // Large enough to be compute-bound on any backend, small enough for single-threaded WASM in seconds.
  const n = runtime === "web" ? 1024 : 2048;
  const flopRate = await matmulRate(runtime, n, args.quick ? 3 : 7);
  const bandwidth = await copyBandwidth(256 * 2 ** 20, args.quick ? 3 : 7);
  return {kind: "floor", runtime, matmulN: n, flopRate, bandwidth};
}

/** Token ids spread over the vocabulary, the same for every run. */
function promptIds(length: number, vocab: number): number[] {
  return Array.from({length}, (_, i) => (1 + i * 7919) % vocab);
}

async function model(id: string): Promise<ModelResult> {
  const stamps = new Map<string, number>();
  const m = await loadModel(id, {runtime, init: args.init === "random" ? "random" : "checkpoint", seed: 0, onProgress: (p) => stamps.set(p.stage, performance.now())});
  const graphBuildMs = stamps.get("session")! - stamps.get("graph")!;
  const sessionCreateMs = stamps.get("ready")! - stamps.get("session")!;
  const big = m.parameters().reduce((s, p) => s + p.numel, 0) > 10e6;
  const forwardReps = args.quick ? 3 : big ? 7 : 21;
  const generateReps = args.quick ? 1 : big ? 3 : 7;

  const hooks = m.hookPoints();
  const forward: ModelResult["forward"] = [];
  for (const T of [10, 128]) {
    const tokens = Math.min(T, m.config.maxPositions);
    const ids = promptIds(tokens, m.config.vocabSize);
    // Warm up, then alternate the two kinds of pass so that a noisy neighbour slows both alike.
    await m.forward(ids, [LOGITS]);
    await m.forward(ids, hooks);
    const logits: number[] = [];
    const all: number[] = [];
    for (let r = 0; r < forwardReps; r++) {
      let t = performance.now();
      await m.forward(ids, [LOGITS]);
      logits.push(performance.now() - t);
      t = performance.now();
      await m.forward(ids, hooks);
      all.push(performance.now() - t);
    }
    const cost = passCost(m.config, m.parameters(), tokens);
    forward.push({tokens, logitsMs: median(logits), allHooksMs: median(all), hooks: hooks.length, ...cost});
  }

  // Greedy generation from a 128-token context (less where the model has fewer positions), with the
  // key/value cache and by re-running the whole sequence at every step; both must choose the same tokens.
  const newTokens = args.quick ? 8 : 16;
  const context = Math.min(128, m.config.maxPositions - newTokens);
  const prompt = promptIds(context, m.config.vocabSize);
  // Tokens/s is the decoding rate at that context: from the first new token to the last, so the first
  // step (the whole prompt, the same work with or without a cache) is left out of both.
  const run = async (useCache: boolean) => {
    const stamps: number[] = [];
    const g = await m.generate(prompt, {maxNewTokens: newTokens, useCache, stopAtEos: false, onToken: () => stamps.push(performance.now())});
    return {ms: stamps[stamps.length - 1] - stamps[0], ids: g.new_ids};
  };
  await m.generate(prompt, {maxNewTokens: 2, useCache: true, stopAtEos: false});
  await m.generate(prompt, {maxNewTokens: 2, useCache: false, stopAtEos: false});
  const kv: number[] = [];
  const noKv: number[] = [];
  let sameTokens = true;
  for (let r = 0; r < generateReps; r++) {
    const a = await run(true);
    const b = await run(false);
    kv.push(a.ms);
    noKv.push(b.ms);
    sameTokens &&= a.ids.length === b.ids.length && a.ids.every((id, i) => id === b.ids[i]);
  }
  await m.dispose();
  return {
    kind: "model",
    model: id,
    runtime,
    parameters: m.parameters().reduce((s, p) => s + p.numel, 0),
    graphBuildMs,
    sessionCreateMs,
    forward,
    generate: {
      context,
      newTokens,
      kvTokensPerS: (newTokens - 1) / (median(kv) / 1000),
      noKvTokensPerS: (newTokens - 1) / (median(noKv) / 1000),
      sameTokens
    },
    // Linux reports maxRSS in KiB.
    peakRssMb: (process.resourceUsage().maxRSS * 1024) / 1e6,
    reps: {forward: forwardReps, generate: generateReps}
  };
}

const result = args.floor ? await floor() : await model(args.model ?? "stories260K");
const text = JSON.stringify(result);
if (args.out) writeFileSync(args.out, text);
else console.log(text);
