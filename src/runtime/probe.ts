/**
 * The timed probe behind "auto" where the adapter alone cannot say: a hardware GPU is not always faster than the
 * CPU (an integrated GPU against a many-core CPU, a driver with a high cost per dispatch), so on first load the
 * same small network runs on onnxruntime's WebGPU and its WASM, and the faster one is taken. The answer is kept
 * (by adapter and thread count) so that later loads do not probe again.
 *
 * The network is six residual MLP blocks of width 256 (24 kernels), run at 1 position (what a generation step
 * costs: dispatches and memory) and at 16 (what a traced prompt costs: arithmetic), a warm-up and then the median
 * of three runs each. About 13 MB of weights, a fraction of a second on either backend of a real machine.
 */
import {FLOAT, GraphBuilder} from "../graph/onnx.js";

/** Milliseconds for one pass at each probed length, summed (median of three runs each). */
export interface ProbeTimes {
  webgpu: number;
  wasm: number;
}

interface OrtLike {
  InferenceSession: {
    create(
      model: Uint8Array,
      options: {executionProviders: string[]; externalData?: {path: string; data: Uint8Array}[]}
    ): Promise<{
      run(feeds: Record<string, unknown>): Promise<Record<string, {getData?: () => Promise<unknown>}>>;
      release(): Promise<void>;
    }>;
  };
  Tensor: new (type: "float32", data: Float32Array, dims: number[]) => unknown;
}

const WIDTH = 256;
const BLOCKS = 6;
const LENGTHS = [1, 16];
const RUNS = 3;

/** The probe's network: `x + W2 · relu(W1 · x)`, six times over. */
function probeGraph() {
  const g = new GraphBuilder();
  // The values do not matter to the time: one small constant matrix of each shape, shared by every block.
  const up = new Float32Array(WIDTH * 4 * WIDTH).fill(1 / WIDTH);
  const down = new Float32Array(4 * WIDTH * WIDTH).fill(1 / (4 * WIDTH));
  let x = g.input("x", FLOAT, ["T", WIDTH]);
  for (let b = 0; b < BLOCKS; b++) {
    const h = g.op("Relu", [g.op("MatMul", [x, g.weight(`up.${b}`, up, [WIDTH, 4 * WIDTH])])]);
    x = g.op("Add", [x, g.op("MatMul", [h, g.weight(`down.${b}`, down, [4 * WIDTH, WIDTH])])]);
  }
  g.output("y", x, FLOAT, ["T", WIDTH]);
  return g.build("backend-probe");
}

/** Time the probe on one execution provider: the outputs come back to the host, as a forward pass's do. */
async function timeOn(
  ort: OrtLike,
  provider: "webgpu" | "wasm",
  {model, externalData}: ReturnType<typeof probeGraph>
): Promise<number> {
  const session = await ort.InferenceSession.create(model, {executionProviders: [provider], externalData});
  try {
    let total = 0;
    for (const T of LENGTHS) {
      const feeds = {x: new ort.Tensor("float32", new Float32Array(T * WIDTH).fill(0.5), [T, WIDTH])};
      const once = async () => {
        const started = performance.now();
        const out = await session.run(feeds);
        await out.y.getData?.();
        return performance.now() - started;
      };
      await once(); // shaders compiled, buffers made
      const times: number[] = [];
      for (let r = 0; r < RUNS; r++) times.push(await once());
      total += times.sort((a, b) => a - b)[RUNS >> 1];
    }
    return total;
  } finally {
    await session.release();
  }
}

/** Probes made, by the module that times WebGPU, then the one that times WASM. */
const probes = new WeakMap<object, WeakMap<object, Promise<ProbeTimes>>>();

/**
 * Both backends timed, WASM on `ort` and WebGPU on `webgpuOrt` (the build that would run it: the pages' native
 * provider), once per pair of modules: loads that overlap (the worker's warm-up) share the probe.
 */
export function timeBackends(ort: OrtLike, webgpuOrt: OrtLike = ort): Promise<ProbeTimes> {
  const made = probes.get(webgpuOrt) ?? probes.set(webgpuOrt, new WeakMap()).get(webgpuOrt)!;
  let probe = made.get(ort);
  if (!probe) {
    probe = (async () => {
      const graph = probeGraph();
      return {webgpu: await timeOn(webgpuOrt, "webgpu", graph), wasm: await timeOn(ort, "wasm", graph)};
    })();
    made.set(ort, probe);
    probe.catch(() => made.delete(ort));
  }
  return probe;
}

/** Where a probe's answer is kept between loads. */
export interface ProbeStore {
  get(key: string): Promise<ProbeTimes | undefined>;
  set(key: string, times: ProbeTimes): Promise<void>;
}

/**
 * The browser's Cache Storage (a worker has no localStorage), under a URL of the site's own that is never
 * fetched; nothing where there is none (Node, an insecure origin). A failure to read or write only means probing
 * again next time.
 */
export const cacheStore: ProbeStore = {
  async get(key) {
    try {
      const cache = await openCache();
      const hit = await cache?.match(probeUrl(key));
      return hit ? ((await hit.json()) as ProbeTimes) : undefined;
    } catch {
      return undefined;
    }
  },
  async set(key, times) {
    try {
      await (await openCache())?.put(probeUrl(key), new Response(JSON.stringify(times)));
    } catch {
      // not kept: the next load probes again
    }
  }
};

function openCache(): Promise<Cache> | undefined {
  const storage = (globalThis as {caches?: CacheStorage}).caches;
  return storage?.open("lm-workbench-backend-probe");
}

function probeUrl(key: string): string {
  return new URL(`/.lm-workbench/backend-probe/${encodeURIComponent(key)}`, globalThis.location?.href).href;
}
