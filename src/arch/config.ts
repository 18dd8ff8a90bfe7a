/**
 * `config.json` read into one shape for both architectures, checked field by field: a missing or impossible
 * field is refused with an error that names the file and the field.
 */
import {WorkbenchError} from "../errors.js";

export type ModelType = "gpt2" | "llama";

export interface ModelConfig {
  modelType: ModelType;
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
  /** Llama only: the rotary base. */
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

export function normalizeConfig(raw: unknown, file = "config.json"): ModelConfig {
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw new WorkbenchError(`${file}: not a JSON object`);
  const c = raw as Record<string, unknown>;
  const int = (field: string, fallback?: number): number => {
    const v = c[field] ?? fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0)
      throw new WorkbenchError(`${file}: field "${field}" must be a positive integer, got ${JSON.stringify(c[field])}`);
    return v;
  };
  const num = (field: string, fallback: number): number => {
    const v = c[field] ?? fallback;
    if (typeof v !== "number" || !(v > 0)) throw new WorkbenchError(`${file}: field "${field}" must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  };
  const optionalId = (field: string) => (typeof c[field] === "number" ? (c[field] as number) : undefined);
  const modelType = c.model_type;
  const architecture = Array.isArray(c.architectures) ? String(c.architectures[0]) : undefined;

  if (modelType === "gpt2") {
    const hiddenSize = int("n_embd");
    const numHeads = int("n_head");
    const activation = String(c.activation_function ?? "gelu_new");
    if (activation !== "gelu_new") throw new WorkbenchError(`${file}: activation_function "${activation}" is not supported (gpt2 uses "gelu_new")`);
    const config: ModelConfig = {
      modelType,
      architecture: architecture ?? "GPT2LMHeadModel",
      numLayers: int("n_layer"),
      numHeads,
      numKeyValueHeads: numHeads,
      hiddenSize,
      headDim: hiddenSize / numHeads,
      intermediateSize: c.n_inner == null ? 4 * hiddenSize : int("n_inner"),
      vocabSize: int("vocab_size"),
      maxPositions: int("n_positions"),
      normEps: num("layer_norm_epsilon", 1e-5),
      tieWordEmbeddings: c.tie_word_embeddings !== false,
      activation,
      bosTokenId: optionalId("bos_token_id"),
      eosTokenId: optionalId("eos_token_id"),
      torchDtype: typeof c.torch_dtype === "string" ? c.torch_dtype : undefined,
      raw: c
    };
    return check(config, file);
  }
  if (modelType === "llama") {
    const hiddenSize = int("hidden_size");
    const numHeads = int("num_attention_heads");
    const activation = String(c.hidden_act ?? "silu");
    if (activation !== "silu") throw new WorkbenchError(`${file}: hidden_act "${activation}" is not supported (llama uses "silu")`);
    if (c.rope_scaling != null) throw new WorkbenchError(`${file}: rope_scaling ${JSON.stringify(c.rope_scaling)} is not supported`);
    if (c.rope_interleaved === true) throw new WorkbenchError(`${file}: rope_interleaved true is not supported (Hugging Face Llama rotates halves)`);
    if (c.attention_bias === true || c.mlp_bias === true) throw new WorkbenchError(`${file}: attention_bias / mlp_bias are not supported`);
    const eos = c.eos_token_id;
    const config: ModelConfig = {
      modelType,
      architecture: architecture ?? "LlamaForCausalLM",
      numLayers: int("num_hidden_layers"),
      numHeads,
      numKeyValueHeads: int("num_key_value_heads", numHeads),
      hiddenSize,
      headDim: c.head_dim == null ? hiddenSize / numHeads : int("head_dim"),
      intermediateSize: int("intermediate_size"),
      vocabSize: int("vocab_size"),
      maxPositions: int("max_position_embeddings"),
      normEps: num("rms_norm_eps", 1e-6),
      ropeTheta: num("rope_theta", 10000),
      tieWordEmbeddings: c.tie_word_embeddings === true,
      activation,
      bosTokenId: optionalId("bos_token_id"),
      eosTokenId: Array.isArray(eos) ? (eos as number[]) : optionalId("eos_token_id"),
      torchDtype: typeof c.torch_dtype === "string" ? c.torch_dtype : undefined,
      raw: c
    };
    return check(config, file);
  }
  throw new WorkbenchError(
    `${file}: model_type ${JSON.stringify(modelType)} is not supported; lm-workbench runs "gpt2" and "llama" checkpoints`
  );
}

function check(config: ModelConfig, file: string): ModelConfig {
  if (!Number.isInteger(config.headDim))
    throw new WorkbenchError(`${file}: hidden size ${config.hiddenSize} is not divisible by ${config.numHeads} attention heads`);
  if (config.numHeads % config.numKeyValueHeads !== 0)
    throw new WorkbenchError(`${file}: ${config.numHeads} attention heads are not a multiple of ${config.numKeyValueHeads} key/value heads`);
  if (config.modelType === "llama" && config.headDim % 2 !== 0)
    throw new WorkbenchError(`${file}: head dimension ${config.headDim} must be even for rotary embeddings`);
  return config;
}

export function eosIds(config: ModelConfig): number[] {
  const e = config.eosTokenId;
  return e === undefined ? [] : Array.isArray(e) ? e : [e];
}
