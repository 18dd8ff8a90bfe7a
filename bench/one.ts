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
import {loadModel} from "../src/node.js";
import {copyBandwidth, matmulRate} from "./measure.js";
import {measureModel, type Measured} from "./procedure.js";

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

/** Forward passes, generation and their repetitions as `bench/procedure.ts` measures them (shared with Chromium). */
export interface ModelResult extends Measured {
  kind: "model";
  model: string;
  runtime: "node" | "web";
  graphBuildMs: number;
  sessionCreateMs: number;
  peakRssMb: number;
}

async function floor(): Promise<FloorResult> {
  // Large enough to be compute-bound on any backend, small enough for single-threaded WASM in seconds.
  const n = runtime === "web" ? 1024 : 2048;
  const flopRate = await matmulRate(runtime, n, args.quick ? 3 : 7);
  const bandwidth = await copyBandwidth(256 * 2 ** 20, args.quick ? 3 : 7);
  return {kind: "floor", runtime, matmulN: n, flopRate, bandwidth};
}

async function model(id: string): Promise<ModelResult> {
  const stamps = new Map<string, number>();
  const m = await loadModel(id, {runtime, init: args.init === "random" ? "random" : "checkpoint", seed: 0, onProgress: (p) => stamps.set(p.stage, performance.now())});
  const graphBuildMs = stamps.get("session")! - stamps.get("graph")!;
  const sessionCreateMs = stamps.get("ready")! - stamps.get("session")!;
  const measured = await measureModel(m, args.quick);
  await m.dispose();
  return {
    kind: "model",
    model: id,
    runtime,
    graphBuildMs,
    sessionCreateMs,
    ...measured,
    // Linux reports maxRSS in KiB.
    peakRssMb: (process.resourceUsage().maxRSS * 1024) / 1e6
  };
}

const result = args.floor ? await floor() : await model(args.model ?? "stories260K");
const text = JSON.stringify(result);
if (args.out) writeFileSync(args.out, text);
else console.log(text);
