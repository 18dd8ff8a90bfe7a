/**
 * The model's own thread: a module worker that loads one model with onnxruntime-web and answers the page's
 * calls (src/runtime/worker-protocol.ts). Everything slow — downloads, building the graph, creating the
 * session, tokenizing, forward passes, generation — happens here, so the page keeps painting and its
 * controls keep answering while a pass runs. Started by src/runtime/worker-model.ts.
 *
 * Calls run in the order they arrive; the page sends the next one only when this one has answered, so an
 * `abort` for the running generation is read between two of its steps (each `await` of a session run
 * gives the worker's event loop a turn).
 */
import {loadModel} from "../browser.js";
import {FLOAT, GraphBuilder} from "../graph/onnx.js";
import type {Model} from "./model.js";
import type {AnalysisName} from "./language-model.js";
import {createWebRuntime} from "./ort-web.js";
import type {Tensor} from "./tensor.js";
import type {Edit} from "./edits.js";
import type {FromWorker, ModelInfo, SentError, ToWorker, WorkerCall, WorkerLoad} from "./worker-protocol.js";

// A module worker's global scope; typed here so this file compiles with the DOM library alone.
const scope = globalThis as unknown as {
  postMessage(message: FromWorker, transfer?: Transferable[]): void;
  addEventListener(type: "message", listener: (event: MessageEvent<ToWorker>) => void): void;
};

const post = (message: FromWorker, transfer: Transferable[] = []) => scope.postMessage(message, transfer);

let model: Model | undefined;
const aborts = new Map<number, AbortController>();

function sent(error: unknown): SentError {
  const code = (error as {code?: unknown} | undefined)?.code;
  if (error instanceof Error)
    return {name: error.name, message: error.message, ...(typeof code === "string" ? {code} : {})};
  if (error && typeof error === "object" && "message" in error)
    return {name: "Error", message: String((error as {message: unknown}).message)};
  return {name: "Error", message: String(error)};
}

scope.addEventListener("message", ({data}) => {
  if (data.op === "load") {
    // The page's own thread needs a core to paint and answer input while a pass runs.
    const maxThreads = Math.max(1, (navigator.hardwareConcurrency ?? 2) - 1);
    const warm = warmUp(data, maxThreads);
    loadModel(data.id, {
      // The warm-up's session first: the native WebGPU provider makes one session at a time.
      sessionsAfter: warm,
      maxThreads,
      bundled: data.bundled,
      endpoint: data.endpoint,
      token: data.token,
      preferWebGPU: data.preferWebGPU,
      allowSoftwareAdapter: data.allowSoftwareAdapter,
      webgpuBuild: data.webgpuBuild,
      // "auto" on a hardware adapter: a timed probe, shared with the warm-up's, decides WebGPU or WASM.
      probe: true,
      // On WebGPU, generation runs on the lean decode graph (runtime/decode.ts): on the native provider a
      // SmolLM2-135M step is 12 kernels a layer + 5 and one readback of ≤ 64 bytes, instead of the traced graph's
      // 1308 kernels and 196,608 bytes. This worker holds one model, which is what the JSEP build (`?webgpu=jsep`)
      // needs of it to take the lean graph too (it reuses compiled shaders across models in one instance).
      leanDecode: true,
      onProgress: (progress) => post({type: "progress", progress}),
      ...(data.init === "random" ? {init: "random" as const, seed: data.seed ?? 0} : {})
    }).then(
      (loaded) => {
        model = loaded;
        yieldBetweenRuns(loaded);
        reportTokenizing(loaded);
        post({type: "loaded", info: infoOf(loaded)});
      },
      (error) => post({type: "load-error", error: sent(error)})
    );
  } else if (data.op === "abort") {
    aborts.get(data.req)?.abort(new DOMException("stopped", "AbortError"));
  } else {
    answer(data);
  }
});

/**
 * Start onnxruntime's WebAssembly (fetching and compiling its ~15 MB module, a second or more) at once, with a
 * session of one Identity op, instead of after the config, the tokenizer and the graph are ready: the compile
 * runs on the browser's background threads while this one reads and builds. The model's own session then
 * finds the runtime initialized. A failure here is the model's failure to report, not this one's: ignored.
 */
async function warmUp(
  {
    preferWebGPU,
    allowSoftwareAdapter,
    webgpuBuild
  }: Pick<WorkerLoad, "preferWebGPU" | "allowSoftwareAdapter" | "webgpuBuild">,
  maxThreads: number
): Promise<void> {
  try {
    const runtime = await createWebRuntime({preferWebGPU, allowSoftwareAdapter, webgpuBuild, maxThreads, probe: true});
    const g = new GraphBuilder();
    g.output("y", g.op("Identity", [g.input("x", FLOAT, [1])]), FLOAT, [1]);
    const tiny = g.build("warm-up");
    // On the backend the model's session will ask for: onnxruntime-web starts its WebAssembly once per backend
    // name, and a "wasm" start still under way when the model's "webgpu" one begins fails the latter ("multiple
    // calls to 'initWasm()'"), which sent the model to WASM. Under one name, the second waits for the first.
    const session = await runtime.ort.InferenceSession.create(tiny.model, {
      executionProviders: [runtime.backend === "webgpu" ? "webgpu" : "wasm"]
    });
    await session.release();
  } catch {
    // loadModel creates the runtime again and says what went wrong.
  }
}

/**
 * A macrotask turn before each session run. onnxruntime-web's WASM run computes synchronously and resolves
 * through microtasks only, so without this a generation's steps follow one another with no turn for the
 * worker's message events: an `abort` would be read only after the last token.
 */
function yieldBetweenRuns(m: Model): void {
  const run = m.run.bind(m);
  m.run = async (...args: Parameters<Model["run"]>) => {
    await nextMacrotask();
    return run(...args);
  };
}

/** The call being answered (calls come one at a time), for the tokenizing spans reported to the page. */
let answering: number | undefined;

/**
 * An analysis tokenizes its text here, in the worker, where a tokenizer's pattern matching may take minutes on
 * some inputs and nothing can interrupt it: so each tokenization is reported to the page before it starts and
 * after it ends, and the page holds it to the tokenizer's time limit, replacing the worker when it runs over
 * (worker-model.ts, `timeOut`), as it does for its own `encode` calls.
 */
function reportTokenizing(m: Model): void {
  const encode = m.tokenizer.encode.bind(m.tokenizer);
  m.tokenizer.encode = (text: string) => {
    const req = answering;
    if (req !== undefined) post({type: "tokenizing", req, busy: true});
    try {
      return encode(text);
    } finally {
      if (req !== undefined) post({type: "tokenizing", req, busy: false});
    }
  };
}

/** Resolves on the next macrotask (a MessageChannel message: no 4 ms clamp, unlike nested setTimeouts). */
function nextMacrotask(): Promise<void> {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
}

function infoOf(m: Model): ModelInfo {
  return {
    id: m.id,
    backend: m.backend,
    oneGraph: m.oneGraph,
    weightsOrigin: m.weightsOrigin,
    config: m.config,
    parameters: m.parameters(),
    hookPoints: m.hookPoints(),
    moduleTree: m.moduleTree(),
    counts: m.counts(),
    eosIds: m.eosIds(),
    bosTokenId: m.tokenizer.bosTokenId,
    eosTokenId: m.tokenizer.eosTokenId
  };
}

async function answer({req, method, args}: WorkerCall): Promise<void> {
  const controller = new AbortController();
  aborts.set(req, controller);
  answering = req;
  try {
    if (!model) throw new Error("the model is not loaded yet");
    const m = model;
    let value: unknown;
    let transfer: Transferable[] = [];
    switch (method) {
      case "encode":
        value = m.tokenizer.encode(args[0] as string);
        break;
      case "decode":
        value = m.tokenizer.decode(args[0] as number[], args[1] as {skipSpecialTokens?: boolean});
        break;
      case "pieces":
        value = m.pieces(args[0] as number[]);
        break;
      case "weight":
        // Copied, not transferred: the weights' own buffers may still be the worker's.
        value = await m.weight(args[0] as string);
        break;
      case "trace": {
        const paths = args[1] as string[];
        const traced = await m.trace(args[0] as number[], paths, {edits: (args[2] as Edit[] | undefined) ?? []});
        const hooks = new Set(m.hookPoints());
        const tensors: Record<string, Tensor> = {};
        const buffers = new Set<ArrayBuffer>();
        for (const path of paths) {
          const t = traced[path]!;
          tensors[path] = t;
          // Activations were made for this call: hand their memory over. Weights stay (copied).
          if (hooks.has(path) && t.data.buffer instanceof ArrayBuffer) buffers.add(t.data.buffer);
        }
        value = {tensors, input_ids: traced.input_ids, tokens: traced.tokens};
        transfer = [...buffers];
        break;
      }
      case "generate": {
        const options = (args[1] ?? {}) as Record<string, unknown>;
        value = await m.generate(args[0] as number[], {
          ...options,
          signal: controller.signal,
          onToken: (token) => post({type: "token", req, token})
        });
        break;
      }
      case "analyse": {
        // [name, ...args, options?]: the options' callbacks crossed as their names; here they post events.
        const [name, callbacks, ...rest] = args as [AnalysisName, string[], ...unknown[]];
        const last = rest.at(-1);
        if (last && typeof last === "object" && Object.getPrototypeOf(last) === Object.prototype) {
          const options = last as Record<string, unknown>;
          for (const callback of callbacks)
            options[callback] = (...eventArgs: unknown[]) =>
              post({type: "event", req, name: callback, args: eventArgs});
          options.signal = controller.signal;
        }
        value = await (m.analyse as (name: AnalysisName, ...args: unknown[]) => Promise<unknown>)(name, ...rest);
        break;
      }
      default:
        throw new Error(`unknown call ${String(method)}`);
    }
    post({type: "result", req, value, runs: m.runs}, transfer);
  } catch (error) {
    post({type: "error", req, error: sent(error), runs: model?.runs ?? 0});
  } finally {
    aborts.delete(req);
    answering = undefined;
  }
}
