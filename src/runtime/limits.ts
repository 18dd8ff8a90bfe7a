/**
 * Size limits, checked before anything is allocated: a config that cannot fit where it would run is refused
 * at once with the memory it would need, instead of running for a minute into an out-of-memory crash or a
 * RangeError (hidden size 4096 × 32 layers × a 32,000-token vocabulary with random weights wanted 6 GB and
 * more; a hidden size of 1e9 ran 44 s before failing).
 */
import type {Architecture} from "../arch/types.js";
import {WorkbenchError} from "../errors.js";

/** How much memory a model may take where it runs, and what to call that place in an error. */
export interface MemoryBudget {
  bytes: number;
  /** "this machine", "a browser tab". */
  where: string;
}

/**
 * A tab: onnxruntime-web's WASM memory is 32-bit (at most 4 GiB), and the weights pass through it or through
 * the tab's own heap on their way to the GPU.
 */
export const TAB_BUDGET: MemoryBudget = {bytes: 4e9, where: "a browser tab (onnxruntime-web's memory is at most 4 GB)"};

/**
 * The memory a model needs at its peak: every parameter as float32, twice — the model's one JS copy, fed to every
 * run, and the copy the runtime makes of it (onnxruntime-web's WASM heap holds the inputs of a run; on WebGPU a
 * session's initializers pass through the heap on their way to the GPU). Activations of a short prompt are small
 * beside that.
 */
export function memoryNeeded(arch: Architecture): {parameters: number; bytes: number} {
  let parameters = 0;
  for (const p of arch.parameters()) parameters += p.numel;
  return {parameters, bytes: parameters * 4 * 2};
}

/** Refuses a model that would need more memory than `budget`, saying how much it needs and how much there is. */
export function checkFits(arch: Architecture, id: string, budget: MemoryBudget | undefined): void {
  if (!budget) return;
  const {parameters, bytes} = memoryNeeded(arch);
  if (bytes <= budget.bytes) return;
  const c = arch.config;
  throw new WorkbenchError(
    `${id}: too large to run here — config.json (hidden size ${c.hiddenSize}, ${c.numLayers} layers, vocabulary ${c.vocabSize}) ` +
      `makes ${count(parameters)} parameters, which need about ${gigabytes(bytes)} of memory as float32 while the session is made; ` +
      `${budget.where} has ${gigabytes(budget.bytes)}. Pick a smaller model or config.`
  );
}

function gigabytes(bytes: number): string {
  return bytes >= 1e15
    ? `${(bytes / 1e15).toPrecision(3)} PB`
    : bytes >= 1e12
      ? `${(bytes / 1e12).toPrecision(3)} TB`
      : `${(bytes / 1e9).toPrecision(3)} GB`;
}

function count(n: number): string {
  return n >= 1e9
    ? `${(n / 1e9).toPrecision(3)} billion`
    : n >= 1e6
      ? `${(n / 1e6).toPrecision(3)} million`
      : String(n);
}
