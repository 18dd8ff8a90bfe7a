/**
 * `npm run build`'s first step (docs/data/fetch-site-models.ts) against the stand-in Hub: a model the Hub has
 * is fetched whole into the cache and marked complete, and the site's model list then finds it with its
 * trained weights; a model that cannot be fetched is one line saying what the build does instead, and never
 * an error. Large trained weights stay out of dist/ unless LMW_SHIP_WEIGHTS=1.
 */
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmdirSync,
  rmSync,
  truncateSync,
  writeFileSync
} from "node:fs";
import os from "node:os";
import path from "node:path";
import {execFile} from "node:child_process";
import {promisify} from "node:util";
import {afterAll, afterEach, beforeAll, describe, expect, it, vi} from "vitest";
import {fetchSiteModels} from "../docs/data/fetch-site-models.js";
import {CACHE_MARKER, hubCacheFolder} from "../src/hub/node.js";
import {startHubServer, type HubServer} from "./helpers/hub-server.js";

const STORIES = path.resolve("test/fixtures/stories260K");
const run = promisify(execFile);
let hub: HubServer;
const dirs: string[] = [];
const tempDir = () => (dirs.push(mkdtempSync(path.join(os.tmpdir(), "lmw-site-fetch-"))), dirs.at(-1)!);
beforeAll(async () => {
  hub = await startHubServer({"test-org/stories": STORIES});
});
afterAll(async () => {
  await hub.close();
  dirs.forEach((d) => rmSync(d, {recursive: true, force: true}));
  // The siteModels test fetched into data/models/.hub/<this endpoint>/: gone with the server.
  rmSync(path.join("data/models/.hub", new URL(hub.endpoint).host.replace(":", "_")), {recursive: true, force: true});
  try {
    rmdirSync("data/models/.hub"); // only if nothing else is in it
  } catch {
    // another download is there: leave it
  }
});

const saved = {...process.env};
afterEach(() => {
  for (const key of ["LMW_SITE_MODELS", "LMW_HUB_ENDPOINT", "LMW_SHIP_WEIGHTS", "LMW_MODELS"]) {
    if (saved[key] === undefined) delete process.env[key];
    else process.env[key] = saved[key];
  }
});

describe("fetching the site's models", () => {
  it("fetches what the Hub has, keeps what is here, and says in one line what it does without the rest", async () => {
    const cacheDir = tempDir();
    const lines: string[] = [];
    const outcomes = await fetchSiteModels(["test-org/stories", "stories260K", "gpt2", "test-org/missing", "a/../b"], {
      endpoint: hub.endpoint,
      cacheDir,
      modelsPath: ["data/models"],
      log: (line) => lines.push(line)
    });
    expect(outcomes).toEqual({
      "test-org/stories": "fetched",
      stories260K: "had",
      gpt2: "random",
      "test-org/missing": "left out",
      "a/../b": "left out"
    });

    const folder = hubCacheFolder("test-org/stories", {endpoint: hub.endpoint, cacheDir});
    for (const file of ["config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"])
      expect(readFileSync(path.join(folder, file)).equals(readFileSync(path.join(STORIES, file))), file).toBe(true);
    expect(JSON.parse(readFileSync(path.join(folder, CACHE_MARKER), "utf8"))).toMatchObject({
      id: "test-org/stories",
      complete: true
    });

    const progress = / (MB|bytes)$/; // a file's progress: "model.safetensors 1.0 MB of 1.0 MB"
    const summary = lines.filter((l) => !progress.test(l));
    expect(summary).toEqual([
      `site-models: test-org/stories: fetched from ${hub.endpoint} into ${folder}`,
      `site-models: gpt2: not fetched (not found on ${hub.endpoint}); the site is built with random weights on the config and tokenizer in data/models/gpt2`,
      `site-models: test-org/missing: not fetched (not found on ${hub.endpoint}); the site is built without it`,
      "site-models: a/../b: not a Hub id and not in a local model folder; the site is built without it"
    ]);
    // Progress on the way, ending with each file's total.
    expect(lines).toContain("site-models: test-org/stories: model.safetensors 1.0 MB of 1.0 MB");
  });

  it("offline: one line per model, no error, nothing written", async () => {
    const cacheDir = tempDir();
    const lines: string[] = [];
    const outcomes = await fetchSiteModels(["HuggingFaceTB/SmolLM2-135M", "test-org/stories"], {
      endpoint: "http://127.0.0.1:9",
      cacheDir,
      modelsPath: ["data/models"],
      log: (line) => lines.push(line)
    });
    expect(outcomes).toEqual({"HuggingFaceTB/SmolLM2-135M": "random", "test-org/stories": "left out"});
    expect(lines).toEqual([
      "site-models: HuggingFaceTB/SmolLM2-135M: not fetched (http://127.0.0.1:9 could not be reached: offline?); the site is built with random weights on the config and tokenizer in data/models/HuggingFaceTB/SmolLM2-135M",
      "site-models: test-org/stories: not fetched (http://127.0.0.1:9 could not be reached: offline?); the site is built without it"
    ]);
    expect(existsSync(path.join(cacheDir, ".hub"))).toBe(false);
  });

  it("npm run build's first step, run as npm runs it with LMW_HUB_ENDPOINT; the site's model list then finds the download", async () => {
    const env = {
      ...process.env,
      LMW_SITE_MODELS: "test-org/stories,stories260K",
      LMW_HUB_ENDPOINT: hub.endpoint,
      LMW_MODELS: ""
    };
    const {stderr} = await run(path.resolve("node_modules/.bin/tsx"), ["docs/data/fetch-site-models.ts"], {env});
    const folder = hubCacheFolder("test-org/stories", {endpoint: hub.endpoint});
    expect(stderr.split("\n").filter((l) => l.startsWith("site-models:") && !/ (MB|bytes)$/.test(l))).toEqual([
      `site-models: test-org/stories: fetched from ${hub.endpoint} into ${folder}`
    ]);
    Object.assign(process.env, {LMW_SITE_MODELS: "test-org/stories", LMW_HUB_ENDPOINT: hub.endpoint});
    vi.resetModules();
    const {siteModels} = await import("../docs/data/site-models.js");
    expect(siteModels()).toEqual([
      {
        id: "test-org/stories",
        name: "stories",
        folder,
        files: ["config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"],
        weights: true
      }
    ]);
  }, 60_000);

  it("trained weights over 50 MB are not shipped in dist/ unless LMW_SHIP_WEIGHTS=1", async () => {
    const models = tempDir();
    const folder = path.join(models, "big");
    mkdirSync(folder);
    for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json"])
      copyFileSync(path.join(STORIES, f), path.join(folder, f));
    writeFileSync(path.join(folder, "model.safetensors"), "");
    truncateSync(path.join(folder, "model.safetensors"), 60e6); // sparse: only its size is looked at
    Object.assign(process.env, {LMW_SITE_MODELS: "big", LMW_MODELS: models});
    vi.resetModules();
    const first = await import("../docs/data/site-models.js");
    expect(first.siteModels()[0]).toMatchObject({
      weights: true,
      files: ["config.json", "tokenizer.json", "tokenizer_config.json"]
    });
    process.env.LMW_SHIP_WEIGHTS = "1";
    vi.resetModules();
    const second = await import("../docs/data/site-models.js");
    expect(second.siteModels()[0].files).toContain("model.safetensors");
  });
});
