/**
 * The page's side of a model that runs in a worker (src/runtime/worker.ts): `loadWorkerModel` starts the
 * worker and loads the model there; the `WorkerModel` it gives is a `LanguageModel` (runtime/language-model.ts),
 * as `Model` is — except that the tokenizer's methods answer with promises, because tokenizing happens in the
 * worker too. (`await` works on either, so code written as `await model.tokenizer.encode(text)` runs on both.)
 *
 * One call is in the worker at a time; the others wait here, where they can still be dropped at no cost:
 * - an aborted `signal` drops a waiting call at once, and stops a running generation after its current step;
 * - `model.lane(name)` gives a view of the model whose calls supersede that lane's older ones: a cell that
 *   re-runs on every input (a dragged slider, typing) takes a new lane view each time, and only the last
 *   value's work runs. A superseded call rejects with an AbortError, which `keepLast` ignores;
 * - a tokenizer call that takes longer than `tokenizerTimeoutMs` (a pathological input for a pre-tokenizer's
 *   regular expression can take minutes) rejects with a `TokenizerTimeoutError`, and the worker, which cannot
 *   be interrupted, is replaced by a new one that loads the model again.
 */
import type {ModelConfig, Parameter} from "../arch/index.js";
import type {ParameterCounts} from "../analysis/index.js";
import {WorkbenchError} from "../errors.js";
import type {Encoding} from "../tokenizer.js";
import type {Generation} from "./generate.js";
import type {LoadProgress} from "./model.js";
import type {Tensor} from "./tensor.js";
import type {
  AnalysisArgs,
  AnalysisName,
  AnalysisResult,
  LanguageModel,
  LanguageModelGenerateOptions,
  LanguageModelTokenizer,
  StreamedToken,
  Trace,
  TraceInput
} from "./language-model.js";
import {tracer} from "./trace.js";
import type {FromWorker, ModelInfo, SentError, ToWorker, WorkerLoad, WorkerMethod} from "./worker-protocol.js";

/** A tokenizer call ran past its time limit; the model's worker was replaced. */
export class TokenizerTimeoutError extends WorkbenchError {
  constructor(message: string) {
    super(message);
    this.name = "TokenizerTimeoutError";
  }
}

/** What the worker loads (worker-protocol.ts's WorkerLoad, less what this side fills in), and the page's side. */
export interface WorkerLoadOptions extends Partial<Omit<WorkerLoad, "op" | "id">> {
  onProgress?: (p: LoadProgress) => void;
  signal?: AbortSignal;
  /** How long one tokenizer call may take before the worker is replaced (default 10 000 ms). */
  tokenizerTimeoutMs?: number;
  /** The worker's module; default: src/runtime/worker.ts as the site ships it. */
  workerUrl?: string | URL;
}

interface Pending {
  req: number;
  method: WorkerMethod;
  args: unknown[];
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  signal?: AbortSignal;
  lane?: {name: string; ticket: number};
  timeoutMs?: number;
  /** The longest one tokenization inside the call may take (an analysis tokenizes in the worker). */
  tokenizingTimeoutMs?: number;
  onToken?: (token: StreamedToken) => void;
  /** An "analyse" call's callbacks, by name, for the worker's events. */
  callbacks?: Record<string, (...args: unknown[]) => void>;
  /** What the call answers if it is aborted while in the worker, at once, without waiting for the worker. */
  abortedValue?: () => unknown;
}

const abortError = (why: string) => new DOMException(why, "AbortError");

/** A WorkbenchError where the worker threw one (its message names what was wrong), else an Error of that name. */
function received(error: SentError): Error {
  if (error.name === "AbortError") return abortError(error.message);
  const e = error.name === "WorkbenchError" ? new WorkbenchError(error.message) : new Error(error.message);
  if (error.name !== "WorkbenchError") e.name = error.name;
  if (error.code) Object.assign(e, {code: error.code});
  return e;
}

/** The default worker module. Framework rewrites this literal into the built module's URL (as it does for ort's .wasm). */
function defaultWorkerUrl(): string {
  return import.meta.resolve("./worker.js");
}

/** The worker, its load, and the queue of calls: shared by a model and every lane view of it. */
class Connection {
  worker!: Worker;
  ready!: Promise<ModelInfo>;
  runs = 0;
  private nextReq = 1;
  private queue: Pending[] = [];
  private current: Pending | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly tickets = new Map<string, number>();
  /** Texts a tokenizer call gave up on: asked again, they fail at once instead of hanging a new worker. */
  readonly hung = new Map<string, TokenizerTimeoutError>();

  constructor(
    private readonly load: WorkerLoad,
    private readonly options: WorkerLoadOptions
  ) {
    this.start();
  }

  /** A new worker, loading the model; calls wait for it. */
  private start(): void {
    const worker = new Worker(this.options.workerUrl ?? defaultWorkerUrl(), {
      type: "module",
      name: `lm-workbench ${this.load.id}`
    });
    this.worker = worker;
    this.ready = new Promise<ModelInfo>((resolve, reject) => {
      worker.addEventListener("message", ({data}: MessageEvent<FromWorker>) => {
        if (worker !== this.worker) return; // a replaced worker's last words
        if (data.type === "progress") this.options.onProgress?.(data.progress);
        else if (data.type === "loaded") (resolve(data.info), this.pump());
        else if (data.type === "load-error") (reject(received(data.error)), worker.terminate());
        else this.receive(data);
      });
      worker.addEventListener("error", (event) => {
        // A module that fails to load or a crash: no stack to show, only what happened.
        const error = new WorkbenchError(
          `the model's worker failed: ${event.message || "its module could not be loaded"}`
        );
        reject(error);
        this.fail(error);
      });
    });
    this.ready.catch(() => {});
    worker.postMessage(this.load);
  }

  lane(name: string): {name: string; ticket: number} {
    const ticket = (this.tickets.get(name) ?? 0) + 1;
    this.tickets.set(name, ticket);
    // Drop the lane's older calls still waiting: the newer view supersedes them.
    for (const p of this.queue.filter((q) => q.lane?.name === name))
      this.drop(p, abortError(`superseded by a newer ${name}`));
    return {name, ticket};
  }

  call<T>(method: WorkerMethod, args: unknown[], extra: Partial<Pending> = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const p: Pending = {
        req: this.nextReq++,
        method,
        args,
        resolve: resolve as (v: unknown) => void,
        reject,
        ...extra
      };
      if (p.lane && this.tickets.get(p.lane.name) !== p.lane.ticket)
        return reject(abortError(`superseded by a newer ${p.lane.name}`));
      if (p.signal?.aborted) return reject(p.signal.reason ?? abortError("stopped"));
      p.signal?.addEventListener(
        "abort",
        () => {
          if (this.current === p) {
            // The worker stops after its current step; the page need not wait for that step to end.
            this.send({op: "abort", req: p.req});
            if (p.abortedValue) (p.resolve(p.abortedValue()), (p.onToken = undefined));
          } else this.drop(p, p.signal!.reason ?? abortError("stopped"));
        },
        {once: true}
      );
      this.queue.push(p);
      this.pump();
    });
  }

  private drop(p: Pending, error: unknown): void {
    const i = this.queue.indexOf(p);
    if (i >= 0) (this.queue.splice(i, 1), p.reject(error));
  }

  private send(message: ToWorker, transfer: Transferable[] = []): void {
    this.worker.postMessage(message, transfer);
  }

  /** Send the next waiting call once the model is loaded and nothing else is in the worker. */
  private pump(): void {
    if (this.current || this.queue.length === 0) return;
    const worker = this.worker;
    void this.ready.then(
      () => {
        if (this.current || worker !== this.worker) return;
        const p = this.queue.shift();
        if (!p) return;
        this.current = p;
        if (p.timeoutMs) this.timer = setTimeout(() => this.timeOut(p, p.timeoutMs!), p.timeoutMs);
        this.send({op: "call", req: p.req, method: p.method, args: p.args});
      },
      (error) => this.fail(error)
    );
  }

  private receive(data: Extract<FromWorker, {req: number}>): void {
    const p = this.current;
    if (!p || p.req !== data.req) return;
    if (data.type === "token") return p.onToken?.(data.token);
    if (data.type === "event") return p.callbacks?.[data.name]?.(...data.args);
    if (data.type === "tokenizing") {
      if (!p.tokenizingTimeoutMs) return;
      clearTimeout(this.timer);
      if (data.busy) this.timer = setTimeout(() => this.timeOut(p, p.tokenizingTimeoutMs!), p.tokenizingTimeoutMs);
      return;
    }
    clearTimeout(this.timer);
    this.current = undefined;
    // A forward pass ended (the answer of a call that ran the model): marked on the page's timeline, beside the
    // views' `lmw:redraw:*` measures, so that how long they take to redraw after it can be read (test/e2e.test.ts).
    if (data.runs > this.runs) performance.mark("lmw:forward:end");
    this.runs = data.runs;
    if (data.type === "result") p.resolve(data.value);
    else p.reject(received(data.error));
    this.pump();
  }

  /** The running call took too long: the worker cannot be interrupted, so it is replaced. */
  private timeOut(p: Pending, limitMs: number): void {
    if (this.current !== p) return;
    this.current = undefined;
    this.worker.terminate();
    const error = new TokenizerTimeoutError(
      `tokenizing took longer than ${(limitMs / 1000).toFixed(0)} s, so it was given up ` +
        `(some inputs make a tokenizer's pattern matching take minutes); the model is being loaded again`
    );
    if (p.method === "encode") this.hung.set(p.args[0] as string, error);
    p.reject(error);
    this.start();
    this.pump();
  }

  /** The worker is gone: every call fails with the reason. */
  private fail(error: unknown): void {
    clearTimeout(this.timer);
    const pending = [...(this.current ? [this.current] : []), ...this.queue];
    this.current = undefined;
    this.queue = [];
    for (const p of pending) p.reject(error);
  }

  terminate(): void {
    this.fail(abortError("the model was closed"));
    this.worker.terminate();
  }
}

/** The tokenizer of a model in a worker: the same methods as `Tokenizer`, answering with promises. */
export interface WorkerTokenizer extends LanguageModelTokenizer {
  encode(text: string): Promise<Encoding>;
  decode(ids: number[], opts?: {skipSpecialTokens?: boolean}): Promise<string>;
  idToPiece(id: number): Promise<string>;
}

export class WorkerModel implements LanguageModel {
  readonly id: string;
  readonly backend: string;
  /** Whether the worker's model runs every structure on one graph (runtime/model.ts `oneGraph`). */
  readonly oneGraph: boolean;
  readonly weightsOrigin: string;
  readonly config: ModelConfig;
  readonly tokenizer: WorkerTokenizer;
  private readonly laneTicket?: {name: string; ticket: number};

  constructor(
    private readonly connection: Connection,
    private readonly info: ModelInfo,
    private readonly tokenizerTimeoutMs: number,
    lane?: {name: string; ticket: number}
  ) {
    this.id = info.id;
    this.backend = info.backend;
    this.oneGraph = info.oneGraph;
    this.weightsOrigin = info.weightsOrigin;
    this.config = info.config;
    this.laneTicket = lane;
    const tokenizerCall = <T>(method: WorkerMethod, args: unknown[]) =>
      this.connection.call<T>(method, args, {lane: this.laneTicket, timeoutMs: this.tokenizerTimeoutMs});
    this.tokenizer = {
      bosTokenId: info.bosTokenId,
      eosTokenId: info.eosTokenId,
      encode: (text) => {
        const hung = this.connection.hung.get(text);
        return hung ? Promise.reject(hung) : tokenizerCall<Encoding>("encode", [text]);
      },
      decode: (ids, opts = {}) => tokenizerCall<string>("decode", [ids, opts]),
      idToPiece: async (id) => (await tokenizerCall<string[]>("pieces", [[id]]))[0]!
    };
  }

  /** How many forward passes the worker has run: a slider that only re-slices a trace leaves it unchanged. */
  get runs(): number {
    return this.connection.runs;
  }

  /** This model, with calls that supersede the older ones of the lane `name` still waiting (see above). */
  lane(name: string): WorkerModel {
    return new WorkerModel(this.connection, this.info, this.tokenizerTimeoutMs, this.connection.lane(name));
  }

  parameters(): Parameter[] {
    return this.info.parameters;
  }

  counts(): ParameterCounts {
    return this.info.counts;
  }

  moduleTree(): string {
    return this.info.moduleTree;
  }

  hookPoints(): string[] {
    return this.info.hookPoints;
  }

  eosIds(): number[] {
    return this.info.eosIds;
  }

  tokenize(text: string): Promise<Encoding> {
    return this.tokenizer.encode(text);
  }

  pieces(ids: number[]): Promise<string[]> {
    return this.connection.call<string[]>("pieces", [ids], {lane: this.laneTicket, timeoutMs: this.tokenizerTimeoutMs});
  }

  /** A weight by its checkpoint name, e.g. `model.layers.10.mlp.gate_proj.weight`. */
  weight(path: string): Promise<Tensor> {
    return this.connection.call<Tensor>("weight", [path], {lane: this.laneTicket});
  }

  /** One forward pass in the worker (`Trace` says what it takes). A prompt is tokenized first, within the tokenizer's time limit. */
  readonly trace: Trace = tracer(
    async (input, paths, edits, {signal}) => {
      // Edits were recorded here, as Model.trace records them, and cross to the worker as data. Token ids go in
      // line at once (no await before the call), so calls keep the order they were made in.
      const ids = typeof input === "string" ? await this.ids(input) : input;
      const result = await this.connection.call<{tensors: Record<string, Tensor>} & TraceInput>(
        "trace",
        [ids, paths, edits],
        {lane: this.laneTicket, signal}
      );
      return {tensors: new Map(Object.entries(result.tensors)), input_ids: result.input_ids, tokens: result.tokens};
    },
    (path) => !this.info.parameters.some((p) => p.name === path)
  );

  /** Continue a prompt, as `Model.generate`; tokens stream through `onToken`, `signal` stops it. */
  async generate(prompt: string | number[], options: LanguageModelGenerateOptions = {}): Promise<Generation> {
    const {onToken, signal, ...rest} = options;
    const ids = typeof prompt === "string" ? await this.ids(prompt) : prompt;
    // Stop answers at once with what has streamed so far: a step of a large model on WASM can take longer
    // than a reader should wait for the button to take effect. The worker drops the rest of its step.
    const streamed: StreamedToken[] = [];
    const abortedValue = (): Generation => ({
      input_ids: ids,
      new_ids: streamed.map((t) => t.id),
      text: (typeof prompt === "string" ? prompt : "") + streamed.map((t) => t.text).join(""),
      stopped: "aborted"
    });
    const relay = (token: StreamedToken) => {
      streamed.push(token);
      onToken?.(token);
    };
    return this.connection.call<Generation>("generate", [ids, rest], {
      lane: this.laneTicket,
      signal,
      onToken: relay,
      abortedValue
    });
  }

  /**
   * One of `ANALYSES` (runtime/language-model.ts), run in the worker on its model, with the arguments that follow
   * the model: only its plain result crosses. Callbacks in a trailing options object (onProgress, onToken) are
   * called here as the worker reports; its `signal` stops the computation.
   */
  analyse<K extends AnalysisName>(name: K, ...args: AnalysisArgs<K>): Promise<AnalysisResult<K>> {
    const last = args.at(-1);
    const callbacks: Record<string, (...a: unknown[]) => void> = {};
    let signal: AbortSignal | undefined;
    let sent: unknown[] = args;
    if (last && typeof last === "object" && Object.getPrototypeOf(last) === Object.prototype) {
      const plain: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(last)) {
        if (typeof value === "function") callbacks[key] = value as (...a: unknown[]) => void;
        else if (key === "signal") signal = value as AbortSignal;
        else plain[key] = value;
      }
      sent = [...args.slice(0, -1), plain];
    }
    return this.connection.call("analyse", [name, Object.keys(callbacks), ...sent], {
      lane: this.laneTicket,
      signal,
      callbacks,
      tokenizingTimeoutMs: this.tokenizerTimeoutMs
    });
  }

  /** Stop the worker; the model cannot be used after. */
  dispose(): void {
    this.connection.terminate();
  }

  private async ids(input: string): Promise<number[]> {
    const {ids} = await this.tokenizer.encode(input);
    if (ids.length === 0)
      throw new WorkbenchError(`the prompt ${JSON.stringify(input)} tokenizes to no tokens: type some text`);
    return ids;
  }
}

/**
 * Start a worker and load the model `id` there (a name the site ships, a Hub id or a URL). Progress arrives
 * through `onProgress`; `signal` stops the load (and the worker).
 */
export async function loadWorkerModel(id: string, options: WorkerLoadOptions = {}): Promise<WorkerModel> {
  const bundled = Object.fromEntries(
    Object.entries(options.bundled ?? {}).map(([name, url]) => [name, new URL(url, location.href).href])
  );
  // What crosses to the worker: the load's own fields (functions and signals stay on this side).
  const {onProgress: _progress, signal: _signal, tokenizerTimeoutMs: _timeout, workerUrl: _url, ...fields} = options;
  const load: WorkerLoad = {...fields, op: "load", id, bundled};
  const connection = new Connection(load, options);
  const stop = () => connection.terminate();
  options.signal?.addEventListener("abort", stop, {once: true});
  try {
    const info = await new Promise<ModelInfo>((resolve, reject) => {
      connection.ready.then(resolve, reject);
      options.signal?.addEventListener(
        "abort",
        () => reject(options.signal!.reason ?? abortError("the load was stopped")),
        {once: true}
      );
    });
    return new WorkerModel(connection, info, options.tokenizerTimeoutMs ?? 10_000);
  } finally {
    options.signal?.removeEventListener("abort", stop);
  }
}
