/**
 * The page side of the model's worker (src/runtime/worker-model.ts) against a worker that speaks the protocol
 * (src/runtime/worker-protocol.ts) but is under the test's control: calls run one at a time in order; an
 * aborted waiting call never reaches the worker; a lane's newer call supersedes its older waiting one; Stop
 * answers at once with what has streamed; a hung tokenizer call gives a TokenizerTimeoutError and a new
 * worker that loads the model again. (The real worker, in chromium: test/lecture-e2e.test.ts.)
 */
import {afterEach, beforeEach, describe, expect, it} from "vitest";
import {loadWorkerModel, TokenizerTimeoutError, type WorkerModel} from "../src/runtime/worker-model.js";
import type {FromWorker, ModelInfo, ToWorker} from "../src/runtime/worker-protocol.js";

const INFO = {
  id: "fake",
  backend: "none",
  oneGraph: false,
  weightsOrigin: "checkpoint",
  config: {numLayers: 1, vocabSize: 10} as ModelInfo["config"],
  parameters: [],
  hookPoints: ["lm_head.output"],
  moduleTree: "Fake()",
  counts: {total: 0, embedding: 0, attention: 0, mlp: 0, norm: 0, head: 0, layers: []},
  eosIds: []
} satisfies ModelInfo;

/** Every fake worker started, and what each was asked, in order. */
let workers: FakeWorker[] = [];

class FakeWorker {
  received: ToWorker[] = [];
  terminated = false;
  private listeners: ((event: {data: FromWorker}) => void)[] = [];
  private aborted = new Set<number>();

  constructor() {
    workers.push(this);
  }

  addEventListener(type: string, listener: (event: {data: FromWorker}) => void): void {
    if (type === "message") this.listeners.push(listener);
  }

  private send(data: FromWorker): void {
    setTimeout(() => !this.terminated && this.listeners.forEach((l) => l({data})), 1);
  }

  postMessage(message: ToWorker): void {
    this.received.push(message);
    if (message.op === "load") return this.send({type: "loaded", info: INFO});
    if (message.op === "abort") return void this.aborted.add(message.req);
    const {req, method, args} = message;
    if (method === "encode") {
      const text = args[0] as string;
      if (text.includes("hang")) return; // a pathological input: this worker never answers
      const ids = [...text].map((c) => c.charCodeAt(0) % 10);
      return this.send({type: "result", req, value: {ids, tokens: [...text], pieces: [...text]}, runs: 0});
    }
    if (method === "trace")
      return this.send({type: "result", req, value: {tensors: {}, input_ids: args[0], tokens: []}, runs: 1});
    if (method === "analyse") {
      // [name, callback names, ...args]: report each callback once, then answer with what arrived.
      const [, callbacks, text] = args as [string, string[], unknown];
      // An analysis tokenizes in the worker: it says so, and on a pathological input never says it is done.
      this.send({type: "tokenizing", req, busy: true});
      if (typeof text === "string" && text.includes("hang")) return;
      this.send({type: "tokenizing", req, busy: false});
      for (const name of callbacks) this.send({type: "event", req, name, args: [1, 2]});
      return this.send({type: "result", req, value: args, runs: 1});
    }
    if (method === "generate") {
      // One token every 5 ms until 20 or an abort, read between steps as the real worker does.
      let index = 0;
      const step = () => {
        if (this.terminated) return;
        if (this.aborted.has(req) || index === 20) {
          return this.send({
            type: "result",
            req,
            value: {input_ids: args[0], new_ids: [], text: "", stopped: index === 20 ? "max_new_tokens" : "aborted"},
            runs: index
          });
        }
        this.send({type: "token", req, token: {id: index, text: `t${index}`, index, piece: ` t${index}`}});
        index++;
        setTimeout(step, 5);
      };
      return step();
    }
  }

  terminate(): void {
    this.terminated = true;
  }
}

const calls = (w: FakeWorker) =>
  w.received.flatMap((m) => (m.op === "call" ? [`${m.method}:${JSON.stringify(m.args[0])}`] : []));

let model: WorkerModel;
beforeEach(async () => {
  workers = [];
  (globalThis as {Worker?: unknown}).Worker = FakeWorker;
  model = await loadWorkerModel("fake", {workerUrl: "fake-worker.js", tokenizerTimeoutMs: 50});
});
afterEach(() => {
  delete (globalThis as {Worker?: unknown}).Worker;
});

describe("WorkerModel", () => {
  it("looks like a Model: its fixed facts without a call, and trace by paths", async () => {
    expect([model.id, model.config.vocabSize, model.hookPoints(), model.moduleTree()]).toEqual([
      "fake",
      10,
      ["lm_head.output"],
      "Fake()"
    ]);
    const traced = await model.trace([1, 2], ["lm_head.output"]);
    expect(traced.input_ids).toEqual([1, 2]);
    expect(model.runs).toBe(1);
  });

  it("a lane's newer call supersedes its older one still waiting: only the last value runs", async () => {
    const busy = model.trace([0], ["lm_head.output"]); // in the worker
    const older = model.lane("tokens").tokenizer.encode("old");
    const newer = model.lane("tokens").tokenizer.encode("new");
    await expect(older).rejects.toMatchObject({name: "AbortError"});
    await expect(newer).resolves.toMatchObject({tokens: ["n", "e", "w"]});
    await busy;
    expect(calls(workers[0]!)).toEqual(["trace:[0]", 'encode:"new"']);
  });

  it("an aborted call that is still waiting never reaches the worker", async () => {
    const controller = new AbortController();
    const busy = model.trace([0], ["lm_head.output"]);
    const waiting = model.trace([5], ["lm_head.output"], {signal: controller.signal});
    controller.abort();
    await expect(waiting).rejects.toMatchObject({name: "AbortError"});
    await busy;
    await model.trace([6], ["lm_head.output"]);
    expect(calls(workers[0]!)).toEqual(["trace:[0]", "trace:[6]"]);
  });

  it("Stop answers at once with the tokens streamed so far; the next call runs when the worker has stopped", async () => {
    const controller = new AbortController();
    const streamed: string[] = [];
    const run = model.generate([1], {signal: controller.signal, onToken: (t) => streamed.push(t.piece)});
    await new Promise((resolve) => setTimeout(resolve, 30));
    controller.abort();
    const result = await run;
    expect(result.stopped).toBe("aborted");
    expect(result.new_ids).toHaveLength(streamed.length);
    expect(streamed.length).toBeGreaterThan(0);
    const afterStop = streamed.length;
    await model.trace([2], ["lm_head.output"]);
    expect(streamed).toHaveLength(afterStop); // no token after Stop reached the page
  });

  it("an analysis runs in the worker by name: its callbacks' names cross, the worker's events call them here", async () => {
    const progress: number[][] = [];
    const sent = (await model.analyse("ablationView", "a is a", {
      answers: [1, 2],
      onProgress: (done, total) => progress.push([done, total])
    })) as unknown;
    expect(sent).toEqual(["ablationView", ["onProgress"], "a is a", {answers: [1, 2]}]);
    expect(progress).toEqual([[1, 2]]);
    expect(calls(workers[0]!)).toEqual(['analyse:"ablationView"']);
  });

  it("an analysis whose tokenizing hangs in the worker gives a TokenizerTimeoutError and a new worker", async () => {
    const hung = model.analyse("analyseTokens", "hang here", {k: 3});
    await expect(hung).rejects.toBeInstanceOf(TokenizerTimeoutError);
    await expect(hung).rejects.toThrow(/tokenizing took longer than 0 s, so it was given up/);
    expect(workers).toHaveLength(2);
    expect(workers[0]!.terminated).toBe(true);
    // The next analysis runs on the new worker, its tokenizing within the limit.
    await expect(model.analyse("analyseTokens", "fine", {k: 3})).resolves.toEqual([
      "analyseTokens",
      [],
      "fine",
      {k: 3}
    ]);
  });

  it("a hung tokenizer call gives a TokenizerTimeoutError; a new worker loads the model; the same text fails at once", async () => {
    const hung = model.tokenizer.encode("hang here");
    await expect(hung).rejects.toBeInstanceOf(TokenizerTimeoutError);
    await expect(hung).rejects.toThrow(/tokenizing took longer than 0 s, so it was given up/);
    expect(workers).toHaveLength(2);
    expect(workers[0]!.terminated).toBe(true);
    expect(workers[1]!.received[0]).toMatchObject({op: "load", id: "fake"});
    await expect(model.tokenizer.encode("fine")).resolves.toMatchObject({tokens: ["f", "i", "n", "e"]});
    await expect(model.tokenizer.encode("hang here")).rejects.toBeInstanceOf(TokenizerTimeoutError);
    expect(workers).toHaveLength(2); // asked again, it did not hang another worker
  });
});
