/**
 * A tokenizer.json whose pre-tokenizer regex backtracks without bound (`(a+)+$`: seconds on 25 characters,
 * over a minute on 31) no longer hangs the library or the CLI: prompts are tokenized in a worker thread that
 * is stopped at a time limit, with a WorkbenchError; the next prompt gets a fresh worker.
 */
import {spawnSync} from "node:child_process";
import {copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from "node:fs";
import os from "node:os";
import path from "node:path";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {WorkbenchError} from "../src/errors.js";
import {loadModel, type Model} from "../src/node.js";
import {workerEncoder} from "../src/tokenizer-worker.js";

const STORIES = path.resolve("test/fixtures/stories260K");
const dir = mkdtempSync(path.join(os.tmpdir(), "lmw-redos-"));
const tokenizer = JSON.parse(readFileSync(path.join(STORIES, "tokenizer.json"), "utf8"));
const hostile = {
  ...tokenizer,
  pre_tokenizer: {type: "Split", pattern: {Regex: "(a+)+$"}, behavior: "Isolated", invert: false}
};
for (const f of ["config.json", "tokenizer_config.json", "model.safetensors"])
  copyFileSync(path.join(STORIES, f), path.join(dir, f));
writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(hostile));
afterAll(() => rmSync(dir, {recursive: true, force: true}));

const EVIL = "a".repeat(30) + "b";

describe("tokenizing under a time limit", () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(dir, {encodeTimeoutMs: 1000});
  });
  afterAll(() => model?.dispose());

  it("trace and generate stop a runaway regex with a named error, then carry on", async () => {
    const started = Date.now();
    const error = await model.trace(EVIL, ["lm_head.output"]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkbenchError);
    expect((error as Error).message).toBe(
      `${dir}/tokenizer.json: tokenizing 31 characters took longer than 1000 ms and was stopped: a normalizer or pre-tokenizer regex in this tokenizer.json backtracks without bound on this text`
    );
    await expect(model.generate(EVIL, {maxNewTokens: 1})).rejects.toThrow(/took longer than 1000 ms/);
    expect(Date.now() - started).toBeLessThan(6000);
    // A harmless prompt, on a fresh worker, gives what the tokenizer gives on this thread.
    const traced = await model.trace("Once upon a time", ["lm_head.output"]);
    expect(traced.input_ids).toEqual(model.tokenizer.encode("Once upon a time").ids);
  }, 20_000);

  it("an idle worker does not keep the process alive (a loader that never disposes its model still exits)", () => {
    const script = path.join(dir, "exits.mts");
    writeFileSync(
      script,
      `import {loadModel} from ${JSON.stringify(path.resolve("src/node.ts"))};\n` +
        `const model = await loadModel(${JSON.stringify(STORIES)});\nconsole.log((await model.trace("Once upon", ["lm_head.output"])).input_ids.join(","));\n`
    );
    const result = spawnSync(path.resolve("node_modules/.bin/tsx"), [script], {encoding: "utf8", timeout: 60_000});
    expect(result.signal).toBe(null);
    expect(result.status).toBe(0);
    expect(result.stdout.trim()).toBe(model.tokenizer.encode("Once upon").ids.join(","));
  }, 70_000);

  it("the worker encoder gives the same ids and tokens as the tokenizer itself", async () => {
    const encode = workerEncoder(readFileSync(path.join(STORIES, "tokenizer.json"), "utf8"), {}, {timeoutMs: 5000});
    try {
      for (const text of ["Once upon a time", "héllo wörld 🙂", ""]) {
        const {ids, tokens} = model.tokenizer.encode(text);
        expect(await encode(text)).toEqual({ids, tokens});
      }
    } finally {
      await encode.dispose();
    }
  });
});
