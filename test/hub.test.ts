import {copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from "node:fs";
import os from "node:os";
import path from "node:path";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {openCheckpoint} from "../src/hub/checkpoint.js";
import {folderSource, hubCacheFolder, resolveSource} from "../src/hub/node.js";
import {hubUrl, readJson, urlSource} from "../src/hub/source.js";
import type {Progress} from "../src/hub/source.js";
import {parseHeader} from "../src/hub/safetensors.js";
import {encodeSafetensors, startHubServer} from "./helpers/hub-server.js";
import type {HubServer} from "./helpers/hub-server.js";

const MINI_GPT2 = path.resolve("test/fixtures/mini-gpt2");
const SINGLE = path.join(MINI_GPT2, "model.safetensors");
const tempDirs: string[] = [];
const tempDir = (prefix: string) => {
  tempDirs.push(mkdtempSync(path.join(os.tmpdir(), `lmw-${prefix}-`)));
  return tempDirs.at(-1)!;
};
afterAll(() => tempDirs.forEach((dir) => rmSync(dir, {recursive: true, force: true})));

/** mini-gpt2 split into two shards plus an index; `extraShard` names a shard that does not exist. */
function makeSharded(extraShard?: string): string {
  const dir = tempDir("sharded");
  copyFileSync(path.join(MINI_GPT2, "config.json"), path.join(dir, "config.json"));
  const file = new Uint8Array(readFileSync(SINGLE));
  const tensors = [...parseHeader(file, "model.safetensors", file.length).tensors.values()];
  const half = Math.ceil(tensors.length / 2);
  const shards = [tensors.slice(0, half), tensors.slice(half)];
  const weightMap: Record<string, string> = {};
  shards.forEach((shard, i) => {
    const name = `model-0000${i + 1}-of-00002.safetensors`;
    const toWrite = shard.map((t) => ({...t, bytes: file.subarray(t.begin, t.end)}));
    writeFileSync(path.join(dir, name), encodeSafetensors(toWrite, {format: "pt"}));
    for (const t of shard) weightMap[t.name] = name;
  });
  if (extraShard) weightMap["extra.weight"] = extraShard;
  writeFileSync(path.join(dir, "model.safetensors.index.json"), JSON.stringify({metadata: {}, weight_map: weightMap}));
  return dir;
}

/** Same names, same values bit for bit (toEqual on millions of floats is slow). */
function expectSameWeights(actual: Map<string, Float32Array>, expected: Map<string, Float32Array>) {
  expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());
  const bytesOf = (values: Float32Array) => Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  for (const [name, values] of expected) expect(bytesOf(actual.get(name)!).equals(bytesOf(values)), name).toBe(true);
}

describe("resolveSource without a network", () => {
  it("opens a folder by relative or absolute path", async () => {
    for (const id of ["test/fixtures/mini-gpt2", MINI_GPT2]) {
      const source = await resolveSource(id);
      expect(source.location).toBe(MINI_GPT2);
      expect(await source.has("config.json")).toBe(true);
      expect(await source.has("nope.json")).toBe(false);
      expect((await readJson<{model_type: string}>(source, "config.json")).model_type).toBe("gpt2");
    }
  });

  it("finds model names in LMW_MODELS folders by id or by its last part", async () => {
    expect((await resolveSource("mini-gpt2")).location).toBe(MINI_GPT2);
    expect((await resolveSource("gpt2")).location).toBe(path.resolve("data/models/gpt2"));
    const smol = await resolveSource("HuggingFaceTB/SmolLM2-135M");
    expect(smol.location).toBe(path.resolve("data/models/HuggingFaceTB/SmolLM2-135M"));
    expect(smol.id).toBe("HuggingFaceTB/SmolLM2-135M");
  });

  it("has no checkpoint where there are no weights", async () => {
    expect(await openCheckpoint(await resolveSource("gpt2"))).toBeUndefined();
  });

  it("reads ranges of a local file without reading all of it", async () => {
    const source = folderSource("mini-gpt2", MINI_GPT2);
    const whole = readFileSync(SINGLE);
    expect(await source.size("model.safetensors")).toBe(whole.length);
    expect(Buffer.from(await source.readRange("model.safetensors", 100, 200))).toEqual(whole.subarray(100, 200));
    expect((await source.readRange("model.safetensors", whole.length - 4, whole.length + 100)).length).toBe(4);
    await expect(source.read("missing.bin")).rejects.toThrow(/mini-gpt2\/missing\.bin: not found in/);
  });

  it("loads a sharded folder exactly as the single file", async () => {
    const single = await openCheckpoint(folderSource("single", MINI_GPT2));
    const sharded = await openCheckpoint(folderSource("sharded", makeSharded()));
    expect(sharded!.files).toEqual(["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]);
    expect([...sharded!.tensors.keys()].sort()).toEqual([...single!.tensors.keys()].sort());
    expectSameWeights(await sharded!.loadAll(), await single!.loadAll());
    expect(await sharded!.load("h.1.mlp.c_fc.weight")).toEqual(await single!.load("h.1.mlp.c_fc.weight"));
  });

  it("names a missing shard", async () => {
    const source = folderSource("broken", makeSharded("model-00003-of-00002.safetensors"));
    await expect(openCheckpoint(source)).rejects.toThrow(/weight_map names shard model-00003-of-00002\.safetensors/);
  });
});

describe("over HTTP", () => {
  let hub: HubServer;
  let sharded: string;

  beforeAll(async () => {
    sharded = makeSharded();
    hub = await startHubServer({
      "test-org/mini-gpt2": MINI_GPT2,
      "test-org/mini-gpt2-sharded": sharded,
      gpt2: MINI_GPT2
    });
  });
  afterAll(() => hub.close());

  const fromHub = (id: string, cacheDir = tempDir("cache")) =>
    resolveSource(id, {endpoint: hub.endpoint, modelsPath: [], cacheDir});

  it("opens an http URL as a URL source", async () => {
    const url = `${hub.endpoint}/test-org/mini-gpt2/resolve/main`;
    const source = await resolveSource(url);
    expect(source.location).toBe(url);
    expect((await readJson<{n_layer: number}>(source, "config.json")).n_layer).toBe(2);
  });

  it("reads headers with one Range request and single tensors with another", async () => {
    const source = await fromHub("test-org/mini-gpt2");
    hub.requests.length = 0;
    const checkpoint = await openCheckpoint(source);
    const gets = hub.requests.filter((r) => r.method === "GET");
    expect(gets).toEqual([
      {method: "GET", url: "/test-org/mini-gpt2/resolve/main/model.safetensors", range: "bytes=0-1048575"}
    ]);

    const info = checkpoint!.tensors.get("ln_f.weight")!;
    const local = await openCheckpoint(folderSource("local", MINI_GPT2));
    expect(await checkpoint!.load("ln_f.weight")).toEqual(await local!.load("ln_f.weight"));
    expect(hub.requests.at(-1)!.range).toBe(`bytes=${info.begin}-${info.end - 1}`);
  });

  it("reports progress of whole-file reads, ending at the total", async () => {
    const source = await fromHub("test-org/mini-gpt2");
    const events: Progress[] = [];
    const bytes = await source.read("model.safetensors", {onProgress: (p) => events.push(p)});
    const size = readFileSync(SINGLE).length;
    expect(bytes.length).toBe(size);
    expect(events.length).toBeGreaterThan(2);
    expect(
      events.every((e, i) => e.file === "model.safetensors" && (i === 0 || e.loaded >= events[i - 1].loaded))
    ).toBe(true);
    expect(events.at(-1)).toEqual({file: "model.safetensors", loaded: size, total: size});
  });

  it("cancels a download with an AbortController and leaves no file behind", async () => {
    const cacheDir = tempDir("cancel");
    const source = await fromHub("test-org/mini-gpt2", cacheDir);
    const controller = new AbortController();
    const read = source.read("model.safetensors", {signal: controller.signal, onProgress: () => controller.abort()});
    await expect(read).rejects.toThrow(/abort/i);
    const repoDir = hubCacheFolder("test-org/mini-gpt2", {endpoint: hub.endpoint, cacheDir});
    expect(existsSync(repoDir) ? readdirSync(repoDir) : []).not.toContain("model.safetensors");
    expect(existsSync(repoDir) ? readdirSync(repoDir).filter((f) => f.endsWith(".tmp")) : []).toEqual([]);
  });

  it("caches whole files on disk, so that a second load makes no GET", async () => {
    const cacheDir = tempDir("cache");
    const first = await openCheckpoint(await fromHub("test-org/mini-gpt2", cacheDir));
    const events: Progress[] = [];
    const weights = await first!.loadAll({onProgress: (p) => events.push(p)});
    await readJson(await fromHub("test-org/mini-gpt2", cacheDir), "config.json");
    expect(events.at(-1)!.loaded).toBe(events.at(-1)!.total);
    expect(readdirSync(hubCacheFolder("test-org/mini-gpt2", {endpoint: hub.endpoint, cacheDir}))).toEqual(
      expect.arrayContaining(["model.safetensors", "config.json"])
    );

    // The cache folder is marked as partial, so even on the models path it is not taken for a complete model.
    hub.requests.length = 0;
    const second = await resolveSource("test-org/mini-gpt2", {
      endpoint: hub.endpoint,
      modelsPath: [cacheDir],
      cacheDir
    });
    expect(second.location).toBe(`${hub.endpoint}/test-org/mini-gpt2/resolve/main`);
    const again = await openCheckpoint(second);
    expectSameWeights(await again!.loadAll(), weights);
    expect((await readJson<{n_embd: number}>(second, "config.json")).n_embd).toBe(32);
    expect(hub.requests).toEqual([]);
  });

  it("loads a sharded checkpoint identically to the single file, with progress over all bytes", async () => {
    const single = await openCheckpoint(await fromHub("test-org/mini-gpt2"));
    const source = await fromHub("test-org/mini-gpt2-sharded");
    hub.requests.length = 0;
    const checkpoint = await openCheckpoint(source);
    const headerReads = hub.requests.filter((r) => r.method === "GET" && r.url.includes("-of-"));
    expect(headerReads.map((r) => r.range)).toEqual(["bytes=0-1048575", "bytes=0-1048575"]);
    expect(checkpoint!.files.length).toBe(2);

    const events: Progress[] = [];
    expectSameWeights(await checkpoint!.loadAll({onProgress: (p) => events.push(p)}), await single!.loadAll());
    const total = readdirSync(sharded)
      .filter((f) => f.includes("-of-"))
      .reduce((sum, f) => sum + readFileSync(path.join(sharded, f)).length, 0);
    expect(events.at(-1)).toMatchObject({loaded: total, total});
    expect(new Set(events.map((e) => e.file)).size).toBe(2);
  });

  it("still reads ranges when the server ignores Range", async () => {
    const plain = await startHubServer({"test-org/mini-gpt2": MINI_GPT2}, {ignoreRange: true});
    try {
      const source = urlSource(
        "test-org/mini-gpt2",
        hubUrl("test-org/mini-gpt2", "", {endpoint: plain.endpoint}).slice(0, -1),
        {cache: false}
      );
      const whole = readFileSync(SINGLE);
      expect(Buffer.from(await source.readRange("model.safetensors", 1000, 1010))).toEqual(whole.subarray(1000, 1010));
      const checkpoint = await openCheckpoint(source);
      const local = await openCheckpoint(folderSource("local", MINI_GPT2));
      expect(checkpoint!.tensors).toEqual(local!.tensors);
    } finally {
      await plain.close();
    }
  });

  it("gives readable errors for 404s", async () => {
    const bad = urlSource("gpt2-bad", `${hub.endpoint}/gpt2-bad/resolve/main`, {cache: false});
    await expect(bad.read("config.json")).rejects.toThrow(
      `gpt2-bad/config.json: HTTP 404 from ${hub.endpoint}/gpt2-bad/resolve/main/config.json`
    );
    const folder = tempDir("models");
    await expect(
      resolveSource("test-org/nope", {endpoint: hub.endpoint, modelsPath: [folder], cacheDir: tempDir("c")})
    ).rejects.toThrow(
      `model test-org/nope not found: looked in ${path.join(folder, "test-org/nope")}, ${path.join(folder, "nope")} and ${hub.endpoint}/test-org/nope/resolve/main`
    );
  });
});
