/**
 * Tokenizing under a time limit, in Node: a tokenizer.json may carry a normalizer or pre-tokenizer regex that
 * backtracks without bound (a pre-tokenizer `(a+)+$` took over a minute on 31 characters), and a regex cannot
 * be interrupted on the thread that runs it. So the encode runs in a worker thread, which is terminated when
 * the limit passes; the caller gets a WorkbenchError saying so, and the next encode starts a fresh worker.
 *
 * The worker holds its own copy of the tokenizer, built once from the tokenizer.json text (the limit counts
 * from when it is ready, not its start); it gives back ids and tokens only (the display pieces and the checks
 * stay with the Tokenizer on the calling thread). It keeps the process alive only while an encode is waiting. `EncodeText` is the interface the model takes (`CreateOptions.encodeText`), so
 * a page can plug in its own Web Worker the same way.
 */
import {createRequire} from "node:module";
import {Worker} from "node:worker_threads";
import {WorkbenchError} from "./errors.js";
import {readJson, readText, type ModelSource} from "./hub/source.js";

/** Text → ids and tokens, asynchronously: what the model's trace and generate use when they are given one. */
export type EncodeText = (
  text: string,
  opts?: {addSpecialTokens?: boolean}
) => Promise<{ids: number[]; tokens: string[]}>;

/** The default limit: far above any real text's encode (SmolLM2: ~1 ms per 1,000 characters). */
export const DEFAULT_ENCODE_TIMEOUT_MS = 10_000;

/** Plain JavaScript (a worker cannot count on a TypeScript loader); the library is required by its resolved path. */
const WORKER_SOURCE = `
const {parentPort, workerData} = require("node:worker_threads");
const {Tokenizer} = require(workerData.library);
const json = JSON.parse(workerData.json);
// As src/tokenizer.ts builds it: the library iterates added_tokens, which a file may leave out.
const tokenizer = new Tokenizer({...json, added_tokens: json.added_tokens ?? []}, workerData.config);
parentPort.postMessage({ready: true});
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
  text: string;
  addSpecialTokens: boolean;
  resolve(value: {ids: number[]; tokens: string[]}): void;
  reject(error: Error): void;
  /** Set once the text is handed to a ready worker: the limit counts the encode, not the worker's start. */
  timer?: ReturnType<typeof setTimeout>;
}

/**
 * An encoder running `tokenizerJson` (the file's text) in a worker, each encode limited to `timeoutMs`.
 * `name` names the tokenizer in errors ("stories260K/tokenizer.json").
 */
export function workerEncoder(
  tokenizerJson: string,
  tokenizerConfig: Record<string, unknown>,
  {name = "tokenizer.json", timeoutMs = DEFAULT_ENCODE_TIMEOUT_MS} = {}
): EncodeText & {dispose(): Promise<void>} {
  const library = createRequire(import.meta.url).resolve("@huggingface/tokenizers");
  let worker: {thread: Worker; ready: boolean} | undefined;
  let nextId = 0;
  const pending = new Map<number, Pending>();

  const settle = (id: number) => {
    const p = pending.get(id);
    pending.delete(id);
    if (p?.timer) clearTimeout(p.timer);
    // The worker keeps the process alive only while an encode waits on it: a loader that never disposes its
    // model still exits.
    if (pending.size === 0) worker?.thread.unref();
    return p;
  };
  const failAll = (error: Error) => {
    for (const id of [...pending.keys()]) settle(id)!.reject(error);
  };
  /** Hand an encode to the ready worker, starting its clock. */
  const send = (id: number, p: Pending) => {
    p.timer = setTimeout(() => {
      // The regex is still running: only ending the thread stops it. Encodes queued behind it fail too.
      void worker?.thread.terminate();
      worker = undefined;
      settle(id);
      failAll(
        new WorkbenchError(`${name}: stopped with a text before it that took longer than ${timeoutMs} ms to tokenize`)
      );
      p.reject(
        new WorkbenchError(
          `${name}: tokenizing ${p.text.length} characters took longer than ${timeoutMs} ms and was stopped: ` +
            `a normalizer or pre-tokenizer regex in this tokenizer.json backtracks without bound on this text`
        )
      );
    }, timeoutMs);
    worker!.thread.postMessage({id, text: p.text, addSpecialTokens: p.addSpecialTokens});
  };
  const start = () => {
    const thread = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {library, json: tokenizerJson, config: tokenizerConfig}
    });
    const self = {thread, ready: false};
    thread.on("message", (message: {ready?: true; id: number; ids?: number[]; tokens?: string[]; error?: string}) => {
      if (message.ready) {
        self.ready = true;
        for (const [id, p] of pending) send(id, p);
        return;
      }
      const {id, ids, tokens, error} = message;
      const p = settle(id);
      if (!p) return;
      if (error !== undefined) return p.reject(new WorkbenchError(`${name}: cannot encode the text: ${error}`));
      // As Tokenizer.encode checks: a token with no id, where the tokenizer has no unknown token.
      const unknown = ids!.findIndex((i) => i === undefined || i === null);
      if (unknown >= 0)
        return p.reject(
          new WorkbenchError(
            `encode: token ${JSON.stringify(tokens![unknown])} has no id and the tokenizer has no unknown token`
          )
        );
      p.resolve({ids: ids!, tokens: tokens!});
    });
    thread.on("error", (error) => {
      if (worker === self) worker = undefined;
      failAll(
        new WorkbenchError(`${name}: the tokenizer could not be built in its worker: ${error.message}`, {cause: error})
      );
    });
    return self;
  };

  const encode = (text: string, opts: {addSpecialTokens?: boolean} = {}) =>
    new Promise<{ids: number[]; tokens: string[]}>((resolve, reject) => {
      if (typeof text !== "string") return reject(new WorkbenchError(`encode: expected a string, got ${typeof text}`));
      worker ??= start();
      worker.thread.ref();
      const id = nextId++;
      const p: Pending = {text, addSpecialTokens: opts.addSpecialTokens ?? true, resolve, reject};
      pending.set(id, p);
      if (worker.ready) send(id, p); // else sent when the worker says it is ready
    });

  return Object.assign(encode, {
    async dispose() {
      failAll(new WorkbenchError(`${name}: the tokenizer was disposed`));
      await worker?.thread.terminate();
      worker = undefined;
    }
  });
}

/**
 * A worker encoder for a model's source, built on its first encode from the source's tokenizer.json and
 * tokenizer_config.json (read again: from a folder or the download cache, that costs little).
 */
export function sourceEncoder(
  source: ModelSource,
  timeoutMs = DEFAULT_ENCODE_TIMEOUT_MS
): EncodeText & {dispose(): Promise<void>} {
  let encoder: Promise<EncodeText & {dispose(): Promise<void>}> | undefined;
  const make = async () => {
    const config = (await source.has("tokenizer_config.json"))
      ? await readJson<Record<string, unknown>>(source, "tokenizer_config.json")
      : {};
    return workerEncoder(await readText(source, "tokenizer.json"), config, {
      name: `${source.id}/tokenizer.json`,
      timeoutMs
    });
  };
  const encode: EncodeText = async (text, opts) => (await (encoder ??= make()))(text, opts);
  return Object.assign(encode, {dispose: async () => void (await (await encoder)?.dispose())});
}
