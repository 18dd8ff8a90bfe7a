/**
 * `config.json` read into one shape for every architecture. Each family's file reads its own fields (with
 * `readConfig`'s checked readers) and the registry (`index.ts`) picks the family by `model_type`; what is
 * checked here is what every family shares: a missing or impossible field is refused with an error that names
 * the file and the field.
 */
import {WorkbenchError} from "../errors.js";

export interface ModelConfig {
  /** `model_type` as config.json says it: "gpt2", "llama", "qwen2", "qwen3", "gpt_neox", "gemma3_text", … */
  modelType: string;
  /** The Hugging Face class, e.g. "GPT2LMHeadModel", "LlamaForCausalLM". */
  architecture: string;
  numLayers: number;
  numHeads: number;
  numKeyValueHeads: number;
  hiddenSize: number;
  headDim: number;
  intermediateSize: number;
  vocabSize: number;
  maxPositions: number;
  normEps: number;
  /** Rotary families: the rotary base (`rope_theta`). */
  ropeTheta?: number;
  tieWordEmbeddings: boolean;
  activation: string;
  bosTokenId?: number;
  eosTokenId?: number | number[];
  /** The dtype the checkpoint was saved in ("float32", "bfloat16"); the engine always computes in float32. */
  torchDtype?: string;
  /** The untouched config.json. */
  raw: Record<string, unknown>;
}

/** Checked readers over one config.json: each names the file and the field when a value is missing or wrong. */
export function readConfig(raw: Record<string, unknown>, file: string) {
  const c = raw;
  const fail = (message: string): never => {
    throw new WorkbenchError(`${file}: ${message}`);
  };
  const int = (field: string, fallback?: number): number => {
    const v = c[field] ?? fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0)
      fail(`field "${field}" must be a positive integer, got ${JSON.stringify(c[field])}`);
    return v as number;
  };
  const num = (field: string, fallback: number): number => {
    const v = c[field] ?? fallback;
    if (typeof v !== "number" || !(v > 0)) fail(`field "${field}" must be a positive number, got ${JSON.stringify(v)}`);
    return v as number;
  };
  /** A number where the field is set, else undefined (null counts as unset, as transformers reads it). */
  const optionalNum = (field: string): number | undefined => {
    if (c[field] == null) return undefined;
    return num(field, 0);
  };
  const optionalId = (field: string) => (typeof c[field] === "number" ? (c[field] as number) : undefined);
  /** Refuse a field this engine does not compute, naming it: `refuse("rope_scaling", v => v != null)`. */
  const refuse = (field: string, unsupported: (v: unknown) => boolean, why = "is not supported") => {
    if (unsupported(c[field])) fail(`${field} ${JSON.stringify(c[field])} ${why}`);
  };
  const eos = c.eos_token_id;
  /** The fields every family shares the names of: ids and dtype. */
  const common = {
    bosTokenId: optionalId("bos_token_id"),
    eosTokenId: Array.isArray(eos) ? (eos as number[]) : optionalId("eos_token_id"),
    torchDtype:
      typeof c.torch_dtype === "string" ? c.torch_dtype : typeof c.dtype === "string" ? (c.dtype as string) : undefined,
    raw: c
  };
  const architecture = Array.isArray(c.architectures) ? String(c.architectures[0]) : undefined;
  return {c, int, num, optionalNum, optionalId, refuse, fail, common, architecture};
}

/** What must hold whatever the family: whole heads, key/value heads that divide the query heads. */
export function checkConfig<C extends ModelConfig>(config: C, file: string, {rotary = false} = {}): C {
  if (!Number.isInteger(config.headDim))
    throw new WorkbenchError(
      `${file}: hidden size ${config.hiddenSize} is not divisible by ${config.numHeads} attention heads`
    );
  if (config.numHeads % config.numKeyValueHeads !== 0)
    throw new WorkbenchError(
      `${file}: ${config.numHeads} attention heads are not a multiple of ${config.numKeyValueHeads} key/value heads`
    );
  if (rotary && config.headDim % 2 !== 0)
    throw new WorkbenchError(`${file}: head dimension ${config.headDim} must be even for rotary embeddings`);
  return config;
}

export function eosIds(config: ModelConfig): number[] {
  const e = config.eosTokenId;
  return e === undefined ? [] : Array.isArray(e) ? e : [e];
}
