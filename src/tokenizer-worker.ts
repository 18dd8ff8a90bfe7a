/**
 * Tokenizing under a time limit, in Node: a tokenizer.json may carry a normalizer or pre-tokenizer regex that
 * backtracks without bound (a pre-tokenizer `(a+)+$` took over a minute on 31 characters), and a regex cannot
 * be interrupted on the thread that runs it. So the encode runs in a worker thread, which is terminated when
 * the limit passes; the caller gets a WorkbenchError saying so, and the next encode starts a fresh worker.
 *
 * The worker holds its own copy of the tokenizer, built once from the tokenizer.json text; it gives back ids
 * and tokens only (the display pieces and the checks stay with the Tokenizer on the calling thread). It does
 * not keep the process alive. `EncodeText` is the interface the model takes (`CreateOptions.encodeText`), so
 * a page can plug in its own Web Worker the same way.
 */
import {createRequire} from "node:module";
import {Worker} from "node:worker_threads";
import {WorkbenchError} from "./errors.js";
import {readJson, readText, type ModelSource} from "./hub/source.js";

/** Text → ids and tokens, asynchronously: what the model's trace and generate use when they are given one. */
export type EncodeText = (text: string, opts?: {addSpecialTokens?: boolean}) => Promise<{ids: number[]; tokens: string[]}>;

/** The default limit: far above any real text's encode (SmolLM2: ~1 ms per 1,000 characters). */
export const DEFAULT_ENCODE_TIMEOUT_MS = 10_000;

/** Plain JavaScript (a worker cannot count on a TypeScript loader); the library is required by its resolved path. */
const WORKER_SOURCE = `
const {parentPort, workerData} = require("node:worker_threads");
const {Tokenizer} = require(workerData.library);
const json = JSON.parse(workerData.json);
// As src/tokenizer.ts builds it: the library iterates added_tokens, which a file may leave out.
const tokenizer = new Tokenizer({...json, added_tokens: json.added_tokens ?? []}, workerData.config);
parentPort.on("message", ({id, text, addSpecialTokens}) => {
  try {
    const {ids, tokens} = tokenizer.encode(text, {add_special_tokens: addSpecialTokens});
    parentPort.postMessage({id, ids, tokens});
  } catch (error) {
    parentPort.postMessage({id, error: String(error && error.message || error)});
  }
});
`;

interface Pending {
  resolve(value: {ids: number[]; tokens: string[]}): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * An encoder running `tokenizerJson` (the file's text) in a worker, each encode limited to `timeoutMs`.
 * `name` names the tokenizer in errors ("stories260K/tokenizer.json").
 */
export function workerEncoder(tokenizerJson: string, tokenizerConfig: Record<string, unknown>, {name = "tokenizer.json", timeoutMs = DEFAULT_ENCODE_TIMEOUT_MS} = {}): EncodeText & {dispose(): Promise<void>} {
  const library = createRequire(import.meta.url).resolve("@huggingface/tokenizers");
  let worker: Worker | undefined;
  let nextId = 0;
  const pending = new Map<number, Pending>();

  const failAll = (error: Error) => {
    for (const [id, p] of pending) clearTimeout(p.timer), pending.delete(id), p.reject(error);
  };
  const start = (): Worker => {
    const w = new Worker(WORKER_SOURCE, {eval: true, workerData: {library, json: tokenizerJson, config: tokenizerConfig}});
    w.unref(); // an idle tokenizer never keeps the process alive
    w.on("message", ({id, ids, tokens, error}: {id: number; ids?: number[]; tokens?: string[]; error?: string}) => {
      const p = pending.get(id);
      if (!p) return;
      pending.delete(id);
      clearTimeout(p.timer);
      if (error !== undefined) return p.reject(new WorkbenchError(`${name}: cannot encode the text: ${error}`));
      // As Tokenizer.encode checks: a token with no id, where the tokenizer has no unknown token.
      const unknown = ids!.findIndex((i) => i === undefined || i === null);
      if (unknown >= 0) return p.reject(new WorkbenchError(`encode: token ${JSON.stringify(tokens![unknown])} has no id and the tokenizer has no unknown token`));
      p.resolve({ids: ids!, tokens: tokens!});
    });
    w.on("error", (error) => {
      worker = undefined;
      failAll(new WorkbenchError(`${name}: the tokenizer could not be built in its worker: ${error.message}`, {cause: error}));
    });
    return w;
  };

  const encode = (text: string, opts: {addSpecialTokens?: boolean} = {}) =>
    new Promise<{ids: number[]; tokens: string[]}>((resolve, reject) => {
      if (typeof text !== "string") return reject(new WorkbenchError(`encode: expected a string, got ${typeof text}`));
      worker ??= start();
      const id = nextId++;
      const timer = setTimeout(() => {
        // The regex is still running: only ending the thread stops it. Other encodes waiting on it fail too.
        const stuck = worker;
        worker = undefined;
        void stuck?.terminate();
        pending.delete(id);
        failAll(new WorkbenchError(`${name}: tokenizing took longer than ${timeoutMs} ms and was stopped (another text was running into it)`));
        reject(
          new WorkbenchError(
            `${name}: tokenizing ${text.length} characters took longer than ${timeoutMs} ms and was stopped: ` +
              `a normalizer or pre-tokenizer regex in this tokenizer.json backtracks without bound on this text`
          )
        );
      }, timeoutMs);
      pending.set(id, {resolve, reject, timer});
      worker.postMessage({id, text, addSpecialTokens: opts.addSpecialTokens ?? true});
    });

  return Object.assign(encode, {
    async dispose() {
      failAll(new WorkbenchError(`${name}: the tokenizer was disposed`));
      await worker?.terminate();
      worker = undefined;
    }
  });
}

/**
 * A worker encoder for a model's source, built on its first encode from the source's tokenizer.json and
 * tokenizer_config.json (read again: from a folder or the download cache, that costs little).
 */
export function sourceEncoder(source: ModelSource, timeoutMs = DEFAULT_ENCODE_TIMEOUT_MS): EncodeText & {dispose(): Promise<void>} {
  let encoder: Promise<EncodeText & {dispose(): Promise<void>}> | undefined;
  const make = async () => {
    const config = (await source.has("tokenizer_config.json")) ? await readJson<Record<string, unknown>>(source, "tokenizer_config.json") : {};
    return workerEncoder(await readText(source, "tokenizer.json"), config, {name: `${source.id}/tokenizer.json`, timeoutMs});
  };
  const encode: EncodeText = async (text, opts) => (await (encoder ??= make()))(text, opts);
  return Object.assign(encode, {dispose: async () => void (await (await encoder)?.dispose())});
}
