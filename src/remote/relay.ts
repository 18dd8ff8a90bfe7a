/**
 * The client of the NDIF relay (relay/PROTOCOL.md, version 1): the workbench never speaks to NDIF itself (NDIF
 * takes only pickled nnsight requests, which only Python can make); it asks the relay to run one of a few fixed
 * experiments and reads the answer, a safetensors file whose `__metadata__.lmw` holds the non-tensor fields.
 *
 * A job is submitted (`POST /jobs`), polled (`GET /jobs/<id>`, every 500 ms backing off to 2 s) with each new
 * state and queue position reported, then its result fetched and parsed whole before anything is returned:
 * nothing half-read leaves this file. Stopping (an aborted `signal`) cancels the job on NDIF (`DELETE`) and
 * rejects at once. Every failure is a `WorkbenchError` naming the model, the experiment, the job's state and the
 * relay's or NDIF's own message.
 */
import {WorkbenchError} from "../errors.js";
import {numel, parseHeader, toFloat32, type TensorInfo} from "../hub/safetensors.js";
import type {Tensor} from "../runtime/tensor.js";

/** Where the relay listens unless told otherwise (PROTOCOL.md). */
export const DEFAULT_RELAY = "http://127.0.0.1:8765";
export const PROTOCOL_VERSION = 1;

/** A job's states, in the order a job goes through them (the last three end it). */
export const JOB_STATES = ["RECEIVED", "QUEUED", "DISPATCHED", "RUNNING", "COMPLETED", "ERROR", "CANCELLED"] as const;
export type JobState = (typeof JOB_STATES)[number];
export type Experiment = "trace" | "generate" | "lens" | "patching" | "ablation";

/** What a running job reports: its state, and its place in NDIF's queue while QUEUED. */
export interface JobProgress {
  model: string;
  experiment: Experiment;
  /** The relay's job id (absent before the relay has answered the submission). */
  job?: string;
  state: JobState;
  position?: number;
}

/** A job's answer: the header's fields and the tensors (I32 ids as float32 numbers, as the local engine gives them). */
export interface RelayResult {
  header: Record<string, unknown>;
  tensors: Map<string, Tensor>;
}

export interface RelayOptions {
  /** The relay's address (default `DEFAULT_RELAY`). */
  relay?: string;
  /** The NDIF API key, sent to the relay only, as the `X-NDIF-Api-Key` header (never in a URL). */
  apiKey?: string;
  /** Polling intervals: the first, and the longest it backs off to (default 500 ms and 2 s). */
  pollMs?: {first: number; max: number};
}

export interface JobOptions {
  onProgress?: (progress: JobProgress) => void;
  signal?: AbortSignal;
}

const abortError = (why: string) => new DOMException(why, "AbortError");

/** One relay, at one address, with one key. */
export class Relay {
  readonly address: string;
  private readonly apiKey?: string;
  private readonly poll: {first: number; max: number};

  constructor(options: RelayOptions = {}) {
    const address = (options.relay ?? DEFAULT_RELAY).replace(/\/+$/, "");
    if (!/^https?:\/\/[^/?#]+$/.test(address))
      throw new WorkbenchError(
        `the NDIF relay's address must be http(s)://host:port, got ${JSON.stringify(options.relay)}`
      );
    this.address = address;
    this.apiKey = options.apiKey || undefined;
    this.poll = options.pollMs ?? {first: 500, max: 2000};
  }

  /**
   * The relay's `GET /health`, checked: a relay of this contract's version (something else listening at the
   * address, or a relay of another version, is an error that says so).
   */
  async health(signal?: AbortSignal): Promise<{nnsight?: string; ndif?: string}> {
    const context = {model: "the NDIF relay", what: "checking it"};
    const response = await this.request("GET", "/health", context, {signal});
    const answer = response.ok
      ? await this.json(response, context, "GET /health").catch(() => ({}) as Record<string, unknown>)
      : (await response.body?.cancel(), {});
    if (answer.relay !== "lm-workbench-ndif")
      throw new WorkbenchError(
        `${this.address} does not answer as the workbench's NDIF relay (GET /health answered ${response.status}` +
          `${response.ok ? ` without "relay": "lm-workbench-ndif"` : ""}): is something else listening there?`
      );
    if (answer.protocol !== PROTOCOL_VERSION)
      throw new WorkbenchError(
        `the NDIF relay at ${this.address} speaks protocol ${JSON.stringify(answer.protocol)}, this workbench ` +
          `protocol ${PROTOCOL_VERSION}: update the one that is behind`
      );
    return {
      nnsight: typeof answer.nnsight === "string" ? answer.nnsight : undefined,
      ndif: typeof answer.ndif === "string" ? answer.ndif : undefined
    };
  }

  /**
   * One of the model's Hub files the relay serves (`config.json`, `tokenizer.json`, `tokenizer_config.json`), as
   * JSON; with `optional`, undefined where the relay has none (404).
   */
  async modelFile<T = unknown>(
    model: string,
    file: string,
    {signal, optional = false}: {signal?: AbortSignal; optional?: boolean} = {}
  ): Promise<T | undefined> {
    const path = `/models/${model}/${file}`;
    const context = {model, what: `reading ${file}`};
    const response = await this.request("GET", path, context, {signal});
    if (optional && response.status === 404) return (await response.body?.cancel(), undefined);
    if (!response.ok) throw await this.failure(response, context, `GET ${path}`);
    return (await this.json(response, context, `GET ${path}`)) as T;
  }

  /** Run `experiment` on `model` with `params` (PROTOCOL.md, "Experiments") and bring back its parsed result. */
  async run(model: string, experiment: Experiment, params: object, options: JobOptions = {}): Promise<RelayResult> {
    const {signal, onProgress} = options;
    const context: Context = {model, what: `${experiment} job`};
    if (signal?.aborted) throw signal.reason ?? abortError("stopped");

    const submitted = await this.request("POST", "/jobs", context, {
      body: JSON.stringify({model, experiment, params}),
      signal
    });
    if (!submitted.ok) throw await this.failure(submitted, context, "POST /jobs");
    const job = field(await this.json(submitted, context, "POST /jobs"), "id", "string", context, "POST /jobs");
    // A job the relay accepted must not run on for nothing: from here, stopping cancels it.
    const cancel = () => void this.request("DELETE", `/jobs/${job}`, context, {}).catch(() => undefined);
    if (signal?.aborted) (cancel(), throwAbort(signal));

    let last: JobProgress = {model, experiment, job, state: "RECEIVED"};
    onProgress?.(last);
    let wait = this.poll.first;
    for (;;) {
      await sleep(wait, signal).catch((error) => (cancel(), Promise.reject(error)));
      wait = Math.min(this.poll.max, wait * 1.5);
      const where = `GET /jobs/${job}`;
      context.state = last.state;
      const polled = await this.request("GET", `/jobs/${job}`, context, {signal}).catch((error) => {
        if (signal?.aborted) cancel();
        throw error;
      });
      if (!polled.ok) throw await this.failure(polled, context, where);
      const answer = await this.json(polled, context, where);
      const state = field(answer, "state", "string", context, where) as JobState;
      if (!JOB_STATES.includes(state))
        throw malformed(context, where, `unknown state ${JSON.stringify(state)} (one of ${JOB_STATES.join(", ")})`);
      const position = typeof answer.position === "number" ? answer.position : undefined;
      if (state !== last.state || position !== last.position) {
        last = {model, experiment, job, state, ...(position !== undefined && {position})};
        onProgress?.(last);
      }
      context.state = state;
      if (state === "COMPLETED") break;
      if (state === "ERROR")
        throw failed(
          context,
          `NDIF reported an error: ${typeof answer.message === "string" ? answer.message : "(no message)"}`
        );
      if (state === "CANCELLED") throw failed(context, "the job was cancelled on NDIF");
    }

    const path = `/jobs/${job}/result`;
    const response = await this.request("GET", path, context, {signal}).catch((error) => {
      if (signal?.aborted) cancel();
      throw error;
    });
    if (!response.ok) throw await this.failure(response, context, `GET ${path}`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    return parseResult(bytes, context, `the result of ${experiment} job ${job}`);
  }

  /** A request to the relay; a refused connection is an error that says where the relay should be and how to start it. */
  private async request(
    method: string,
    path: string,
    context: Context,
    {body, signal}: {body?: string; signal?: AbortSignal}
  ): Promise<Response> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (path.startsWith("/jobs") && this.apiKey) headers["X-NDIF-Api-Key"] = this.apiKey;
    try {
      return await fetch(`${this.address}${path}`, {method, headers, body, signal});
    } catch (error) {
      if (signal?.aborted) throwAbort(signal);
      const cause = (error as {cause?: {code?: string; message?: string}}).cause;
      const why = cause?.code ?? cause?.message ?? (error as Error).message;
      throw new WorkbenchError(
        `${describe(context)}: could not reach the NDIF relay at ${this.address} (${why}). Start it from the ` +
          `workbench's repository with \`python3 -m relay --port ${this.port()}\` (relay/README.md), or give its ` +
          `address (loadModel's relay option, the CLI's --relay, the model box's relay field)`,
        {cause: error}
      );
    }
  }

  /** The relay's port, as its start command takes it. */
  private port(): string {
    const url = new URL(this.address);
    return url.port || (url.protocol === "https:" ? "443" : "80");
  }

  /** The error a non-2xx answer stands for (PROTOCOL.md, "Errors"), with the relay's own message. */
  private async failure(response: Response, context: Context, where: string): Promise<WorkbenchError> {
    const text = await response.text().catch(() => "");
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const error = isObject(body) && isObject(body.error) ? body.error : undefined;
    const message = typeof error?.message === "string" ? error.message : undefined;
    if (message === undefined) {
      const shown = text.length > 200 ? `${text.slice(0, 200)}…` : text;
      return malformed(
        {...context, state: typeof error?.state === "string" ? error.state : context.state},
        `${where} (${response.status})`,
        `the error has no "error.message" (the body was ${JSON.stringify(shown)})`
      );
    }
    if (typeof error?.state === "string") context = {...context, state: error.state};
    const fieldNote = typeof error?.field === "string" ? ` (field ${error.field})` : "";
    const said: Record<number, string> = {
      400: `the relay refused the parameters${fieldNote}: ${message}`,
      401: this.apiKey
        ? `NDIF refused the API key (401: ${message}); check NDIF_API_KEY (keys come from https://login.ndif.us)`
        : `no NDIF API key was given (401: ${message}); set NDIF_API_KEY or give apiKey (keys come from https://login.ndif.us)`,
      404: `not found (404): ${message}`,
      409: `the result is not ready (409): ${message}`,
      410: `the result expired on NDIF (410: results are kept 2 hours): ${message}; run the experiment again`,
      502: `NDIF failed (502): ${message}`,
      503: `NDIF is unreachable or overloaded (503, after the relay's retries): ${message}; try again later`,
      504: `the job hung (504: stuck past the relay's limit after one resubmission): ${message}`
    };
    return failed(context, said[response.status] ?? `the relay answered ${response.status}: ${message}`);
  }

  private async json(response: Response, context: Context, where: string): Promise<Record<string, unknown>> {
    const text = await response.text();
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw malformed(context, where, `it is not JSON (${(error as Error).message})`);
    }
    if (!isObject(value)) throw malformed(context, where, "it is not a JSON object");
    return value;
  }
}

/** What an error names: the model, what was being done (the experiment), and the job's state when known. */
interface Context {
  model: string;
  what: string;
  state?: string;
}

const describe = (c: Context) => `${c.model}, ${c.what}${c.state ? ` (state ${c.state})` : ""}`;
const failed = (c: Context, message: string) => new WorkbenchError(`${describe(c)}: ${message}`);
const malformed = (c: Context, where: string, what: string) =>
  new WorkbenchError(`${describe(c)}: the relay's answer to ${where} is malformed: ${what}`);

function field(object: Record<string, unknown>, name: string, type: "string", context: Context, where: string): string {
  const value = object[name];
  if (typeof value !== type) throw malformed(context, where, `"${name}" is missing or not a ${type}`);
  return value as string;
}

/**
 * A result file, read whole: the safetensors header (checked by the project's parser against the file's size),
 * the `lmw` header in its metadata, and every tensor (F32, or I32 ids) — or an error naming what was wrong.
 */
export function parseResult(bytes: Uint8Array, context: Context, file: string): RelayResult {
  try {
    const parsed = parseHeader(bytes, file, bytes.length);
    const text = parsed.metadata.lmw;
    if (typeof text !== "string") throw new WorkbenchError(`${file}: its __metadata__ has no "lmw" header`);
    let header: unknown;
    try {
      header = JSON.parse(text);
    } catch (error) {
      throw new WorkbenchError(`${file}: its "lmw" header is not JSON (${(error as Error).message})`);
    }
    if (!isObject(header)) throw new WorkbenchError(`${file}: its "lmw" header is not a JSON object`);
    const tensors = new Map<string, Tensor>();
    for (const info of parsed.tensors.values())
      tensors.set(info.name, {shape: info.shape, data: tensorData(info, bytes.subarray(info.begin, info.end))});
    return {header, tensors};
  } catch (error) {
    if (!(error instanceof WorkbenchError)) throw error;
    throw new WorkbenchError(`${describe(context)}: the relay's result is malformed: ${error.message}`, {cause: error});
  }
}

function tensorData(info: TensorInfo, bytes: Uint8Array): Float32Array {
  if (info.dtype === "F32") return toFloat32(info, bytes).slice();
  if (info.dtype === "I32") {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return Float32Array.from({length: numel(info.shape)}, (_, i) => view.getInt32(4 * i, true));
  }
  throw new WorkbenchError(
    `tensor ${info.name} in ${info.file}: dtype ${info.dtype}, where the relay sends F32 or I32`
  );
}

function throwAbort(signal: AbortSignal): never {
  throw signal.reason ?? abortError("stopped");
}

/** Wait `ms`, or reject as soon as `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason ?? abortError("stopped"));
    const onAbort = () => (clearTimeout(timer), reject(signal!.reason ?? abortError("stopped")));
    const timer = setTimeout(() => (signal?.removeEventListener("abort", onAbort), resolve()), ms);
    signal?.addEventListener("abort", onAbort, {once: true});
  });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
