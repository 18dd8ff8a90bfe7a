/**
 * The snapshot hand-off across the two languages: the build-time loader docs/data/ndif-snapshot.json.py (Python,
 * the relay's own job code) writes what src/remote/snapshot.ts turns into the views the "Big models (NDIF)" page
 * draws. Here the loader runs as Observable Framework runs it (`python3 FILE`, its stdout the data), against the
 * contract test's stand-ins (relay/tests/serve_standin.py: NDIF, the Hub serving stories260K's tokenizer, and
 * `JsonRunner` for nnsight, chosen by the loader's test-only LMW_SNAPSHOT_TEST); its output goes through
 * snapshot.ts, and every cell of the lens and patching views, pieces included, is checked against the numbers the
 * stand-in saved (serve_standin.py's formula) and the pieces the workbench's own tokenizer shows. Without a key
 * the loader's "no snapshot" answer is checked as the page reads it. Skipped, with the reason printed, where
 * python3 or its `tokenizers` package (the library under transformers' fast tokenizers) is missing.
 */
import {execFile, spawnSync} from "node:child_process";
import {readFileSync} from "node:fs";
import {promisify} from "node:util";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {snapshotLensView, snapshotPatchingView, type NdifSnapshot} from "../src/remote/snapshot.js";
import {Tokenizer} from "../src/tokenizer.js";
import {fixtureDir} from "./helpers/fixtures.js";
import {startStandinServer, type StandinServer} from "./helpers/standin-server.js";
import {standinValues} from "./helpers/standin-values.js";

const LOADER = "docs/data/ndif-snapshot.json.py";
const probe = spawnSync("python3", ["-c", "import tokenizers"], {encoding: "utf8"});
const missing = probe.error
  ? `python3 is not available (${probe.error.message})`
  : probe.status !== 0
    ? // --no-deps: with huggingface_hub installed, the relay's HubFiles fetch through it and miss the stand-in Hub.
      `python3 has no tokenizers package (pip install --no-deps tokenizers): ${probe.stderr.trim().split("\n").pop()}`
    : "";
if (missing) console.log(`skipping the NDIF snapshot loader test: ${missing}`);

/** The loader's prompts for stories260K's tiny vocabulary: equally long clean and corrupt runs, one-token answers. */
const PROMPTS = {
  lens: "One day, Lily met a cat",
  clean: "Once upon a time, there was a girl",
  corrupt: "Once upon a time, there was a boy",
  answers: ["Lily", "The"]
};
/** The loader's k and top (docs/data/ndif-snapshot.json.py: LENS_K, PATCH_TOP). */
const [K, TOP] = [5, 5];

/** What serve_standin.py prints once it listens. */
interface Ready {
  ndif: string;
  key: string;
  model: string;
  vocab: number;
  seeds: Record<string, number>;
}

/** The loader with this environment (the caller's NDIF, Hub and test variables never leak in); its stdout, parsed. */
async function runLoader(env: Record<string, string>): Promise<NdifSnapshot> {
  const blank = {NDIF_API_KEY: "", HF_TOKEN: "", HF_ENDPOINT: "", LMW_NDIF_HOST: "", LMW_SNAPSHOT_TEST: ""};
  const {stdout} = await promisify(execFile)("python3", [LOADER], {
    env: {...process.env, ...blank, ...env},
    timeout: 30_000
  });
  return JSON.parse(stdout);
}

describe.skipIf(Boolean(missing))("the NDIF snapshot loader's output, as the Big models page reads it", () => {
  let server: StandinServer<Ready>;
  let ready: Ready;
  let snapshot: NdifSnapshot;
  const tokenizer = Tokenizer.fromJson(
    JSON.parse(readFileSync(`${fixtureDir("stories260K")}/tokenizer.json`, "utf8")),
    JSON.parse(readFileSync(`${fixtureDir("stories260K")}/tokenizer_config.json`, "utf8"))
  );
  const ids = (text: string) => tokenizer.encode(text).ids;
  /** The piece the other pages show for a token id (the workbench's tokenizer). */
  const piece = (id: number) => tokenizer.idToPiece(id);

  // The stand-in's saved values (serve_standin.py's formula) and the cells they make: set once it is ready.
  let values: ReturnType<typeof standinValues>;

  beforeAll(async () => {
    server = await startStandinServer<Ready>();
    ready = server.ready;
    values = standinValues(ready, piece);
    snapshot = await runLoader({
      NDIF_API_KEY: ready.key,
      LMW_NDIF_HOST: ready.ndif,
      HF_ENDPOINT: `${ready.ndif}/hub`,
      LMW_SNAPSHOT_TEST: JSON.stringify(PROMPTS)
    });
  });

  afterAll(() => server?.stop());

  it("is a snapshot of the model, made with the runner it names, in the relay's protocol", () => {
    expect(snapshot.reason, "the loader answered no snapshot").toBeUndefined();
    expect(snapshot).toMatchObject({model: ready.model, nnsight: "test", protocol: 1});
    expect(Object.keys(snapshot.results!).sort()).toEqual(["lens", "patching"]);
    expect(Date.parse(snapshot.made!)).not.toBeNaN();
  });

  it("the lens view: the prompt's pieces, and every cell's top k as the stand-in saved them", () => {
    const view = snapshotLensView(snapshot.results!.lens!);
    const inputIds = ids(PROMPTS.lens);
    const T = inputIds.length;
    // Python's tokenizer and the workbench's agree on the ids: the snapshot saved the prompt as the pages encode it.
    expect(snapshot.results!.lens!.header.input_ids).toEqual(inputIds);
    expect(view.pieces).toEqual(inputIds.map(piece));
    expect(view.prompt).toBe(PROMPTS.lens); // as a live run shows the text typed
    expect(view.hooks).toEqual(["model.layers.0.output", "model.layers.1.output"]);
    const cells = values.lensCells(2, T, K);
    expect(view.cells).toEqual(cells);
  });

  it("the patching view: both runs' metrics and every (layer, position) cell as the stand-in saved them", () => {
    const result = snapshot.results!.patching!;
    const view = snapshotPatchingView(result);
    const [cleanIds, corruptIds] = [ids(PROMPTS.clean), ids(PROMPTS.corrupt)];
    const T = corruptIds.length;
    expect(cleanIds.length).toBe(T);
    const [a, b] = PROMPTS.answers.map((word) => tokenizer.encode(word, {addSpecialTokens: false}).ids[0]);
    expect(result.header).toMatchObject({kind: "resid", clean_ids: cleanIds, corrupt_ids: corruptIds, ids: [a, b]});
    const cleanMetric = values.f32(values.seed("clean"), a) - values.f32(values.seed("clean"), b);
    const corruptMetric = values.f32(values.seed("corrupt"), a) - values.f32(values.seed("corrupt"), b);
    const cells = values.sweepCells(2, T, TOP, corruptMetric);
    expect(view).toEqual({
      clean: PROMPTS.clean,
      corrupt: PROMPTS.corrupt,
      pieces: corruptIds.map(piece),
      answer: {id: a, token: piece(a)},
      other: {id: b, token: piece(b)},
      cleanMetric: values.round(cleanMetric),
      corruptMetric: values.round(corruptMetric),
      kinds: [{kind: "resid", hooks: ["model.layers.0.output", "model.layers.1.output"], cells}]
    });
    expect(cleanMetric).not.toBe(corruptMetric); // the two baselines are told apart
  });

  it("every piece the snapshot holds is the one the pages show for that id", () => {
    for (const experiment of ["lens", "patching"] as const) {
      const pieces = snapshot.results![experiment]!.pieces;
      expect(Object.keys(pieces).length).toBeGreaterThan(0);
      for (const [id, text] of Object.entries(pieces)) expect([id, text]).toEqual([id, piece(Number(id))]);
    }
  });

  it("without a key: no snapshot and why, which the page shows and snapshot.ts is never given", async () => {
    const none = await runLoader({});
    expect(none).toEqual({
      model: ready.model,
      snapshot: null,
      reason: "NDIF_API_KEY not set: set it (and HF_TOKEN) and build again to run on NDIF"
    });
    // The page (docs/big-models.md) draws the saved views only when `results` is there, else shows the reason.
    expect(none.results).toBeUndefined();
  });
});
