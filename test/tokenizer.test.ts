import {readFileSync} from "node:fs";
import {describe, expect, it} from "vitest";
import {Tokenizer} from "../src/tokenizer.js";
import {WorkbenchError} from "../src/errors.js";

const readJson = (path: string): any => JSON.parse(readFileSync(new URL(path, import.meta.url), "utf8"));

function load(dir: string, withConfig = true): Tokenizer {
  return Tokenizer.fromJson(
    readJson(`${dir}/tokenizer.json`),
    withConfig ? readJson(`${dir}/tokenizer_config.json`) : undefined
  );
}

interface Case {
  text: string;
  ids: number[];
  ids_no_special: number[];
  tokens: string[];
  decoded: string;
  decoded_skip_special: string;
}

const FIXTURES = "fixtures";
const MODELS = "../data/models";
const GPT2 = `${MODELS}/gpt2`;
const SMOLLM2 = `${MODELS}/HuggingFaceTB/SmolLM2-135M`;
const STORIES = `${MODELS}/stories260K`;

/**
 * The three tokenizer kinds: gpt2's byte-level BPE, SmolLM2's (byte-level, bos/eos from tokenizer_config.json) and
 * stories260K's SentencePiece-style BPE with byte fallback (shared by every mini fixture). Cases and reference
 * prompts come from test/fixtures (see its README).
 */
const KINDS = [
  ["gpt2", GPT2, `${FIXTURES}/tokenizers/gpt2.json`, `${FIXTURES}/tokenizers/gpt2.prompts.json`],
  [
    "SmolLM2-135M",
    SMOLLM2,
    `${FIXTURES}/tokenizers/SmolLM2-135M.json`,
    `${FIXTURES}/tokenizers/SmolLM2-135M.prompts.json`
  ],
  ["stories260K", STORIES, `${FIXTURES}/stories260K/tokenizer_cases.json`, undefined]
] as const;

for (const [name, dir, casesFile, promptsFile] of KINDS) {
  describe(`tokenizer ${name}`, () => {
    const tok = load(dir);
    const cases: Case[] = readJson(casesFile);
    const prompts: {text: string; input_ids: number[]; tokens: string[]}[] = promptsFile
      ? readJson(promptsFile)
      : readJson(`${FIXTURES}/stories260K/reference.json`).prompts;

    it.each(cases.map((c, i) => [i, JSON.stringify(c.text).slice(0, 40), c] as const))("case %i %s", (_i, _t, c) => {
      const enc = tok.encode(c.text);
      expect(enc.ids).toEqual(c.ids);
      expect(enc.tokens).toEqual(c.tokens);
      expect(enc.pieces).toHaveLength(c.ids.length);
      expect(tok.encode(c.text, {addSpecialTokens: false}).ids).toEqual(c.ids_no_special);
      expect(tok.decode(c.ids)).toBe(c.decoded);
      expect(tok.decode(c.ids, {skipSpecialTokens: true})).toBe(c.decoded_skip_special);
      expect(c.ids.map((id) => tok.idToToken(id))).toEqual(c.tokens);
    });

    it.each(prompts.map((p, i) => [i, p] as const))("reference prompt %i", (_i, p) => {
      const enc = tok.encode(p.text);
      expect(enc.ids).toEqual(p.input_ids);
      expect(enc.tokens).toEqual(p.tokens);
    });

    it("encodes the same without tokenizer_config.json", () => {
      const bare = load(dir, false);
      for (const c of cases) {
        expect(bare.encode(c.text).ids).toEqual(c.ids);
        expect(bare.decode(c.ids)).toBe(c.decoded);
      }
    });
  });
}

describe("pieces and special ids", () => {
  it("gpt2-style pieces keep the leading space", () => {
    const tok = load(GPT2);
    const enc = tok.encode("The Eiffel Tower");
    expect(enc.tokens).toEqual(["The", "ĠE", "iff", "el", "ĠTower"]);
    expect(enc.pieces).toEqual(["The", " E", "iff", "el", " Tower"]);
    expect(tok.bosTokenId).toBe(50256);
    expect(tok.eosTokenId).toBe(50256);
    expect(tok.encode("a<|endoftext|>b").pieces).toEqual(["a", "<|endoftext|>", "b"]);
  });

  it("SentencePiece pieces keep the space that the decoder would strip from a whole text", () => {
    const tok = load(STORIES);
    const enc = tok.encode("Once upon a time");
    expect(enc.tokens).toEqual(["<s>", "▁Once", "▁upon", "▁a", "▁time"]);
    expect(enc.pieces).toEqual(["<s>", " Once", " upon", " a", " time"]);
    expect(tok.decode(enc.ids, {skipSpecialTokens: true})).toBe("Once upon a time");
    expect(tok.bosTokenId).toBe(1);
    expect(tok.eosTokenId).toBe(2);
    expect(tok.vocabSize).toBe(512);
    // byte-fallback: "日" is three byte tokens; alone, each is an incomplete UTF-8 sequence
    const jp = tok.encode("日", {addSpecialTokens: false});
    expect(jp.tokens).toEqual(["▁", "<0xE6>", "<0x97>", "<0xA5>"]);
    expect(jp.pieces).toEqual([" ", "\uFFFD", "\uFFFD", "\uFFFD"]);
    expect(tok.decode(jp.ids)).toBe("日");
  });

  it("SmolLM2 bos/eos come from tokenizer_config.json", () => {
    const tok = load(SMOLLM2);
    expect(tok.bosTokenId).toBe(0);
    expect(tok.eosTokenId).toBe(0);
    expect(tok.encode(" Paris").pieces).toEqual([" Paris"]);
  });

  it("drops only its own copy of the raw vocabulary and merges: the caller's JSON is left whole, and can build again", () => {
    const json = readJson(`${SMOLLM2}/tokenizer.json`);
    const config = readJson(`${SMOLLM2}/tokenizer_config.json`);
    const first = Tokenizer.fromJson(json, config);
    expect(Object.keys(json.model.vocab)).toHaveLength(49152);
    expect(json.model.merges).toHaveLength(48900);
    const second = Tokenizer.fromJson(json, config);
    const text = "The Eiffel Tower is in Paris, and merges still apply: unbelievably";
    expect(second.encode(text)).toEqual(first.encode(text));
    expect(first.encode(" unbelievably").tokens).toEqual(["Ġunbelie", "v", "ably"]);
  });
});

for (const [name, dir, size] of [
  ["gpt2", GPT2, 50257],
  ["SmolLM2-135M", SMOLLM2, 49152]
] as const) {
  describe(`real ${name} tokenizer`, () => {
    const tok = load(dir);

    it("has the full vocabulary", () => {
      expect(tok.vocabSize).toBe(size);
    });

    it('" Paris" and "Paris" are different single tokens', () => {
      const a = tok.encode(" Paris", {addSpecialTokens: false});
      const b = tok.encode("Paris", {addSpecialTokens: false});
      expect(a.ids).toHaveLength(1);
      expect(b.ids).toHaveLength(1);
      expect(a.ids[0]).not.toBe(b.ids[0]);
      expect(a.tokens).toEqual(["ĠParis"]);
      expect(b.tokens).toEqual(["Paris"]);
      expect(a.pieces).toEqual([" Paris"]);
      expect(tok.decode(a.ids)).toBe(" Paris");
      expect(tok.idToToken(a.ids[0]!)).toBe("ĠParis");
    });

    it("decode([]) is the empty string", () => {
      expect(tok.decode([])).toBe("");
    });

    it("decode cleans up spaces before punctuation as transformers does, unless tokenizer_config.json says not to", () => {
      const text = "Hello , world . I 'm here , aren 't I ?";
      // gpt2's tokenizer_config.json leaves clean_up_tokenization_spaces unset (transformers: true);
      // SmolLM2's sets it to false. The tokenizer cases' reference decodes agree (gpt2 decodes "Ġ!" as "!").
      const expected = name === "gpt2" ? "Hello, world. I'm here, aren 't I?" : text; // " 't" is not in its list; " n't" is
      expect(tok.decode(tok.encode(text).ids)).toBe(expected);
    });

    it("a bad id errors, naming the id", () => {
      expect(() => tok.decode([size + 10])).toThrow(WorkbenchError);
      expect(() => tok.decode([size + 10])).toThrow(`token id ${size + 10} is outside the vocabulary (${size})`);
      expect(() => tok.decode([-1])).toThrow("token id -1 is outside the vocabulary");
      expect(() => tok.decode([1.5])).toThrow("token id 1.5 is not an integer");
      expect(() => tok.idToPiece(size)).toThrow(WorkbenchError);
      expect(tok.idToToken(size)).toBeUndefined();
      expect(tok.idToToken(-1)).toBeUndefined();
    });
  });
}

describe("malformed tokenizer.json", () => {
  const good = readJson(`${STORIES}/tokenizer.json`);
  const cases: [string, unknown, string][] = [
    ["not an object", "hello", "tokenizer.json: expected a JSON object, got string"],
    ["null", null, "tokenizer.json: expected a JSON object, got null"],
    ["no model", {...good, model: undefined}, 'missing the "model" object'],
    ["no vocab", {...good, model: {...good.model, vocab: undefined}}, '"model.vocab" is missing'],
    ["bad added_tokens", {...good, added_tokens: {}}, '"added_tokens" is not an array'],
    ["added token without id", {...good, added_tokens: [{content: "<s>"}]}, "added_tokens[0] needs"],
    ["decoder without type", {...good, decoder: {decoders: []}}, '"decoder" must be null or an object with a "type"'],
    ["unknown decoder", {...good, decoder: {type: "NoSuchDecoder"}}, "tokenizer.json: cannot build the tokenizer"],
    ["unknown model", {...good, model: {type: "NoSuchModel", vocab: {}}}, 'unsupported model type "NoSuchModel"']
  ];
  it.each(cases)("%s", (_name, json, message) => {
    expect(() => Tokenizer.fromJson(json)).toThrow(WorkbenchError);
    expect(() => Tokenizer.fromJson(json)).toThrow(message);
  });
});
