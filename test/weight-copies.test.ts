/**
 * One copy of the weights per loaded model (issue 21), counted rather than timed: onnxruntime gives every session
 * its own copy of the initializers it is handed, so a model that opened a session per edit structure, lens and
 * patching graph held that many copies. Here a model traces every hook point, runs the logit lens, a patching
 * sweep and a steered generation, through an onnxruntime whose sessions are counted and whose feeds are watched:
 * no session may be handed weights of its own, and every run must read the same buffers, one per weight.
 */
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import type {InferenceSession, Tensor as OrtTensor} from "onnxruntime-common";
import {createModel, releasedAsCopied, type CreateOptions, type Model} from "../src/runtime/model.js";
import {ortRuntime} from "../src/node.js";
import {resolveSource} from "../src/hub/node.js";
import {logitLens} from "../src/analysis/lens.js";
import {patchSweep} from "../src/analysis/patching.js";
import {steeringEdit, steeringVector} from "../src/analysis/steering.js";
import type {Ort} from "../src/runtime/ort.js";
import type {Edit} from "../src/runtime/edits.js";
import type {Tensor} from "../src/runtime/tensor.js";
import {LOGITS} from "../src/graph/names.js";
import {fixtureDir, readReference, relativeError, RELATIVE} from "./helpers/fixtures.js";

/** Every reference prompt's last-position logits, from `model`, match the fixture's float64 reference. */
async function expectReferenceLogits(model: Model, fixture: string): Promise<void> {
  const ref = readReference(fixture);
  for (const prompt of ref.json.prompts) {
    const logits = (await model.forward(prompt.input_ids, ["lm_head.output"])).get("lm_head.output")!;
    const last = logits.data.subarray(logits.data.length - model.config.vocabSize);
    expect(relativeError(last, ref.tensor(`p${prompt.index}.logits.last`).data), prompt.text).toBeLessThan(RELATIVE);
  }
}

interface Counts {
  /** Sessions created, and the structures' graphs they were made for. */
  sessions: number;
  /** Bytes of external data (initializers) handed to each session, in the order they were made: what each copies. */
  initializerBytes: number[];
  /** Per weight input (a parameter's name, or `name.fp16`), the distinct buffers fed to it over every run. */
  fed: Map<string, Set<ArrayBufferLike>>;
  runs: number;
}

/** `ort` with its sessions counted and every run's weight feeds recorded (`isWeight` says which feeds are weights). */
function counting(ort: Ort, isWeight: (input: string) => boolean): {ort: Ort; counts: Counts} {
  const counts: Counts = {sessions: 0, initializerBytes: [], fed: new Map(), runs: 0};
  const create = async (model: Uint8Array, options: InferenceSession.SessionOptions = {}) => {
    counts.sessions++;
    let bytes = 0;
    for (const file of options.externalData ?? [])
      if (typeof file === "object" && "data" in file) bytes += (file.data as Uint8Array).byteLength;
    counts.initializerBytes.push(bytes);
    const session = await ort.InferenceSession.create(model, options);
    const run = session.run.bind(session);
    session.run = ((feeds: Record<string, OrtTensor>, ...rest: unknown[]) => {
      counts.runs++;
      for (const [name, tensor] of Object.entries(feeds)) {
        if (!isWeight(name)) continue;
        const buffers = counts.fed.get(name) ?? new Set();
        buffers.add((tensor.data as Float32Array).buffer);
        counts.fed.set(name, buffers);
      }
      return (run as (...args: unknown[]) => ReturnType<InferenceSession["run"]>)(feeds, ...rest);
    }) as InferenceSession["run"];
    return session;
  };
  return {ort: {...ort, InferenceSession: {...ort.InferenceSession, create}} as unknown as Ort, counts};
}

/** A model of fixture `name` through a counting onnxruntime, after a trace, the lens, a patching sweep and a steered generation. */
async function usedModel(runtime: "node" | "web", name: string, options: Partial<CreateOptions> = {}) {
  const base = await ortRuntime(runtime);
  const source = await resolveSource(fixtureDir(name));
  let names = new Set<string>();
  const watched = counting(base.ort, (input) => names.has(input.replace(/\.fp16$/, "")));
  const model = await createModel(source, {...base, ort: watched.ort, ...options});
  names = new Set(model.parameters().map((p) => p.name));
  const ids = model.tokenize("Once upon a time, there was a little").ids;
  await model.forward(ids, model.hookPoints());
  await logitLens(model, ids, {k: 5});
  const corrupt = [...ids.slice(0, -2), ...ids.slice(-1), ids[ids.length - 2]];
  await patchSweep(model, ids, corrupt, "resid");
  const hook = model.arch.roles.resid(Math.floor(model.config.numLayers / 2));
  const vector = await steeringVector(model, hook, " boy", " girl");
  await model.generate("Once upon a time", {maxNewTokens: 4, stopAtEos: false, edits: [steeringEdit(hook, vector, 4)]});
  return {model, counts: watched.counts, parameterNames: names};
}

// The default layout; WASM's one graph (`oneGraph: true`) is below.
describe.each(["node", "web"] as const)("weight copies on onnxruntime-%s, weights shared as inputs", (runtime) => {
  // mini-llama's checkpoint is bf16, here kept at 2 bytes (`keepPrecision`); mini-gpt2's is fp32.
  describe.each(["mini-llama", "mini-gpt2"])("%s", (name) => {
    const keepPrecision = name === "mini-llama";
    let model: Model;
    let counts: Counts;
    let parameterNames: Set<string>;
    beforeAll(async () => {
      ({model, counts, parameterNames} = await usedModel(runtime, name, {keepPrecision}));
    }, 120_000);
    afterAll(() => model?.dispose());

    it("no session but the main one is handed weights of its own: the lens, patching and steering graphs read the model's", () => {
      // The trace graph, the lens's, the packed patching sweep's and the steering edit's at least.
      expect(counts.sessions).toBeGreaterThanOrEqual(4);
      const [main, ...others] = counts.initializerBytes;
      expect(others.every((bytes) => bytes === 0)).toBe(true);
      // On WASM the main graph (trace, generation) holds the shared weights as initializers, copied into the heap
      // once rather than on every run; on onnxruntime-node it reads them as inputs too.
      expect(main).toBe(runtime === "web" ? model.weightBytes : 0);
    });

    it("every weight is one buffer, fed to every run of every session", () => {
      expect(counts.runs).toBeGreaterThan(counts.sessions);
      // Tied embeddings make lm_head.weight the embedding's input: every other parameter is fed under its own name.
      const fed = [...counts.fed.keys()].map((input) => input.replace(/\.fp16$/, ""));
      const expected = [...parameterNames].filter((p) => !(p === "lm_head.weight" && model.config.tieWordEmbeddings));
      expect(new Set(fed)).toEqual(new Set(expected.filter((p) => fed.includes(p))));
      expect(fed.length).toBeGreaterThan(0.9 * expected.length); // biases folded into others (gpt2's) are the rest
      for (const [input, buffers] of counts.fed) expect(buffers.size, input).toBe(1);
    });

    it("the weights held are one copy: at most the parameters' float32 bytes, half of them for a bf16 checkpoint", () => {
      const float32Bytes = model.parameters().reduce((sum, p) => sum + 4 * p.numel, 0);
      // Computed tables (rotary cos/sin) are inputs too: a few percent beyond the parameters at most.
      expect(model.weightBytes).toBeGreaterThan(0);
      expect(model.weightBytes).toBeLessThan(keepPrecision ? 0.6 * float32Bytes : 1.05 * float32Bytes);
    });

    it.runIf(keepPrecision)("kept at 2 bytes, the logits keep their parity with the float64 reference", async () => {
      await expectReferenceLogits(model, name);
    });
  });
});

/**
 * With `oneGraph` a WASM model runs every structure on one graph (runtime/model.ts): onnxruntime-web copies a fed
 * input into its heap on every run, and a session's initializers into it once, so one session is one copy.
 */
describe.each(["mini-llama", "mini-gpt2"])("one graph on onnxruntime-web: %s", (name) => {
  let model: Model;
  let counts: Counts;
  beforeAll(async () => {
    ({model, counts} = await usedModel("web", name, {oneGraph: true}));
  }, 120_000);
  afterAll(() => model?.dispose());

  it("one session, handed the weights once, fed none: the trace, lens, patching sweep and steering all ran on it", () => {
    expect(model.oneGraph).toBe(true);
    expect(counts.sessions).toBe(1);
    const float32Bytes = model.parameters().reduce((sum, p) => sum + 4 * p.numel, 0);
    // Tied embeddings are one parameter; computed tables (rotary cos/sin) add a few percent at most.
    expect(counts.initializerBytes[0]).toBeGreaterThan(0.9 * float32Bytes);
    expect(counts.initializerBytes[0]).toBeLessThan(1.05 * float32Bytes);
    expect(counts.fed.size).toBe(0);
    expect(model.weightBytes).toBe(0);
    expect(counts.runs).toBeGreaterThan(10);
  });

  it("two edits at one hook point, which a slot cannot hold, open a session of their own and match onnxruntime-node", async () => {
    const hook = model.arch.roles.resid(0);
    const edits: Edit[] = [
      {hook, op: "add", value: 1, positions: [0]},
      {hook, op: "scale", value: 2, positions: [0, 1]}
    ];
    const ids = model.tokenize("Once upon a time").ids;
    const before = counts.sessions;
    const web = ((await model.trace(ids, [LOGITS], {edits})) as Record<string, Tensor>)[LOGITS];
    expect(counts.sessions).toBe(before + 1);
    const node = await createModel(await resolveSource(fixtureDir(name)), await ortRuntime("node"));
    try {
      const reference = ((await node.trace(ids, [LOGITS], {edits})) as Record<string, Tensor>)[LOGITS];
      expect(relativeError(web.data, reference.data)).toBeLessThan(RELATIVE);
      // …and the edits did something.
      const plain = ((await node.trace(ids, [LOGITS])) as Record<string, Tensor>)[LOGITS];
      expect(relativeError(plain.data, reference.data)).toBeGreaterThan(1e-3);
    } finally {
      await node.dispose();
    }
  });
});

/**
 * `releaseWeights` (the pages set it): each weight's JavaScript memory is freed as soon as onnxruntime-web has
 * copied it (runtime/model.ts `releasedAsCopied`), not when the session is made, so that loading never holds two
 * whole copies of the weights. Counted in bytes at each of onnxruntime's reads.
 */
describe("weights freed as onnxruntime-web copies them (releaseWeights, one graph)", () => {
  it("a buffer that holds several weights (an fp32 checkpoint's file, viewed) is freed after the read that follows its last weight's", () => {
    const file = new ArrayBuffer(16);
    const own = new ArrayBuffer(8);
    const [a, b, c] = releasedAsCopied([
      {path: "a", data: new Uint8Array(file, 0, 8)},
      {path: "b", data: new Uint8Array(file, 8, 8)},
      {path: "c", data: new Uint8Array(own)}
    ]);
    const detached = () => [file, own].map((buffer) => buffer.byteLength === 0);
    expect(a.data.subarray(0, 8).byteLength).toBe(8);
    expect(c.data.subarray(0, 8).byteLength).toBe(8);
    expect(detached()).toEqual([false, false]);
    // A second read of a weight is not another weight read; c's bytes were copied before it was asked.
    expect(Array.from(a.data.subarray(0, 2))).toEqual([0, 0]);
    expect(detached()).toEqual([false, true]);
    b.data.subarray(0, 8);
    expect(detached()).toEqual([false, true]);
  });

  it("a weight the graph was given as a function is made when it is read, and freed at the next read", () => {
    let made = 0;
    const weight = (value: number) => ({
      byteLength: 8,
      make: () => (made++, new Uint8Array(Float32Array.of(value, value).buffer))
    });
    const [a, b] = releasedAsCopied([
      {path: "a", data: new Uint8Array(0), lazy: weight(1)},
      {path: "b", data: new Uint8Array(0), lazy: weight(2)}
    ]);
    // Mounted at its length, with nothing made yet.
    expect([a.data.byteLength, b.data.byteLength, made]).toEqual([8, 8, 0]);
    const first = a.data.subarray(0, 8);
    expect(Array.from(new Float32Array(first.buffer))).toEqual([1, 1]);
    expect(made).toBe(1);
    const second = b.data.subarray(4, 8);
    expect(Array.from(new Float32Array(second.slice().buffer))).toEqual([2]);
    expect([made, first.buffer.byteLength]).toEqual([2, 0]);
    // One that cannot be made: its error is handed over (onnxruntime's own says only "memory copy").
    const errors: unknown[] = [];
    const [bad] = releasedAsCopied(
      [
        {
          path: "bad",
          data: new Uint8Array(0),
          lazy: {
            byteLength: 8,
            make: () => {
              throw new Error("weight bad: 3 values for shape [2]");
            }
          }
        }
      ],
      (error) => errors.push(error)
    );
    expect(() => bad.data.subarray(0, 8)).toThrow("3 values");
    expect(errors.map((e) => (e as Error).message)).toEqual(["weight bad: 3 values for shape [2]"]);
  });

  it("mini-llama, a bf16 checkpoint: each weight made only when onnxruntime-web reads it, everything read before it freed by then; the logits keep their parity", async () => {
    const base = await ortRuntime("web");
    // What each read answered, and at each read whether every earlier answer's memory had been given back.
    const answered: Uint8Array[] = [];
    const earlierFreed: boolean[] = [];
    // The bytes of each read whose answer was made then, not the mounted array's own.
    let madeOnRead = 0;
    let files: {data: Uint8Array}[] = [];
    const create = (graph: Uint8Array, options: InferenceSession.SessionOptions = {}) => {
      files = options.externalData as unknown as {data: Uint8Array}[];
      for (const {data} of files) {
        const read = data.subarray.bind(data);
        // onnxruntime-web takes each weight's bytes with `subarray`.
        Object.defineProperty(data, "subarray", {
          value: (begin?: number, end?: number) => {
            const bytes = read(begin, end);
            earlierFreed.push(answered.every((earlier) => earlier.buffer.byteLength === 0));
            answered.push(bytes);
            if (bytes.buffer !== data.buffer) madeOnRead += bytes.byteLength;
            return bytes;
          }
        });
      }
      return base.ort.InferenceSession.create(graph, options);
    };
    const ort = {...base.ort, InferenceSession: {...base.ort.InferenceSession, create}} as unknown as Ort;
    const source = await resolveSource(fixtureDir("mini-llama"));
    const model = await createModel(source, {...base, ort, oneGraph: true, releaseWeights: true});
    try {
      // Each weight read once, and everything read before it freed by then: JavaScript holds at most the weight
      // being copied.
      expect(answered.length).toBe(files.length);
      // Every parameter's float32 bytes were made on read; the files read as they were are the graph's own
      // tables (rotary angles).
      expect(madeOnRead).toBe(4 * model.counts().total);
      expect(earlierFreed.every(Boolean)).toBe(true);
      await expectReferenceLogits(model, "mini-llama");
    } finally {
      await model.dispose();
    }
  }, 120_000);

  it("onnxruntime-node reads the buffers itself, so it ignores releaseWeights (honoured, the weights read as zeros): the logits keep their parity", async () => {
    const source = await resolveSource(fixtureDir("mini-llama"));
    const model = await createModel(source, {...(await ortRuntime("node")), oneGraph: true, releaseWeights: true});
    try {
      await expectReferenceLogits(model, "mini-llama");
    } finally {
      await model.dispose();
    }
  });
});
