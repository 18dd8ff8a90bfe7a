/**
 * Counting what a run asks of the GPU: compute dispatches (one per kernel), queue submissions, uploads and readbacks
 * (buffers mapped for reading, and their bytes). These counts are the same on a software adapter (SwiftShader)
 * as on a real GPU, so a machine without one can drive them down and tests can keep them from creeping back;
 * timings it cannot measure.
 *
 * The count is taken where every WebGPU user passes — the prototypes of the WebGPU interfaces (the page's, or
 * Dawn's in Node once `runtime/webgpu-node.ts` has installed them as globals) — so it sees onnxruntime's JSEP
 * kernels, its native WebGPU execution provider and the engine's own batched download alike.
 *
 * Nodes that onnxruntime placed on its CPU provider are read from its verbose log ("Node(s) placed on
 * [CPUExecutionProvider]. Number of nodes: N"), which is the only place it says so: `cpuNodesFromLog`.
 */

export interface GPUCounts {
  /** Compute dispatches: one per kernel run. */
  kernels: number;
  /** `queue.submit` calls. */
  submits: number;
  /**
   * `queue.writeBuffer` calls: onnxruntime writes each kernel's uniforms this way when it runs a graph; a
   * replayed (captured) graph writes none, so what is left are the caller's own inputs.
   */
  uploads: number;
  /** Buffers mapped for reading: each is one wait for the GPU and one copy to the host. */
  readbacks: number;
  readbackBytes: number;
}

interface Counter {
  /** The counts since the last `take()` (or since counting began), and a fresh start. */
  take(): GPUCounts;
  /** Put the prototypes back as they were. */
  stop(): void;
}

type Proto = Record<string, unknown>;
const MAP_READ = 0x0001;

/** Start counting GPU work on the WebGPU interfaces of `scope` (default: globalThis). */
export function countGPUWork(
  scope: Record<string, unknown> = globalThis as unknown as Record<string, unknown>
): Counter {
  const proto = (name: string): Proto => {
    const ctor = scope[name] as {prototype?: Proto} | undefined;
    if (!ctor?.prototype) throw new Error(`countGPUWork: no ${name} here (WebGPU is not set up)`);
    return ctor.prototype;
  };
  let counts = zero();
  const restores: (() => void)[] = [];
  const wrap = (target: Proto, method: string, count: (self: {size?: number}, args: unknown[]) => void) => {
    const original = target[method] as ((...args: unknown[]) => unknown) | undefined;
    if (typeof original !== "function") return;
    target[method] = function (this: {size?: number}, ...args: unknown[]) {
      count(this, args);
      return original.apply(this, args);
    };
    restores.push(() => (target[method] = original));
  };
  const pass = proto("GPUComputePassEncoder");
  wrap(pass, "dispatchWorkgroups", () => counts.kernels++);
  wrap(pass, "dispatchWorkgroupsIndirect", () => counts.kernels++);
  wrap(proto("GPUQueue"), "submit", () => counts.submits++);
  wrap(proto("GPUQueue"), "writeBuffer", () => counts.uploads++);
  wrap(proto("GPUBuffer"), "mapAsync", (buffer, [mode, , size]) => {
    if (((mode as number) & MAP_READ) === 0) return;
    counts.readbacks++;
    counts.readbackBytes += typeof size === "number" ? size : (buffer.size ?? 0);
  });
  return {
    take() {
      const taken = counts;
      counts = zero();
      return taken;
    },
    stop() {
      for (const restore of restores.reverse()) restore();
    }
  };
}

function zero(): GPUCounts {
  return {kernels: 0, submits: 0, uploads: 0, readbacks: 0, readbackBytes: 0};
}

/**
 * How many nodes onnxruntime placed on its CPU execution provider, from the verbose log of a session's
 * creation (session option `logSeverityLevel: 0`); 0 when the log says every node went elsewhere.
 */
export function cpuNodesFromLog(log: string): number {
  const match = /Node\(s\) placed on \[CPUExecutionProvider\]\. Number of nodes: (\d+)/.exec(log);
  if (match) return Number(match[1]);
  if (!/Node placements/.test(log))
    throw new Error("the log has no node placements: was the session created with logSeverityLevel 0?");
  return 0;
}
