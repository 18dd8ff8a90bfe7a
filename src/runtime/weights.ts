/**
 * A model's weights by parameter name: read from its checkpoint (checked against the architecture, tensor
 * by tensor) or made up from a seed (`init: "random"`), so that a config alone can be inspected and traced.
 */
import type {Architecture, Parameter} from "../arch/types.js";
import {WorkbenchError} from "../errors.js";
import type {Checkpoint} from "../hub/checkpoint.js";
import type {ReadOptions} from "../hub/source.js";

export interface Weights {
  /** "checkpoint" or "random (seed N)". */
  readonly origin: string;
  /**
   * The checkpoint stores its parameters at 16 bits (BF16 or F16): the graph may keep each at 2 bytes where
   * float16 holds its values (graph/onnx.ts `toHalf`). False for fp32 checkpoints; random weights follow config.json's
   * dtype, as the checkpoint they stand in for would.
   */
  readonly halfPrecision: boolean;
  /** Every parameter, loaded; the graph builder takes each one once. */
  loadAll(opts?: ReadOptions): Promise<(name: string) => Float32Array>;
  /** One parameter, loaded on its own (for looking at a weight matrix). */
  load(name: string): Promise<Float32Array>;
}

/** A weights origin as people say it: "checkpoint" → "trained weights"; "random (seed 0)" → "random weights (seed 0)". */
export function weightsLabel(origin: string | undefined): string {
  if (!origin) return "";
  if (origin.startsWith(REMOTE_ORIGIN)) return "trained weights, on NDIF";
  return origin === "checkpoint" ? "trained weights" : origin.replace(/^random/, "random weights");
}

/** A remote model's `weightsOrigin` starts so (src/remote/): the checkpoint, run on NDIF's servers. */
export const REMOTE_ORIGIN = "NDIF (remote)";

/** Whether numbers from a model of this `weightsOrigin` come from random weights ("random (seed N)"). */
export function isRandomWeights(origin: string | undefined): boolean {
  return origin?.startsWith("random") ?? false;
}

/** Match the checkpoint's tensors to the architecture's parameters: every one present, every shape right. */
export function checkpointWeights(arch: Architecture, checkpoint: Checkpoint): Weights {
  const located = new Map<string, string>(); // parameter name → checkpoint tensor name
  for (const p of arch.parameters()) {
    const name = arch.checkpointNames(p.name).find((n) => checkpoint.tensors.has(n));
    if (!name) {
      throw new WorkbenchError(
        `${checkpoint.files.join(", ")}: tensor ${arch.checkpointNames(p.name)[0]} is missing ` +
          `(${arch.config.architecture} with this config.json needs ${p.name} of shape [${p.shape}])`
      );
    }
    const info = checkpoint.tensors.get(name)!;
    if (info.shape.join() !== p.shape.join()) {
      throw new WorkbenchError(
        `${info.file}: tensor ${name} has shape [${info.shape}], but config.json implies [${p.shape}]`
      );
    }
    located.set(p.name, name);
  }
  const dtypes = new Set([...located.values()].map((name) => checkpoint.tensors.get(name)!.dtype));
  return {
    origin: "checkpoint",
    halfPrecision: [...dtypes].every((dtype) => dtype === "BF16" || dtype === "F16"),
    async loadAll(opts) {
      // Only the parameters: a checkpoint's buffers (GPT-2's masks, old Pythia's BOOL and 0-d ones) are never converted.
      const tensors = await checkpoint.loadAll(opts, new Set(located.values()));
      // Each tensor is handed over once and forgotten here, so the graph's copy is the only one left.
      return (name) => {
        const key = located.get(name)!;
        const tensor = tensors.get(key);
        if (!tensor) throw new Error(`parameter ${name} was already taken from the checkpoint`);
        tensors.delete(key);
        return tensor;
      };
    },
    load: (name) => checkpoint.load(located.get(name) ?? unknownParameter(name))
  };
}

/** The origin of weights drawn by `randomWeights(arch, seed)`: "random (seed N)". */
export const randomOrigin = (seed: number) => `random (seed ${seed})`;

/**
 * Weights drawn from N(0, initializer_range) — norms at 1, biases at 0 — as Hugging Face initializes a fresh
 * model. Each tensor has its own stream seeded by (seed, name), so any one can be made again on its own.
 *
 * They stand in for a checkpoint that is not at hand, so they take its precision: where config.json's dtype is
 * bfloat16 or float16 (SmolLM2, Qwen2.5, Gemma 3 on the Hub) each draw is rounded to it, as `from_config(config,
 * torch_dtype=config.torch_dtype)` would give, and the model holds them at 2 bytes where a checkpoint's would be
 * (runtime/model.ts `keepPrecision`): the memory a page measures on random weights is the checkpoint's.
 */
export function randomWeights(arch: Architecture, seed: number): Weights {
  const byName = new Map(arch.parameters().map((p) => [p.name, p]));
  const std = initializerRange(arch.config.raw.initializer_range);
  const dtype = arch.config.torchDtype;
  const round = dtype === "bfloat16" ? toBfloat16 : dtype === "float16" ? toFloat16 : undefined;
  const make = (name: string) => {
    const data = initialize(byName.get(name) ?? unknownParameter(name), seed, std);
    return round ? round(data) : data;
  };
  return {
    origin: randomOrigin(seed),
    halfPrecision: round !== undefined,
    loadAll: async () => make,
    load: async (name) => make(name)
  };
}

/** config.json's `initializer_range` (default 0.02): a positive number, or the random weights would all be NaN. */
function initializerRange(value: unknown): number {
  if (value === undefined || value === null) return 0.02;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0)
    throw new WorkbenchError(
      `config.json: field "initializer_range" must be a positive number for random weights, got ${JSON.stringify(value)}`
    );
  return value;
}

function initialize(p: Parameter, seed: number, std: number): Float32Array {
  const data = new Float32Array(p.numel);
  if (p.init === "zeros") return data;
  if (p.component === "norm") return p.name.endsWith(".bias") ? data : data.fill(1);
  if (p.name.endsWith(".bias")) return data;
  fillGaussian(data, hash(`${seed}:${p.name}`), std);
  return data;
}

/**
 * Fill `data` with N(0, std²) draws: Marsaglia's polar method (two draws per accepted pair, no trigonometry)
 * over mulberry32, inlined — 135M values (SmolLM2-135M) take about two seconds rather than eight.
 */
function fillGaussian(data: Float32Array, seed: number, std: number): void {
  let a = seed >>> 0;
  const n = data.length;
  for (let i = 0; i < n; i += 2) {
    let u: number, v: number, s: number;
    do {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      u = ((t ^ (t >>> 14)) >>> 0) / 2147483648 - 1;
      a = (a + 0x6d2b79f5) >>> 0;
      t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      v = ((t ^ (t >>> 14)) >>> 0) / 2147483648 - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    const f = Math.sqrt((-2 * Math.log(s)) / s) * std;
    data[i] = u * f;
    if (i + 1 < n) data[i + 1] = v * f;
  }
}

/** Each value rounded to the nearest bfloat16 (ties to even), in place: float32's top 16 bits. */
function toBfloat16(data: Float32Array): Float32Array {
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i];
    bits[i] = ((b + 0x7fff + ((b >>> 16) & 1)) & 0xffff0000) >>> 0;
  }
  return data;
}

/**
 * Each value rounded to the nearest float16, in place: 10 bits of mantissa (ties to even) where float16 is normal,
 * multiples of 2⁻²⁴ below (its subnormals, `Math.round`). Draws of N(0, 0.02) are far from its largest value, 65,504.
 */
function toFloat16(data: Float32Array): Float32Array {
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  for (let i = 0; i < bits.length; i++) {
    if (Math.abs(data[i]) < 2 ** -14) data[i] = Math.round(data[i] * 2 ** 24) / 2 ** 24;
    else bits[i] = ((bits[i] + 0xfff + ((bits[i] >>> 13) & 1)) & 0xffffe000) >>> 0;
  }
  return data;
}

function unknownParameter(name: string): never {
  throw new WorkbenchError(`unknown parameter ${name}`);
}

/** A small, fast, seedable PRNG (Tommy Ettinger's mulberry32): uniform in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a, to turn a (seed, name) string into a 32-bit seed. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}
