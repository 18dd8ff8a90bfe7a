/**
 * Tokenizer: a thin wrapper around @huggingface/tokenizers (pure JS, runs in browsers and Node) that loads a
 * Hub `tokenizer.json` (+ optional `tokenizer_config.json`) and adds what the workbench needs on top: per-token
 * display pieces, range-checked ids, `decode([])`, bos/eos ids, and WorkbenchErrors that say what is wrong.
 */
import {Tokenizer as HFTokenizer, SequenceDecoder, type Decoder} from "@huggingface/tokenizers";
import {WorkbenchError} from "./errors.js";

export interface Encoding {
  /** Token ids, as the model takes them. */
  ids: number[];
  /** The vocabulary strings, e.g. "ĠTower" (GPT-2) or "▁Tower" (SentencePiece). */
  tokens: string[];
  /** Each token decoded alone for display, e.g. " Tower". A lone byte of a multi-byte character shows as "\uFFFD". */
  pieces: string[];
}

type Json = Record<string, unknown>;

const isObject = (x: unknown): x is Json => typeof x === "object" && x !== null && !Array.isArray(x);

/** A special token in tokenizer_config.json is either a string or an AddedToken dict `{content: ...}`. */
function tokenContent(x: unknown): string | undefined {
  if (typeof x === "string") return x;
  if (isObject(x) && typeof x.content === "string") return x.content;
  return undefined;
}

/**
 * The decoder config used for `pieces`: the file's own decoder, minus the steps that only make sense at the start
 * of a whole text. A SentencePiece-style tokenizer prepends "▁" to the text when encoding, and its decoder takes
 * that space off again (a `Strip` step, or `Metaspace`, which drops the first token's leading space). Applied to a
 * token shown alone, that would turn "▁Tower" into "Tower"; for display we keep it, like GPT-2's "ĠTower" → " Tower".
 */
function pieceDecoderConfig(cfg: Json): Json | null {
  switch (cfg.type) {
    case "Strip":
      return null;
    case "Metaspace":
      return {type: "Replace", pattern: {String: (cfg.replacement as string | undefined) ?? "\u2581"}, content: " "};
    case "Sequence": {
      const decoders = ((cfg.decoders as unknown[] | undefined) ?? [])
        .map((d) => (isObject(d) ? pieceDecoderConfig(d) : null))
        .filter((d): d is Json => d !== null);
      return {...cfg, decoders};
    }
    default:
      return cfg;
  }
}

function checkTokenizerJson(json: unknown): asserts json is Json & {model: Json} {
  const where = "tokenizer.json";
  if (!isObject(json))
    throw new WorkbenchError(
      `${where}: expected a JSON object, got ${json === null ? "null" : Array.isArray(json) ? "an array" : typeof json}`
    );
  if (!isObject(json.model)) throw new WorkbenchError(`${where}: missing the "model" object`);
  const vocab = json.model.vocab;
  if (!isObject(vocab) && !Array.isArray(vocab))
    throw new WorkbenchError(`${where}: "model.vocab" is missing or not an object/array`);
  // The library silently falls back to a "Legacy" model for a type it does not know; refuse instead. (GPT-2's own
  // tokenizer.json has no "type": the library infers BPE from its fields.)
  const type = json.model.type;
  if (type !== undefined && type !== null && !["BPE", "WordPiece", "Unigram"].includes(type as string))
    throw new WorkbenchError(
      `${where}: unsupported model type ${JSON.stringify(type)} (expected BPE, WordPiece or Unigram)`
    );
  if (json.added_tokens !== undefined && json.added_tokens !== null) {
    if (!Array.isArray(json.added_tokens)) throw new WorkbenchError(`${where}: "added_tokens" is not an array`);
    json.added_tokens.forEach((t, i) => {
      if (!isObject(t) || typeof t.content !== "string" || !Number.isInteger(t.id) || (t.id as number) < 0)
        throw new WorkbenchError(
          `${where}: added_tokens[${i}] needs a string "content" and a non-negative integer "id"`
        );
    });
  }
  for (const key of ["normalizer", "pre_tokenizer", "post_processor", "decoder"]) {
    const v = json[key];
    if (v !== undefined && v !== null && !(isObject(v) && typeof v.type === "string"))
      throw new WorkbenchError(`${where}: "${key}" must be null or an object with a "type"`);
  }
}

/**
 * Once built, the library's model still holds the file's raw vocabulary and merge list next to the tables it
 * encodes with (a Map of ids, a Map of merge ranks), and a BPE model the merges split into pairs, read only to
 * build the ranks. Dropping them takes SmolLM2's tokenizer from 19 to 14 MB of JS heap. That matters beyond
 * memory: every major garbage collection marks the whole heap, and a forward pass that fetches every hook point
 * on onnxruntime-node hands V8 enough new buffers to set collections off every few passes (bench: SmolLM2-135M,
 * 10 tokens, all hooks 1.26–1.31× → 1.14–1.24× the logits alone). The library reads these only in constructors.
 */
function dropRawTables(hf: HFTokenizer, model: Json): void {
  delete model.vocab;
  delete model.merges;
  const bpe = hf.model as unknown as {merges?: unknown; bpe_ranks?: unknown};
  if (bpe.bpe_ranks instanceof Map && Array.isArray(bpe.merges)) bpe.merges = [];
}

export class Tokenizer {
  readonly vocabSize: number;
  readonly bosTokenId?: number;
  readonly eosTokenId?: number;

  private readonly hf: HFTokenizer;
  private readonly vocab: readonly (string | undefined)[];
  private readonly pieceDecoder: Decoder | null;
  private readonly addedTokens: ReadonlySet<string>;

  private constructor(hf: HFTokenizer, pieceDecoder: Decoder | null, config: Json) {
    this.hf = hf;
    this.pieceDecoder = pieceDecoder;
    // The library's BPE/Unigram/WordPiece models keep an id → string array, with the added tokens written in.
    this.vocab = (hf.model as unknown as {vocab: (string | undefined)[]}).vocab;
    this.vocabSize = this.vocab.length;
    this.addedTokens = new Set(Array.from(hf.get_added_tokens_decoder().values(), (t) => t.content));
    // tokenizer_config.json names bos/eos; without it, fall back to GPT-2's convention (GPT2TokenizerFast's
    // defaults: bos = eos = "<|endoftext|>") when that token exists.
    const fallback = hf.token_to_id("<|endoftext|>") !== undefined ? "<|endoftext|>" : undefined;
    const bos = tokenContent(config.bos_token) ?? fallback;
    const eos = tokenContent(config.eos_token) ?? fallback;
    if (bos !== undefined) this.bosTokenId = hf.token_to_id(bos);
    if (eos !== undefined) this.eosTokenId = hf.token_to_id(eos);
  }

  static fromJson(tokenizerJson: unknown, tokenizerConfig: Record<string, unknown> = {}): Tokenizer {
    checkTokenizerJson(tokenizerJson);
    if (!isObject(tokenizerConfig)) throw new WorkbenchError("tokenizer_config.json: expected a JSON object");
    const config: Json = {
      ...tokenizerConfig,
      // transformers cleans up spaces before punctuation on decode (" !" → "!") unless tokenizer_config.json
      // says clean_up_tokenization_spaces: false — gpt2's file says nothing, SmolLM2's says false. Follow it.
      clean_up_tokenization_spaces: tokenizerConfig.clean_up_tokenization_spaces !== false
    };
    // The library iterates added_tokens unconditionally; a file may legitimately omit it. The model section is our
    // own copy: its raw tables are dropped once the library has built its own (dropRawTables), not the caller's.
    const model: Json = {...tokenizerJson.model};
    const json: Json & {model: Json} = {...tokenizerJson, model, added_tokens: tokenizerJson.added_tokens ?? []};
    let hf: HFTokenizer;
    let pieceDecoder: Decoder | null = null;
    try {
      hf = new HFTokenizer(json, config);
      if (isObject(json.decoder)) {
        // SequenceDecoder is the library's exported way to build a decoder from a config (Strip may be all there is).
        const decoders = [pieceDecoderConfig(json.decoder)].filter((d) => d !== null);
        pieceDecoder = new SequenceDecoder({type: "Sequence", decoders} as never);
      }
    } catch (e) {
      throw new WorkbenchError(
        `tokenizer.json: cannot build the tokenizer: ${e instanceof Error ? e.message : String(e)}`,
        {cause: e}
      );
    }
    dropRawTables(hf, model);
    if (!Array.isArray((hf.model as unknown as {vocab?: unknown}).vocab))
      throw new WorkbenchError(
        `tokenizer.json: the model (type ${JSON.stringify(json.model.type ?? "(none)")}) has no id → token table`
      );
    return new Tokenizer(hf, pieceDecoder, config);
  }

  encode(text: string, opts: {addSpecialTokens?: boolean} = {}): Encoding {
    if (typeof text !== "string") throw new WorkbenchError(`encode: expected a string, got ${typeof text}`);
    const {ids, tokens} = this.hf.encode(text, {add_special_tokens: opts.addSpecialTokens ?? true});
    const unk = ids.findIndex((id) => id === undefined || id === null);
    if (unk >= 0)
      throw new WorkbenchError(
        `encode: token ${JSON.stringify(tokens[unk])} has no id and the tokenizer has no unknown token`
      );
    return {ids, tokens, pieces: tokens.map((t) => this.piece(t))};
  }

  decode(ids: number[], opts: {skipSpecialTokens?: boolean} = {}): string {
    if (!Array.isArray(ids)) throw new WorkbenchError("decode: expected an array of token ids");
    for (const id of ids) this.checkId(id);
    // The library refuses an empty array; the empty sequence decodes to the empty string.
    if (ids.length === 0) return "";
    return this.hf.decode(ids, {skip_special_tokens: opts.skipSpecialTokens ?? false});
  }

  idToToken(id: number): string | undefined {
    return Number.isInteger(id) && id >= 0 && id < this.vocabSize ? this.vocab[id] : undefined;
  }

  /** A token id's display piece (its vocabulary string decoded alone). */
  idToPiece(id: number): string {
    this.checkId(id);
    return this.piece(this.vocab[id]!);
  }

  private piece(token: string): string {
    // Added tokens ("<|endoftext|>", "<s>") are literal text, not byte-level or "▁" encoded: shown as they are.
    return this.pieceDecoder && !this.addedTokens.has(token) ? this.pieceDecoder.decode([token]) : token;
  }

  private checkId(id: number): void {
    if (!Number.isInteger(id)) throw new WorkbenchError(`token id ${String(id)} is not an integer`);
    if (id < 0 || id >= this.vocabSize)
      throw new WorkbenchError(`token id ${id} is outside the vocabulary (${this.vocabSize})`);
    if (this.vocab[id] === undefined)
      throw new WorkbenchError(`token id ${id} is not assigned to any token in the vocabulary (${this.vocabSize})`);
  }
}
