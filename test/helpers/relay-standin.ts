/**
 * A loopback stand-in of the NDIF relay (relay/PROTOCOL.md) for the TypeScript side's tests: it serves a fixture's
 * config.json and tokenizer.json under a Hub-like id and answers the experiments from OUR OWN ENGINE (the
 * in-process `Model` on onnxruntime-node), packed as the protocol says: a safetensors file with the header's
 * fields in `__metadata__.lmw`. What NDIF would do to a job is switchable (`behaviour`): queue positions, a
 * refused key, NDIF down, an expired result, a hung job, an error, a malformed answer.
 */
import {readFile} from "node:fs/promises";
import {createServer, type IncomingMessage, type Server, type ServerResponse} from "node:http";
import path from "node:path";
import {logitLens} from "../../src/analysis/lens.js";
import {ablateHeads, patchSweep, type PatchKind} from "../../src/analysis/patching.js";
import {WorkbenchError} from "../../src/errors.js";
import type {Edit} from "../../src/runtime/edits.js";
import type {Model} from "../../src/runtime/model.js";
import type {Tensor} from "../../src/runtime/tensor.js";
import {encodeSafetensors} from "./hub-server.js";

export interface Behaviour {
  /** The queue positions a job goes through (one a poll) before DISPATCHED and RUNNING; none: done at the first poll. */
  queue?: number[];
  /** `POST /jobs` answers 503 (NDIF unreachable after the relay's retries). */
  unavailable?: boolean;
  /** The result has expired: `GET /jobs/<id>/result` answers 410. */
  expired?: boolean;
  /** The job stays RUNNING; after `hang` polls the relay gives up on it with a 504. */
  hang?: number;
  /** The job ends in ERROR with this message (NDIF's traceback's last line). */
  error?: string;
  /** The result file is cut short. */
  truncate?: boolean;
  /** Error answers lack `error.message` (`POST /jobs` answers 500 `{"error": {"state": "RUNNING"}}`). */
  badErrorBody?: boolean;
}

interface Job {
  id: string;
  model: string;
  experiment: string;
  polls: number;
  states: {state: string; position?: number}[];
  cancelled: boolean;
  result: Uint8Array;
}

export interface RelayStandin {
  url: string;
  /** The model's id as the stand-in serves it (a Hub-like `owner/name`). */
  id: string;
  key: string;
  behaviour: Behaviour;
  /** Every request, in order: method, path (with any query) and the key header it carried. */
  requests: {method: string; url: string; key?: string}[];
  close(): Promise<void>;
}

/** Serve `model` (loaded from `dir`) as `id`, taking `key` as the only good API key. */
export async function startRelayStandin(model: Model, dir: string, id: string, key: string): Promise<RelayStandin> {
  const jobs = new Map<string, Job>();
  let next = 1;
  const standin: RelayStandin = {url: "", id, key, behaviour: {}, requests: [], close: async () => {}};

  const answer = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, {"Content-Type": "application/json", "Access-Control-Allow-Origin": "*"});
    res.end(JSON.stringify(body));
  };
  const error = (res: ServerResponse, status: number, message: string, extra: Record<string, unknown> = {}) =>
    answer(res, status, standin.behaviour.badErrorBody ? {error: {state: "RUNNING"}} : {error: {message, ...extra}});

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url!, "http://127.0.0.1");
    const keyHeader = req.headers["x-ndif-api-key"];
    standin.requests.push({
      method: req.method!,
      url: req.url!,
      key: typeof keyHeader === "string" ? keyHeader : undefined
    });
    if (req.method === "OPTIONS") {
      res.writeHead(204, {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
        "Access-Control-Allow-Headers": "Content-Type, X-NDIF-Api-Key"
      });
      return void res.end();
    }
    if (req.method === "GET" && url.pathname === "/health")
      return answer(res, 200, {relay: "lm-workbench-ndif", protocol: 1, nnsight: "stand-in", ndif: "127.0.0.1"});
    const files = /^\/models\/(.+)\/(config\.json|tokenizer\.json|tokenizer_config\.json)$/.exec(url.pathname);
    if (req.method === "GET" && files) {
      if (files[1] !== id) return error(res, 404, `${files[1]} is not deployed on NDIF`);
      res.writeHead(200, {"Content-Type": "application/json", "Access-Control-Allow-Origin": "*"});
      return void res.end(await readFile(path.join(dir, files[2])));
    }
    if (!url.pathname.startsWith("/jobs")) return error(res, 404, `no such path ${url.pathname}`);
    if (keyHeader !== key) return error(res, 401, keyHeader ? "NDIF refused the API key" : "no API key");

    const behaviour = standin.behaviour;
    if (req.method === "POST" && url.pathname === "/jobs") {
      if (behaviour.badErrorBody) return error(res, 500, "");
      if (behaviour.unavailable) return error(res, 503, "NDIF did not answer after 3 tries");
      const body = JSON.parse(await text(req)) as {model: string; experiment: string; params: Record<string, any>};
      if (body.model !== id) return error(res, 404, `${body.model} is not deployed on NDIF`, {model: body.model});
      let result: Uint8Array;
      try {
        const computed = await compute(model, body.experiment, body.params);
        result = writeResult(computed.tensors, computed.header);
      } catch (e) {
        if (e instanceof WorkbenchError) return error(res, 400, e.message, {field: "params"});
        throw e;
      }
      const job: Job = {
        id: `job-${next++}`,
        model: body.model,
        experiment: body.experiment,
        polls: 0,
        cancelled: false,
        result: behaviour.truncate ? result.subarray(0, result.length - 7) : result,
        states: behaviour.hang
          ? Array(behaviour.hang).fill({state: "RUNNING"})
          : behaviour.error
            ? [{state: "RUNNING"}, {state: "ERROR"}]
            : behaviour.queue
              ? [
                  ...behaviour.queue.map((position) => ({state: "QUEUED", position})),
                  {state: "DISPATCHED"},
                  {state: "RUNNING"},
                  {state: "COMPLETED"}
                ]
              : [{state: "COMPLETED"}]
      };
      jobs.set(job.id, job);
      return answer(res, 202, {id: job.id, state: "RECEIVED", model: job.model, experiment: job.experiment});
    }
    const m = /^\/jobs\/([^/]+)(\/result)?$/.exec(url.pathname);
    const job = m && jobs.get(m[1]);
    if (!job) return error(res, 404, `no job ${m?.[1]}`);
    const base = {id: job.id, model: job.model, experiment: job.experiment};
    if (req.method === "DELETE") {
      job.cancelled = true;
      return answer(res, 200, {id: job.id, state: "CANCELLED"});
    }
    if (m![2]) {
      if (behaviour.expired) return error(res, 410, "NDIF's result expired", {state: "COMPLETED"});
      res.writeHead(200, {"Content-Type": "application/octet-stream", "Access-Control-Allow-Origin": "*"});
      return void res.end(job.result);
    }
    if (job.cancelled) return answer(res, 200, {...base, state: "CANCELLED"});
    if (behaviour.hang && job.polls >= behaviour.hang)
      return error(res, 504, `job stuck in RUNNING past 600 s after one resubmission`, {state: "RUNNING"});
    const now = job.states[Math.min(job.polls++, job.states.length - 1)];
    return answer(res, 200, {...base, ...now, ...(now.state === "ERROR" && {message: behaviour.error})});
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e) => answer(res, 500, {error: {message: `stand-in: ${(e as Error).message}`}}));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const {port} = server.address() as {port: number};
  standin.url = `http://127.0.0.1:${port}`;
  standin.close = () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve())));
  return standin;
}

function text(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

// ---------------------------------------------------------------------------------------------------------
// The experiments, on our engine, packed as PROTOCOL.md says

type Packed = {dtype: "F32" | "I32"; shape: number[]; data: ArrayLike<number>};
const f32 = (t: Tensor): Packed => ({dtype: "F32", shape: t.shape, data: t.data});
const i32 = (t: Tensor): Packed => ({dtype: "I32", shape: t.shape, data: t.data});

interface Computed {
  tensors: Record<string, Packed>;
  header: Record<string, unknown>;
}
const packed = (tensors: Record<string, Packed>, header: Record<string, unknown>): Computed => ({
  tensors,
  header
});

/**
 * A result as the snapshot loader (docs/data/ndif-snapshot.json.py) saves it: `{experiment, params, header,
 * tensors: {name: {dtype, shape, data}}, pieces}`, computed by our engine as the stand-in computes its answers.
 */
export async function snapshotResult(model: Model, experiment: string, params: Record<string, any>) {
  const {tensors, header} = await compute(model, experiment, params);
  const ids = new Set<number>();
  for (const value of Object.values(header))
    if (Array.isArray(value)) value.forEach((v) => Number.isInteger(v) && ids.add(v));
  for (const t of Object.values(tensors)) if (t.dtype === "I32") Array.from(t.data).forEach((id) => ids.add(id));
  return {
    experiment,
    params,
    header,
    tensors: Object.fromEntries(
      Object.entries(tensors).map(([name, t]) => [name, {dtype: t.dtype, shape: t.shape, data: Array.from(t.data)}])
    ),
    pieces: Object.fromEntries([...ids].map((id) => [String(id), model.tokenizer.idToPiece(id)]))
  };
}

async function compute(model: Model, experiment: string, p: Record<string, any>): Promise<Computed> {
  if (experiment === "trace") {
    const edits = ((p.edits ?? []) as Edit[]).map((e) => ({...e}));
    const traced = (await model.trace(p.input_ids, p.hooks as string[], {edits})) as unknown as Record<string, Tensor>;
    const tensors: Record<string, Packed> = {};
    for (const hook of p.hooks as string[]) {
      const t = traced[hook];
      tensors[hook] = f32(p.positions ? keepPositions(t, p.positions) : t);
    }
    return packed(tensors, {input_ids: p.input_ids});
  }
  if (experiment === "generate") {
    const g = await model.generate(p.input_ids, {
      maxNewTokens: p.max_new_tokens,
      doSample: p.do_sample,
      temperature: p.temperature,
      topK: p.top_k,
      topP: p.top_p,
      seed: p.seed
    });
    return packed(
      {ids: {dtype: "I32", shape: [g.new_ids.length], data: g.new_ids}},
      {input_ids: p.input_ids, finish: g.stopped === "eos" ? "eos" : "length"}
    );
  }
  if (experiment === "lens") {
    const lens = await logitLens(model, p.input_ids, {k: p.k});
    return packed(
      {top_ids: i32(lens.topIds), top_logprobs: f32(lens.topLogprobs)},
      {input_ids: p.input_ids, hooks: lens.hooks}
    );
  }
  if (experiment === "patching") {
    const s = await patchSweep(model, p.clean_ids, p.corrupt_ids, p.kind as PatchKind, {ids: p.answers, top: p.top});
    const V = s.clean.length;
    return packed(
      {
        clean: {dtype: "F32", shape: [V], data: s.clean},
        corrupt: {dtype: "F32", shape: [V], data: s.corrupt},
        logits: f32(s.logits),
        top_ids: i32(s.top!.ids),
        top_logits: f32(s.top!.logits)
      },
      {kind: s.kind, clean_ids: s.clean_ids, corrupt_ids: s.corrupt_ids, hooks: s.hooks, ids: s.ids}
    );
  }
  if (experiment === "ablation") {
    const s = await ablateHeads(model, p.input_ids, {ids: p.answers, top: p.top});
    return packed(
      {
        base: {dtype: "F32", shape: [s.base.length], data: s.base},
        logits: f32(s.logits),
        top_ids: i32(s.top!.ids),
        top_logits: f32(s.top!.logits)
      },
      {input_ids: s.input_ids, hooks: s.hooks, ids: s.ids}
    );
  }
  throw new WorkbenchError(`unknown experiment ${experiment}`);
}

/** Positions (negative from the end) of a `[1, T, …]` tensor, as the relay slices them on NDIF. */
function keepPositions(t: Tensor, positions: number[]): Tensor {
  const T = t.shape[1];
  const row = t.data.length / T;
  const data = new Float32Array(positions.length * row);
  positions.forEach((p, i) =>
    data.set(t.data.subarray((p < 0 ? T + p : p) * row, ((p < 0 ? T + p : p) + 1) * row), i * row)
  );
  return {shape: [1, positions.length, ...t.shape.slice(2)], data};
}

/** The result file: the tensors in order (hub-server.ts's safetensors writer), the header's fields as JSON in `__metadata__.lmw`. */
export function writeResult(tensors: Record<string, Packed>, header: Record<string, unknown>): Uint8Array {
  return encodeSafetensors(
    Object.entries(tensors).map(([name, t]) => ({
      name,
      dtype: t.dtype,
      shape: t.shape,
      bytes: new Uint8Array((t.dtype === "F32" ? Float32Array.from(t.data) : Int32Array.from(t.data)).buffer)
    })),
    {lmw: JSON.stringify(header)}
  );
}
