/**
 * What a model says of its own structure — its parameters and their counts, its module tree, its hook points, its
 * end-of-sequence ids — all read from its architecture, config and tokenizer: the same for a model run in this
 * thread (`Model`, runtime/model.ts) and one run on NDIF (`RemoteModel`, remote/remote-model.ts).
 */
import {eosIds, type Architecture, type ModelConfig, type Parameter} from "../arch/index.js";
import {parameterCounts, type ParameterCounts} from "../analysis/index.js";
import type {Tokenizer} from "../tokenizer.js";

export abstract class ModelStructure {
  abstract readonly config: ModelConfig;
  abstract readonly arch: Architecture;
  abstract readonly tokenizer: Tokenizer;

  parameters(): Parameter[] {
    return this.arch.parameters();
  }

  counts(): ParameterCounts {
    return parameterCounts(this.arch.parameters(), this.config.numLayers);
  }

  moduleTree(): string {
    return this.arch.moduleTree();
  }

  hookPoints(): string[] {
    return this.arch.hookPoints();
  }

  /** The config's end-of-sequence ids, else the tokenizer's. */
  eosIds(): number[] {
    const ids = eosIds(this.config);
    return ids.length ? ids : this.tokenizer.eosTokenId !== undefined ? [this.tokenizer.eosTokenId] : [];
  }
}
