/**
 * The NDIF remote model (src/remote/) against a loopback stand-in of the relay (helpers/relay-standin.ts) that
 * answers from our own engine on stories260K: what comes back through the relay's contract equals what the
 * engine computes here (trace values, lens cells, patching and ablation views, generated tokens); progress, Stop
 * and every failure the contract names say what happened.
 */
import {afterAll, afterEach, beforeAll, describe, expect, it} from "vitest";
import {createServer} from "node:net";
import {createServer as createHttpServer} from "node:http";
import {loadModel, type Model} from "../src/node.js";
import {ablationView, defaultPair, lensView, patchingView} from "../src/analysis/inside-model.js";
import {loadRemoteModel, type JobProgress, type RemoteModel} from "../src/remote/remote-model.js";
import {main} from "../src/cli.js";
import {fixtureDir} from "./helpers/fixtures.js";
import {snapshotResult, startRelayStandin, type RelayStandin} from "./helpers/relay-standin.js";
import {snapshotLensView, snapshotPatchingView, type SnapshotResult} from "../src/remote/snapshot.js";

const KEY = "test-key-not-a-secret";
const ID = "lmw-fixtures/stories260K";
/** Fast polling: the stand-in answers at once. */
const POLL = {first: 5, max: 20};

describe("the NDIF remote model, against a stand-in of the relay", () => {
  let local: Model;
  let standin: RelayStandin;
  let remote: RemoteModel;
  const prompt = "Once upon a time";

  beforeAll(async () => {
    local = await loadModel(fixtureDir("stories260K"));
    standin = await startRelayStandin(local, fixtureDir("stories260K"), ID, KEY);
    remote = await loadModel(`ndif:${ID}`, {relay: standin.url, apiKey: KEY, pollMs: POLL});
  });
  afterAll(async () => {
    await standin?.close();
    await local?.dispose();
  });
  afterEach(() => {
    standin.behaviour = {};
    remote.onJob = undefined;
  });

  it("reads the config and tokenizer through the relay: the same names as the local model", () => {
    expect(remote.id).toBe(ID);
    expect(remote.backend).toBe(`NDIF via relay ${standin.url}`);
    expect(remote.weightsOrigin).toMatch(/NDIF/);
    expect(remote.config).toEqual(local.config);
    expect(remote.hookPoints()).toEqual(local.hookPoints());
    expect(remote.moduleTree()).toBe(local.moduleTree());
    expect(remote.parameters()).toEqual(local.parameters());
    expect(remote.tokenize(prompt)).toEqual(local.tokenize(prompt));
  });

  it("traces hook points by path and by pick, with edits and position slices, as the local engine does", async () => {
    const hooks = ["model.layers.0.output", "model.layers.1.mlp.output", "lm_head.output"];
    const there = await remote.trace(prompt, hooks);
    const here = await local.trace(prompt, hooks);
    expect(there.input_ids).toEqual(here.input_ids);
    expect(there.tokens).toEqual(here.tokens);
    for (const hook of hooks) {
      expect(there[hook].shape).toEqual(here[hook].shape);
      expect(Array.from(there[hook].data)).toEqual(Array.from(here[hook].data));
    }

    const edits = [{hook: "model.layers.0.mlp.output", op: "set" as const, value: 0, positions: [1]}];
    const pick = (m: any) => ({resid: m.model.layers[1].output});
    const editedThere = await remote.trace(prompt, pick, {edits});
    const editedHere = await local.trace(prompt, pick, {edits});
    expect(Array.from(editedThere.resid.data)).toEqual(Array.from(editedHere.resid.data));
    const unedited = (await local.trace(prompt, pick)).resid.data;
    expect(Array.from(editedThere.resid.data)).not.toEqual(Array.from(unedited)); // the edit did something

    // Positions are sliced on NDIF: the last and the first row of the local tensor, in that order.
    const sliced = await remote.trace(prompt, ["model.layers.1.output"], {positions: [-1, 0]});
    const full = await local.trace(prompt, ["model.layers.1.output"]);
    const [, T, d] = full["model.layers.1.output"].shape;
    const row = (t: number) => Array.from(full["model.layers.1.output"].data.subarray(t * d, (t + 1) * d));
    expect(sliced["model.layers.1.output"].shape).toEqual([1, 2, d]);
    expect(Array.from(sliced["model.layers.1.output"].data)).toEqual([...row(T - 1), ...row(0)]);
    // The local trace slices the same way.
    const localSliced = await local.trace(prompt, ["model.layers.1.output"], {positions: [-1, 0]});
    expect(Array.from(localSliced["model.layers.1.output"].data)).toEqual([...row(T - 1), ...row(0)]);
  });

  it("the lens, patching and ablation views equal the local analyses' cell for cell", async () => {
    expect(await remote.analyse("lensView", prompt, 3)).toEqual(await lensView(local, prompt, 3));

    const pair = defaultPair(local);
    expect(await remote.analyse("defaultPair")).toEqual(pair);
    // Default answers: the remote model reads both runs' last logits (two trace jobs), as the local one does.
    const there = await remote.analyse("patchingView", pair.clean, pair.corrupt);
    const here = await patchingView(local, pair.clean, pair.corrupt);
    expect(there).toEqual(here);
    expect(there.kinds.map((k) => k.kind)).toEqual(["resid", "attn", "mlp"]);
    expect(there.kinds[0].cells.some((c) => c.value !== 0)).toBe(true);

    const ablationPrompt = "Once upon a time, there was";
    expect(await remote.analyse("ablationView", ablationPrompt)).toEqual(await ablationView(local, ablationPrompt));
    expect(await remote.analyse("ablationView", ablationPrompt, {answers: pair.answers})).toEqual(
      await ablationView(local, ablationPrompt, {answers: pair.answers})
    );
  });

  it("generates the local engine's tokens and streams them with their pieces", async () => {
    const here = await local.generate(prompt, {maxNewTokens: 12});
    const streamed: {id: number; text: string; piece: string}[] = [];
    const there = await remote.generate(prompt, {maxNewTokens: 12, onToken: (t) => streamed.push(t)});
    expect(there.new_ids).toEqual(here.new_ids);
    expect(there.text).toBe(here.text);
    expect(there.stopped).toBe(here.stopped);
    expect(streamed.map((t) => t.id)).toEqual(here.new_ids);
    expect(prompt + streamed.map((t) => t.text).join("")).toBe(here.text);
    expect(streamed.map((t) => t.piece)).toEqual(local.pieces(here.new_ids));
  });

  it("reports each state and queue position in order", async () => {
    standin.behaviour = {queue: [3, 2, 1]};
    const seen: JobProgress[] = [];
    remote.onJob = (p) => seen.push(p);
    await remote.trace(prompt, ["model.layers.0.output"]);
    expect(seen.map((p) => [p.state, p.position])).toEqual([
      ["RECEIVED", undefined],
      ["QUEUED", 3],
      ["QUEUED", 2],
      ["QUEUED", 1],
      ["DISPATCHED", undefined],
      ["RUNNING", undefined],
      ["COMPLETED", undefined]
    ]);
    expect(seen.every((p) => p.experiment === "trace" && p.model === ID)).toBe(true);
  });

  it("Stop cancels the job on NDIF (DELETE) and rejects at once", async () => {
    standin.behaviour = {hang: 10_000};
    const controller = new AbortController();
    remote.onJob = (p) => p.state === "RUNNING" && controller.abort();
    const started = Date.now();
    const run = remote.trace(prompt, ["model.layers.0.output"], {signal: controller.signal});
    await expect(run).rejects.toMatchObject({name: "AbortError"});
    expect(Date.now() - started).toBeLessThan(2000);
    await expect.poll(() => standin.requests.filter((r) => r.method === "DELETE").length).toBe(1);
    const job = standin.requests.find((r) => r.method === "DELETE")!.url;
    expect(job).toMatch(/^\/jobs\/job-\d+$/);

    // A stopped generation ends "aborted", as the local one does, and cancels its job too.
    const generation = new AbortController();
    remote.onJob = (p) => p.state === "RUNNING" && generation.abort();
    const g = await remote.generate(prompt, {maxNewTokens: 5, signal: generation.signal});
    expect(g.stopped).toBe("aborted");
    expect(g.new_ids).toEqual([]);
    await expect.poll(() => standin.requests.filter((r) => r.method === "DELETE").length).toBe(2);
  });

  it("each failure is an error naming the model, the experiment, the state and what was wrong", async () => {
    const trace = () => remote.trace(prompt, ["model.layers.0.output"]);
    const failure = async (run: () => Promise<unknown>) => {
      const error = await run().then(
        () => undefined,
        (e: Error) => e
      );
      expect(error?.name).toBe("WorkbenchError");
      return error!.message;
    };

    const unkeyed = await loadRemoteModel(ID, {relay: standin.url, apiKey: "wrong", pollMs: POLL});
    let message = await failure(() => unkeyed.trace(prompt, ["model.layers.0.output"]));
    expect(message).toMatch(new RegExp(`^${ID}, trace job: NDIF refused the API key \\(401`));
    expect(message).toMatch(/NDIF_API_KEY/);
    const keyless = await loadRemoteModel(ID, {relay: standin.url, pollMs: POLL});
    expect(await failure(() => keyless.analyse("lensView", prompt))).toMatch(/lens job: no NDIF API key was given/);

    standin.behaviour = {unavailable: true};
    expect(await failure(trace)).toMatch(
      /trace job: NDIF is unreachable or overloaded \(503.*did not answer after 3 tries/
    );

    standin.behaviour = {expired: true};
    message = await failure(trace);
    expect(message).toMatch(/trace job \(state COMPLETED\): the result expired on NDIF \(410/);
    expect(message).toMatch(/run the experiment again/);

    standin.behaviour = {hang: 3};
    expect(await failure(trace)).toMatch(/trace job \(state RUNNING\): the job hung \(504.*stuck in RUNNING/);

    standin.behaviour = {error: "RuntimeError: CUDA out of memory"};
    expect(await failure(() => remote.analyse("lensView", prompt))).toMatch(
      /lens job \(state ERROR\): NDIF reported an error: RuntimeError: CUDA out of memory/
    );

    standin.behaviour = {truncate: true};
    message = await failure(trace);
    expect(message).toMatch(
      /trace job \(state COMPLETED\): the relay's result is malformed: .*result of trace job job-\d+/
    );
    expect(message).toMatch(/out of bounds|truncated/);

    standin.behaviour = {badErrorBody: true};
    expect(await failure(trace)).toMatch(
      /trace job \(state RUNNING\): the relay's answer to POST \/jobs \(500\) is malformed: the error has no "error.message" \(the body was/
    );

    // Bad parameters come back as the relay's 400, naming the hook; unknown hooks are refused before any job.
    expect(await failure(() => remote.trace(prompt, ["model.layers.99.output"]))).toMatch(
      /unknown hook point model.layers.99.output: .* has layers 0 to 4/
    );

    // Nothing half-read was kept: the same trace, answered whole, gives the engine's values.
    standin.behaviour = {};
    const again = await trace();
    const here = await local.trace(prompt, ["model.layers.0.output"]);
    expect(Array.from(again["model.layers.0.output"].data)).toEqual(Array.from(here["model.layers.0.output"].data));
  });

  it("a relay that is not there: the error names its address and how to start it", async () => {
    const port = await new Promise<number>((resolve) => {
      const server = createServer();
      server.listen(0, "127.0.0.1", () => {
        const {port} = server.address() as {port: number};
        server.close(() => resolve(port));
      });
    });
    const error = await loadRemoteModel(ID, {relay: `http://127.0.0.1:${port}`, apiKey: KEY}).catch((e: Error) => e);
    expect((error as Error).message).toMatch(
      new RegExp(
        `could not reach the NDIF relay at http://127.0.0.1:${port} \\(ECONNREFUSED\\)\\. Start it from the workbench's repository with \`python3 -m relay --port ${port}\``
      )
    );
  });

  it("something other than the relay at the address: the error says so", async () => {
    const other = createHttpServer((_, res) => res.writeHead(404).end("not here"));
    await new Promise<void>((resolve) => other.listen(0, "127.0.0.1", resolve));
    const {port} = other.address() as {port: number};
    try {
      const error = await loadRemoteModel(ID, {relay: `http://127.0.0.1:${port}`, apiKey: KEY}).catch((e: Error) => e);
      expect((error as Error).message).toMatch(
        /does not answer as the workbench's NDIF relay \(GET \/health answered 404\): is something else listening there\?/
      );
    } finally {
      other.close();
    }
  });

  it("refuses by name what stays local: weights, steering, tensor-valued edits", async () => {
    await expect(remote.weight("model.embed_tokens.weight")).rejects.toThrow(
      /weights \(model.embed_tokens.weight\) stay there/
    );
    await expect(remote.analyse("steeringView", {prompt, from: "a", to: "b", alpha: 1, layer: 0})).rejects.toThrow(
      /steeringView is not available on a remote model/
    );
    await expect(
      remote.trace(prompt, ["model.layers.0.output"], {
        edits: [{hook: "model.layers.0.output", op: "add", value: new Float32Array(64)}]
      })
    ).rejects.toThrow(/edits\[0\] at model.layers.0.output: a remote trace takes number values only/);
  });

  it("the CLI traces a hook point with --remote ndif --relay, progress on stderr", async () => {
    const io = () => {
      const out: string[] = [];
      const err: string[] = [];
      return {out, err, io: {out: (t: string) => void out.push(t), err: (t: string) => void err.push(t)}};
    };
    const saved = process.env.NDIF_API_KEY;
    process.env.NDIF_API_KEY = KEY;
    try {
      const json = io();
      const args = ["trace", ID, prompt, "--hook", "model.layers.2.output", "--remote", "ndif", "--relay", standin.url];
      expect(await main([...args, "--json"], json.io)).toBe(0);
      const result = JSON.parse(json.out.join(""));
      const here = await local.trace(prompt, ["model.layers.2.output"]);
      expect(result.input_ids).toEqual(here.input_ids);
      expect(result.hooks["model.layers.2.output"].shape).toEqual(here["model.layers.2.output"].shape);
      expect(result.hooks["model.layers.2.output"].data).toEqual(Array.from(here["model.layers.2.output"].data));

      standin.behaviour = {queue: [1]};
      const human = io();
      expect(await main(args, human.io)).toBe(0);
      const stderr = human.err.join("");
      expect(stderr).toMatch(
        /NDIF trace job: RECEIVED\nNDIF trace job: QUEUED \(position 1 in the queue\)\nNDIF trace job: DISPATCHED\nNDIF trace job: RUNNING\nNDIF trace job: COMPLETED/
      );
      expect(human.out.join("")).toContain(
        `model.layers.2.output  [${here["model.layers.2.output"].shape.join(", ")}]`
      );

      // lens, patch and generate give the local commands' JSON.
      standin.behaviour = {};
      const remoteFlags = ["--remote", "ndif", "--relay", standin.url, "--json"];
      const pair = defaultPair(local);
      const commands = [
        ["lens", "MODEL", prompt, "--top-k", "3"],
        [
          "patch",
          "MODEL",
          "--clean",
          pair.clean,
          "--corrupt",
          pair.corrupt,
          "--ids",
          pair.answers.join(","),
          "--module",
          "mlp"
        ],
        ["generate", "MODEL", prompt, "--max-new-tokens", "6"]
      ];
      for (const command of commands) {
        const [there, here] = [io(), io()];
        expect(await main([...command.map((a) => (a === "MODEL" ? ID : a)), ...remoteFlags], there.io)).toBe(0);
        const localArgs = command.map((a) => (a === "MODEL" ? fixtureDir("stories260K") : a));
        expect(await main([...localArgs, "--json"], here.io)).toBe(0);
        expect(JSON.parse(there.out.join(""))).toEqual(JSON.parse(here.out.join("")));
      }

      const refused = io();
      expect(await main([...args, "--runtime", "web"], refused.io)).toBe(1);
      expect(refused.err.join("")).toMatch(
        /--runtime chooses how a model runs here; with --remote ndif it runs on NDIF/
      );
    } finally {
      if (saved === undefined) delete process.env.NDIF_API_KEY;
      else process.env.NDIF_API_KEY = saved;
    }
  });

  it("the Big models page's snapshots become the same views the local analyses give", async () => {
    const ids = local.tokenize(prompt).ids;
    const lens = (await snapshotResult(local, "lens", {input_ids: ids, k: 5})) as SnapshotResult;
    const here = await lensView(local, prompt, 5);
    expect(snapshotLensView(lens)).toEqual({...here, prompt: here.pieces.join("")});
    expect(snapshotLensView({...lens, params: {...lens.params, prompt}})).toEqual(here);

    const pair = defaultPair(local);
    const [clean, corrupt] = [local.tokenize(pair.clean).ids, local.tokenize(pair.corrupt).ids];
    const params = {clean_ids: clean, corrupt_ids: corrupt, kind: "attn", answers: pair.answers, top: 5};
    const patching = (await snapshotResult(local, "patching", params)) as SnapshotResult;
    const view = await patchingView(local, pair.clean, pair.corrupt, {answers: pair.answers, kinds: ["attn"]});
    expect(snapshotPatchingView({...patching, params: {...params, clean: pair.clean, corrupt: pair.corrupt}})).toEqual(
      view
    );

    // A saved result that lost a piece or a tensor says which.
    const {top_logits: _, ...tensors} = patching.tensors;
    expect(() => snapshotPatchingView({...patching, tensors})).toThrow(
      /the NDIF snapshot's patching result: it has no tensor top_logits/
    );
    expect(() => snapshotLensView({...lens, pieces: {}})).toThrow(/pieces has no entry for token id/);
  });

  it("never puts the key in a URL", () => {
    expect(standin.requests.length).toBeGreaterThan(10);
    expect(standin.requests.every((r) => !r.url.includes(KEY))).toBe(true);
    expect(standin.requests.filter((r) => r.url.startsWith("/jobs")).some((r) => r.key === KEY)).toBe(true);
  });
});
