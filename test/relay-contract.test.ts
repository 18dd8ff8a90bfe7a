/**
 * The contract (relay/PROTOCOL.md) between the two real sides: the workbench's TypeScript client
 * (src/remote/relay.ts, remote-model.ts) against the real Python relay (relay/server.py), with only NDIF, the Hub and
 * nnsight stood in for (relay/tests/serve_standin.py, over standin.py). Each side's own tests run against a stand-in
 * of the other; this file checks that they understand each other: the numbers NDIF's saved values hold arrive in the
 * views unchanged, in the right cells, under the right names; progress, a refused key, an ERROR job and Stop say
 * what the contract says. Skipped, with the reason printed, where python3 is missing.
 */
import {spawnSync} from "node:child_process";
import {readFileSync} from "node:fs";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {loadModel} from "../src/node.js";
import type {JobProgress, RemoteModel} from "../src/remote/remote-model.js";
import type {Edit} from "../src/runtime/edits.js";
import {Tokenizer} from "../src/tokenizer.js";
import {fixtureDir} from "./helpers/fixtures.js";
import {startStandinServer, type StandinServer} from "./helpers/standin-server.js";
import {standinValues} from "./helpers/standin-values.js";

const python = spawnSync("python3", ["--version"], {encoding: "utf8"});
const missing =
  python.error || python.status !== 0 ? `python3 is not available (${python.error?.message ?? python.stderr})` : "";
if (missing) console.log(`skipping the relay contract test: ${missing}`);

/** Fast polling: the stand-in NDIF moves a job one state a poll. */
const POLL = {first: 5, max: 20};
const PROMPT = "Once upon a time";

/** What serve_standin.py prints once the relay listens. */
interface Ready {
  relay: string;
  key: string;
  model: string;
  vocab: number;
  seeds: Record<string, number>;
}

describe.skipIf(Boolean(missing))("the real client against the real Python relay (NDIF stood in for)", () => {
  let server: StandinServer<Ready>;
  let ready: Ready;
  let remote: RemoteModel;

  const piece = (id: number) => remote.tokenizer.idToPiece(id);
  // The scripted saved values (serve_standin.py's formula) and the cells they make: set once the relay is ready.
  let values: ReturnType<typeof standinValues>;
  const command = (what: object) => server.command(what);
  /** What NDIF last received: the experiment and the relay's plan of it (what nnsight's body is built from). */
  const lastRequest = (): Promise<{experiment: string; plan: Record<string, any>}> => command({last_request: true});

  beforeAll(async () => {
    server = await startStandinServer<Ready>();
    ready = server.ready;
    values = standinValues(ready, piece);
    remote = await loadModel(`ndif:${ready.model}`, {relay: ready.relay, apiKey: ready.key, pollMs: POLL});
  });

  afterAll(async () => {
    remote?.dispose();
    await server?.stop();
  });

  it("loads the model's config and tokenizer through the relay's Hub files", () => {
    const tokenizer = Tokenizer.fromJson(
      JSON.parse(readFileSync(`${fixtureDir("stories260K")}/tokenizer.json`, "utf8")),
      JSON.parse(readFileSync(`${fixtureDir("stories260K")}/tokenizer_config.json`, "utf8"))
    );
    expect(remote.id).toBe("meta-llama/Llama-3.1-8B");
    expect(remote.backend).toBe(`NDIF via relay ${ready.relay}`);
    expect([remote.config.numLayers, remote.config.numHeads, remote.config.vocabSize]).toEqual([2, 4, ready.vocab]);
    expect(remote.config.hiddenSize).toBe(8);
    expect(remote.tokenize(PROMPT)).toEqual(tokenizer.encode(PROMPT));
  });

  it("a trace of two hook points, sliced to positions, arrives as NDIF saved it, with the job's progress", async () => {
    const progress: JobProgress[] = [];
    remote.onJob = (p) => progress.push(p);
    // Asked lm_head first: the relay reads in forward order, and names each tensor by its own hook.
    const edits: Edit[] = [{hook: "model.layers.0.mlp.output", op: "add", value: 0.5, positions: [1], range: [0, 4]}];
    const traced = await remote.trace(PROMPT, ["lm_head.output", "model.layers.0.output"], {
      positions: [-1, 0],
      edits
    });
    remote.onJob = undefined;

    // What reached NDIF: the ids, the slice, the edit as given, and the steps in forward order.
    const {experiment, plan} = await lastRequest();
    expect(experiment).toBe("trace");
    expect(plan.input_ids).toEqual(remote.tokenize(PROMPT).ids);
    expect(plan.positions).toEqual([-1, 0]);
    expect(plan.steps.map((s: any) => [s.kind, s.path])).toEqual([
      ["edit", "model.layers.0.mlp.output"],
      ["read", "model.layers.0.output"],
      ["read", "lm_head.output"]
    ]);
    expect([plan.steps[0].op, plan.steps[0].value, plan.steps[0].positions, plan.steps[0].range]).toEqual([
      "add",
      0.5,
      [1],
      [0, 4]
    ]);

    expect(traced.input_ids).toEqual(remote.tokenize(PROMPT).ids);
    // Saved in forward order: model.layers.0.output first (sent without its batch axis, nnsight #581), then lm_head.
    const resid = traced["model.layers.0.output"];
    expect(resid.shape).toEqual([1, 2, 8]);
    expect(Array.from(resid.data)).toEqual(Array.from({length: 16}, (_, i) => values.f32(values.seed("values"), i)));
    const logits = traced["lm_head.output"];
    expect(logits.shape).toEqual([1, 2, ready.vocab]);
    expect(Array.from(logits.data)).toEqual(
      Array.from({length: 2 * ready.vocab}, (_, i) => values.f32(values.seed("values") + 1, i))
    );

    const job = progress[0].job;
    expect(job).toMatch(/^[0-9a-f]{32}$/);
    const base = {model: ready.model, experiment: "trace", job};
    expect(progress).toEqual([
      {...base, state: "RECEIVED"},
      {...base, state: "QUEUED", position: 2},
      {...base, state: "QUEUED", position: 1},
      {...base, state: "RUNNING"},
      {...base, state: "COMPLETED"}
    ]);
  });

  it("the lens view: every cell's top k as the lens saved them", async () => {
    const k = 3;
    const view = await remote.analyse("lensView", PROMPT, k);
    const ids = remote.tokenize(PROMPT).ids;
    const T = ids.length;
    expect(view.prompt).toBe(PROMPT);
    expect(view.pieces).toEqual(ids.map(piece));
    expect(view.hooks).toEqual(["model.layers.0.output", "model.layers.1.output"]);
    const cells = values.lensCells(2, T, k);
    expect(view.cells).toEqual(cells);
  });

  it("the patching view: metrics from the unpatched runs' logits, each (layer, position) cell as saved", async () => {
    const [clean, corrupt] = ["Once upon a time", "Once upon a day"];
    const T = remote.tokenize(clean).ids.length;
    expect(remote.tokenize(corrupt).ids.length).toBe(T);
    const [a, b] = [37, 300];
    const top = 3;
    const view = await remote.analyse("patchingView", clean, corrupt, {answers: [a, b], kinds: ["resid", "mlp"], top});
    const cleanMetric = values.f32(values.seed("clean"), a) - values.f32(values.seed("clean"), b);
    const corruptMetric = values.f32(values.seed("corrupt"), a) - values.f32(values.seed("corrupt"), b);
    expect(view).toEqual({
      clean,
      corrupt,
      pieces: remote.tokenize(corrupt).ids.map(piece),
      answer: {id: a, token: piece(a)},
      other: {id: b, token: piece(b)},
      cleanMetric: values.round(cleanMetric),
      corruptMetric: values.round(corruptMetric),
      kinds: [
        {
          kind: "resid",
          hooks: ["model.layers.0.output", "model.layers.1.output"],
          cells: values.sweepCells(2, T, top, corruptMetric)
        },
        {
          kind: "mlp",
          hooks: ["model.layers.0.mlp.output", "model.layers.1.mlp.output"],
          cells: values.sweepCells(2, T, top, corruptMetric)
        }
      ]
    });
    expect(cleanMetric).not.toBe(corruptMetric); // the two baselines are told apart
  });

  it("the ablation view: the base run's metric, each (layer, head) cell as saved", async () => {
    const [a, b] = [12, 401];
    const top = 2;
    const view = await remote.analyse("ablationView", PROMPT, {answers: [a, b], top});
    const baseMetric = values.f32(values.seed("base"), a) - values.f32(values.seed("base"), b);
    expect(view).toEqual({
      prompt: PROMPT,
      pieces: remote.tokenize(PROMPT).ids.map(piece),
      answer: {id: a, token: piece(a)},
      other: {id: b, token: piece(b)},
      baseMetric: values.round(baseMetric),
      hooks: ["model.layers.0.self_attn.o_proj.input", "model.layers.1.self_attn.o_proj.input"],
      cells: values.sweepCells(2, 4, top, baseMetric)
    });
  });

  it("each result's header and tensors, as the client parses them, are the ones PROTOCOL.md lists", async () => {
    const ids = remote.tokenize(PROMPT).ids;
    const day = remote.tokenize("Once upon a day").ids;
    const shapes = (r: {tensors: Map<string, {shape: number[]}>}) =>
      Object.fromEntries([...r.tensors].map(([name, t]) => [name, t.shape]));
    const V = ready.vocab;
    const T = ids.length;

    const lens = await remote.relay.run(ready.model, "lens", {input_ids: ids, k: 2});
    expect(lens.header).toEqual({input_ids: ids, hooks: ["model.layers.0.output", "model.layers.1.output"]});
    expect(shapes(lens)).toEqual({top_ids: [2, T, 2], top_logprobs: [2, T, 2]});
    // I32 ids arrive as numbers; both tensors in row-major order.
    expect(Array.from(lens.tensors.get("top_ids")!.data)).toEqual(
      Array.from({length: 2 * T * 2}, (_, i) => values.i32(values.seed("top_ids"), i))
    );

    const patching = await remote.relay.run(ready.model, "patching", {
      clean_ids: ids,
      corrupt_ids: day,
      kind: "attn",
      answers: [3, 4],
      top: 2
    });
    expect(patching.header).toEqual({
      kind: "attn",
      clean_ids: ids,
      corrupt_ids: day,
      hooks: ["model.layers.0.self_attn.output", "model.layers.1.self_attn.output"],
      ids: [3, 4]
    });
    expect(shapes(patching)).toEqual({
      clean: [V],
      corrupt: [V],
      logits: [2, T, 2],
      top_ids: [2, T, 2],
      top_logits: [2, T, 2]
    });
    expect(Array.from(patching.tensors.get("corrupt")!.data)).toEqual(
      Array.from({length: V}, (_, i) => values.f32(values.seed("corrupt"), i))
    );

    const ablation = await remote.relay.run(ready.model, "ablation", {input_ids: ids, answers: [3, 4], top: 2});
    expect(ablation.header).toEqual({
      input_ids: ids,
      hooks: ["model.layers.0.self_attn.o_proj.input", "model.layers.1.self_attn.o_proj.input"],
      ids: [3, 4]
    });
    expect(shapes(ablation)).toEqual({base: [V], logits: [2, 4, 2], top_ids: [2, 4, 2], top_logits: [2, 4, 2]});

    const trace = await remote.relay.run(ready.model, "trace", {input_ids: ids, hooks: ["model.layers.1.mlp.output"]});
    expect(trace.header).toEqual({input_ids: ids});
    expect(shapes(trace)).toEqual({"model.layers.1.mlp.output": [1, T, 8]});
  });

  it("generation: the sampling options reach NDIF by their names there; the new ids come back", async () => {
    const ids = remote.tokenize(PROMPT).ids;
    const tokens: number[] = [];
    const generation = await remote.generate(PROMPT, {
      maxNewTokens: 4,
      doSample: true,
      temperature: 0.75,
      topK: 5,
      topP: 0.5,
      seed: 3,
      onToken: (t) => tokens.push(t.id)
    });
    const {experiment, plan} = await lastRequest();
    expect(experiment).toBe("generate");
    expect(plan).toEqual({
      input_ids: ids,
      max_new_tokens: 4,
      do_sample: true,
      temperature: 0.75,
      top_k: 5,
      top_p: 0.5,
      seed: 3
    });
    const fresh = Array.from({length: 4}, (_, i) => values.i32(values.seed("output"), i));
    expect(generation.input_ids).toEqual(ids);
    expect(generation.new_ids).toEqual(fresh);
    expect(tokens).toEqual(fresh);
    expect(generation.stopped).toBe("max_new_tokens"); // none of the four is the end-of-sequence id 2
    expect(generation.text).toBe(remote.tokenizer.decode([...ids, ...fresh], {skipSpecialTokens: true}));
  });

  it("what the relay cannot run is the client's 400 error naming the field and why", async () => {
    await expect(
      remote.trace(PROMPT, ["model.layers.0.output", "model.layers.1.self_attn.attn_weights"])
    ).rejects.toThrow(
      `${ready.model}, trace job: the relay refused the parameters (field params.hooks[1]): params.hooks[1]: ` +
        "model.layers.1.self_attn.attn_weights: attention weights are not a module's output: NDIF runs the models " +
        "with SDPA attention, which never forms them"
    );
    await expect(remote.analyse("lensView", PROMPT, 101)).rejects.toThrow(
      `${ready.model}, lens job: the relay refused the parameters (field params.k): params.k: an integer from 1 to ` +
        "100 is required, not 101"
    );
  });

  it("a key NDIF refuses is the client's 401 error, naming the key", async () => {
    const refused = await loadModel(`ndif:${ready.model}`, {relay: ready.relay, apiKey: "not-the-key", pollMs: POLL});
    await expect(refused.trace(PROMPT, ["lm_head.output"])).rejects.toThrow(
      `${ready.model}, trace job: NDIF refused the API key (401: NDIF refused the API key (POST /request): Missing or invalid API ` +
        `key. Please visit https://login.ndif.us/); check NDIF_API_KEY (keys come from https://login.ndif.us)`
    );
  });

  it("a job NDIF ends in ERROR is the client's error with NDIF's message and the state", async () => {
    const traceback =
      'Traceback (most recent call last):\n  File "<nnsight>", line 3, in <module>\n' +
      "IndexError: index 40 is out of bounds for dimension 0 with size 32\n";
    expect(await command({fail_next: traceback})).toEqual({ok: "fail_next"});
    const progress: JobProgress[] = [];
    remote.onJob = (p) => progress.push(p);
    await expect(remote.trace(PROMPT, ["lm_head.output"])).rejects.toThrow(
      `${ready.model}, trace job (state ERROR): NDIF reported an error: ` +
        "IndexError: index 40 is out of bounds for dimension 0 with size 32"
    );
    remote.onJob = undefined;
    expect(progress.map((p) => p.state)).toEqual(["RECEIVED", "RUNNING", "ERROR"]);
  });

  it("Stop cancels the job: the relay sees the DELETE and the job stays CANCELLED", async () => {
    const controller = new AbortController();
    let job = "";
    remote.onJob = (p) => {
      job = p.job!;
      if (p.state === "QUEUED") controller.abort();
    };
    await expect(remote.trace(PROMPT, ["lm_head.output"], {signal: controller.signal})).rejects.toMatchObject({
      name: "AbortError"
    });
    remote.onJob = undefined;
    // The client sends the DELETE without waiting for it: wait for the relay's log line.
    const deleted = `"DELETE /jobs/${job} HTTP/1.1" 200`;
    for (let i = 0; i < 100 && !server.log().includes(deleted); i++) await new Promise((r) => setTimeout(r, 20));
    expect(server.log()).toContain(deleted);
    const answer = await fetch(`${ready.relay}/jobs/${job}`, {headers: {"X-NDIF-Api-Key": ready.key}});
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({id: job, model: ready.model, experiment: "trace", state: "CANCELLED"});
  });
});
