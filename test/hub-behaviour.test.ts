/**
 * The loader against a stand-in that behaves as the real Hub does (test/helpers/hub-server.ts): large files
 * redirected to a CDN on another port, gated repositories, 404s, 429 with Retry-After, dropped connections and
 * wrong bodies. Every failure is a HubError with a code and a message naming the model, the file and what to
 * do, and nothing half-written or wrong is ever left in the cache.
 */
import {cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from "node:fs";
import {createHash} from "node:crypto";
import os from "node:os";
import path from "node:path";
import {afterAll, beforeAll, beforeEach, describe, expect, it} from "vitest";
import {HubError} from "../src/hub/errors.js";
import {checkHubId} from "../src/hub/ids.js";
import {hubCacheFolder, resolveSource} from "../src/hub/node.js";
import {hubUrl, readJson} from "../src/hub/source.js";
import {startHubServer, TEST_TOKEN, type HubServer} from "./helpers/hub-server.js";

const STORIES = path.resolve("test/fixtures/stories260K");
const WEIGHTS = readFileSync(path.join(STORIES, "model.safetensors"));
const TOKENIZER = JSON.parse(readFileSync(path.join(STORIES, "tokenizer.json"), "utf8"));
const tempDirs: string[] = [];
const tempDir = (prefix: string) => {
  tempDirs.push(mkdtempSync(path.join(os.tmpdir(), `lmw-${prefix}-`)));
  return tempDirs.at(-1)!;
};
afterAll(() => tempDirs.forEach((dir) => rmSync(dir, {recursive: true, force: true})));

/** The files in a cache folder, temporary ones included (none may be left). */
const cached = (dir: string) => (existsSync(dir) ? readdirSync(dir).filter((f) => !f.startsWith(".lmw")) : []);

/** A copy of stories260K whose config says something else, served as revision v2. */
function revisionTwo(): string {
  const dir = tempDir("v2");
  cpSync(STORIES, dir, {recursive: true});
  const config = JSON.parse(readFileSync(path.join(dir, "config.json"), "utf8"));
  writeFileSync(path.join(dir, "config.json"), JSON.stringify({...config, rms_norm_eps: 2e-5}));
  return dir;
}

/** The error a promise rejects with, checked to be a HubError. */
async function hubError(promise: Promise<unknown>): Promise<HubError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e
  );
  expect(error).toBeInstanceOf(HubError);
  return error as HubError;
}

let hub: HubServer;
let cacheDir: string;
let notices: string[];
beforeAll(async () => {
  hub = await startHubServer({
    "test-org/stories": STORIES,
    "test-org/stories@v2": revisionTwo(),
    "meta-llama/stories": STORIES
  });
});
afterAll(() => hub.close());
beforeEach(() => {
  cacheDir = tempDir("cache");
  notices = [];
  hub.requests.length = 0;
  hub.cdnRequests.length = 0;
  hub.clearFaults();
});

const open = (id: string, extra: {token?: string; revision?: string} = {}) =>
  resolveSource(id, {endpoint: hub.endpoint, modelsPath: [], cacheDir, onNotice: (m) => notices.push(m), ...extra});
const folderOf = (id: string, revision = "main") => hubCacheFolder(id, {endpoint: hub.endpoint, revision, cacheDir});

describe("large files: a redirect to the CDN", () => {
  it("follows the 302, checks the Hub's size and sha256, and caches the file", async () => {
    const source = await open("test-org/stories");
    const bytes = await source.read("model.safetensors");
    expect(Buffer.from(bytes).equals(WEIGHTS)).toBe(true);
    const resolve = hub.requests.filter((r) => r.url.endsWith("/model.safetensors"));
    expect(resolve.map((r) => r.method)).toEqual(["GET"]);
    expect(hub.cdnRequests.map((r) => r.url)).toEqual([expect.stringMatching(/^\/repos\/[0-9a-f]{2}\/[0-9a-f]{64}\?/)]);
    expect(cached(folderOf("test-org/stories"))).toEqual(["model.safetensors"]);
  });

  it("reads a range at the CDN, and learns the size from X-Linked-Size", async () => {
    const source = await open("test-org/stories");
    expect(await source.size("model.safetensors")).toBe(WEIGHTS.length);
    expect(
      Buffer.from(await source.readRange("model.safetensors", 1000, 1016)).equals(WEIGHTS.subarray(1000, 1016))
    ).toBe(true);
    expect(hub.cdnRequests.at(-1)!.range).toBe("bytes=1000-1015");
  });

  it("refuses a body whose sha256 is not the Hub's, and caches nothing", async () => {
    const source = await open("test-org/stories");
    hub.inject({kind: "flip", file: "model.safetensors", on: "cdn"});
    const error = await hubError(source.read("model.safetensors"));
    expect(error.code).toBe("corrupt");
    const sha = createHash("sha256").update(WEIGHTS).digest("hex");
    expect(error.message).toContain(`test-org/stories/model.safetensors: the download's sha256 is`);
    expect(error.message).toContain(`the Hub's is ${sha}`);
    expect(cached(folderOf("test-org/stories"))).not.toContain("model.safetensors");
    // Asked again, with the fault gone, the file arrives and is kept.
    expect((await source.read("model.safetensors")).length).toBe(WEIGHTS.length);
  });
});

describe("gated, missing and rate-limited", () => {
  it("a gated model without a token: 401, saying to set HF_TOKEN", async () => {
    const error = await hubError(open("meta-llama/stories", {token: ""}));
    expect(error.code).toBe("gated");
    expect(error.message).toMatch(
      /^meta-llama\/stories\/config\.json: HTTP 401 from .*: meta-llama\/stories is gated or private: set HF_TOKEN/
    );
  });

  it("a refused token says so", async () => {
    const error = await hubError(open("meta-llama/stories", {token: "hf_wrong"}));
    expect(error.message).toContain("the token was refused");
  });

  it("HF_TOKEN opens it; the token goes to the Hub only, never to the CDN", async () => {
    const saved = process.env.HF_TOKEN;
    process.env.HF_TOKEN = TEST_TOKEN;
    try {
      const source = await open("meta-llama/stories");
      expect((await source.read("model.safetensors")).length).toBe(WEIGHTS.length);
    } finally {
      if (saved === undefined) delete process.env.HF_TOKEN;
      else process.env.HF_TOKEN = saved;
    }
    // The Hub: whether the model is there, then the weights' redirect; the CDN: the weights, by their sha256.
    expect(hub.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      "HEAD /meta-llama/stories/resolve/main/config.json",
      "GET /meta-llama/stories/resolve/main/model.safetensors"
    ]);
    expect(hub.requests.every((r) => r.authorization === `Bearer ${TEST_TOKEN}`)).toBe(true);
    const sha256 = createHash("sha256").update(WEIGHTS).digest("hex");
    expect(hub.cdnRequests.map((r) => `${r.method} ${r.url}`)).toEqual([
      expect.stringMatching(new RegExp(`^GET /repos/${sha256.slice(0, 2)}/${sha256}\\?file=model\\.safetensors&`))
    ]);
    expect(hub.cdnRequests.every((r) => r.authorization === undefined && !r.url.includes(TEST_TOKEN))).toBe(true);
  });

  it("a missing repository or file: not found", async () => {
    const missing = await hubError(open("test-org/nope"));
    expect(missing.code).toBe("not-found");
    expect(missing.message).toContain(`model test-org/nope not found`);
    const file = await hubError((await open("test-org/stories")).read("nope.json"));
    expect(file.code).toBe("not-found");
    expect(file.message).toMatch(/test-org\/stories\/nope\.json: HTTP 404 .*test-org\/stories has no file nope\.json/);
  });

  it("429: waits as Retry-After says, telling why, then reads the file", async () => {
    const source = await open("test-org/stories");
    hub.inject({kind: "rate-limit", retryAfter: 1, file: "tokenizer.json"});
    const started = Date.now();
    expect(await readJson(source, "tokenizer.json")).toEqual(TOKENIZER);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(notices).toEqual([
      expect.stringMatching(
        /^test-org\/stories\/tokenizer\.json: rate-limited by 127\.0\.0\.1:\d+, retrying in 1 s \(1 of 3\)$/
      )
    ]);
  });

  it("429 more times than retried, or for longer than we wait: a named error, nothing cached", async () => {
    const source = await open("test-org/stories");
    hub.inject({kind: "rate-limit", retryAfter: 0, file: "tokenizer.json", times: 10});
    const error = await hubError(source.read("tokenizer.json"));
    expect(error.code).toBe("rate-limited");
    expect(error.message).toMatch(/tokenizer\.json: rate-limited by .* \(HTTP 429, 4 times\): try again in 0 s/);
    expect(notices.length).toBe(3);
    hub.inject({kind: "rate-limit", retryAfter: 3600, file: "tokenizer_config.json"});
    expect((await hubError(source.read("tokenizer_config.json"))).message).toContain("try again in 3600 s");
    expect(cached(folderOf("test-org/stories"))).toEqual([]);
  });
});

describe("interrupted and wrong downloads", () => {
  it("resumes a dropped download where it stopped (Range at the CDN)", async () => {
    const source = await open("test-org/stories");
    hub.inject({kind: "drop", afterBytes: 300_000, file: "model.safetensors", on: "cdn"});
    const bytes = await source.read("model.safetensors");
    expect(Buffer.from(bytes).equals(WEIGHTS)).toBe(true);
    expect(hub.cdnRequests.map((r) => r.range)).toEqual([undefined, "bytes=300000-"]);
    expect(notices).toEqual([
      expect.stringMatching(
        /model\.safetensors: the connection dropped .* at 300000 bytes of 1\.0 MB; resuming \(1 of 3\)/
      )
    ]);
  });

  it("a connection that keeps dropping: a network error, no file or temporary file, and the next run resumes", async () => {
    const source = await open("test-org/stories");
    hub.inject({kind: "drop", afterBytes: 1000, file: "model.safetensors", on: "cdn", times: 4});
    const error = await hubError(source.read("model.safetensors"));
    expect(error.code).toBe("network");
    expect(error.message).toMatch(
      /^test-org\/stories\/model\.safetensors: the connection dropped .*4 times: the part that arrived is kept, and the next try resumes there$/
    );
    // What arrived is kept apart, under names no reader takes for the file.
    expect(cached(folderOf("test-org/stories")).sort()).toEqual([
      "model.safetensors.partial",
      "model.safetensors.partial.json"
    ]);
    expect(await source.has("model.safetensors")).toBe(true); // (asks the Hub: the partial is not the file)
    expect(existsSync(path.join(folderOf("test-org/stories"), "model.safetensors"))).toBe(false);

    // A later run asks for the rest only, checks the whole against the Hub's sha256, and clears the kept part.
    hub.cdnRequests.length = 0;
    notices.length = 0;
    const again = await open("test-org/stories");
    expect(Buffer.from(await again.read("model.safetensors")).equals(WEIGHTS)).toBe(true);
    expect(hub.cdnRequests.filter((r) => r.method === "GET").map((r) => r.range)).toEqual(["bytes=4000-"]);
    expect(notices).toEqual([
      "test-org/stories/model.safetensors: resuming at 4000 bytes of 1.0 MB, where an earlier download stopped"
    ]);
    expect(cached(folderOf("test-org/stories"))).toEqual(["model.safetensors"]);
  });

  it("a kept beginning of another version of the file is thrown away, and the file fetched whole", async () => {
    const folder = folderOf("test-org/stories");
    mkdirSync(folder, {recursive: true});
    writeFileSync(path.join(folder, "model.safetensors.partial"), WEIGHTS.subarray(0, 5000));
    writeFileSync(
      path.join(folder, "model.safetensors.partial.json"),
      JSON.stringify({size: WEIGHTS.length, sha256: "0".repeat(64), bytes: 5000})
    );
    const source = await open("test-org/stories");
    expect(Buffer.from(await source.read("model.safetensors")).equals(WEIGHTS)).toBe(true);
    expect(hub.cdnRequests.filter((r) => r.method === "GET").map((r) => r.range)).toEqual(["bytes=5000-", undefined]);
    expect(cached(folder)).toEqual(["model.safetensors"]);
  });

  it("a Content-Length shorter than the file is caught by X-Linked-Size and the rest fetched", async () => {
    const source = await open("test-org/stories");
    hub.inject({kind: "short", bytes: 5000, file: "model.safetensors", on: "cdn"});
    expect(Buffer.from(await source.read("model.safetensors")).equals(WEIGHTS)).toBe(true);
    expect(hub.cdnRequests.map((r) => r.range)).toEqual([undefined, "bytes=5000-"]);
    hub.inject({kind: "short", bytes: 5000, file: "model.safetensors", on: "cdn", times: 10});
    const other = await resolveSource("test-org/stories", {
      endpoint: hub.endpoint,
      modelsPath: [],
      cacheDir: tempDir("c")
    });
    const error = await hubError(other.read("model.safetensors"));
    expect(error.code).toBe("incomplete");
  });

  it("an HTML page sent with 200 for config.json is not taken for it", async () => {
    hub.inject({kind: "html", file: "config.json", times: 2});
    const error = await hubError(open("test-org/stories").then((s) => s.read("config.json")));
    expect(error.code).toBe("corrupt");
    expect(error.message).toMatch(/^test-org\/stories\/config\.json: the server sent an HTML page instead of the file/);
    expect(cached(folderOf("test-org/stories"))).toEqual([]);
    // The next run asks again (nothing was cached) and gets the real file.
    expect((await readJson<{model_type: string}>(await open("test-org/stories"), "config.json")).model_type).toBe(
      "llama"
    );
  });

  it("a short tokenizer.json (a Content-Length that lies) is not cached as complete", async () => {
    const source = await open("test-org/stories");
    hub.inject({kind: "short", bytes: 4000, file: "tokenizer.json"});
    const error = await hubError(source.read("tokenizer.json"));
    expect(error.code).toBe("corrupt");
    expect(error.message).toMatch(/^test-org\/stories\/tokenizer\.json: invalid JSON .* nothing was cached/);
    expect(cached(folderOf("test-org/stories"))).not.toContain("tokenizer.json");
    expect(await readJson(source, "tokenizer.json")).toEqual(TOKENIZER);
  });

  it("a damaged copy cached by an older version is taken out and fetched again", async () => {
    const folder = folderOf("test-org/stories");
    const source = await open("test-org/stories");
    await source.read("tokenizer.json");
    writeFileSync(
      path.join(folder, "tokenizer.json"),
      readFileSync(path.join(STORIES, "tokenizer.json")).subarray(0, 3000)
    );
    hub.requests.length = 0;
    expect(await readJson(source, "tokenizer.json")).toEqual(TOKENIZER);
    expect(notices).toEqual(["test-org/stories/tokenizer.json: the cached copy is damaged; downloading it again"]);
    expect(hub.requests.map((r) => r.url)).toEqual(["/test-org/stories/resolve/main/tokenizer.json"]);
    expect(
      readFileSync(path.join(folder, "tokenizer.json")).equals(readFileSync(path.join(STORIES, "tokenizer.json")))
    ).toBe(true);
  });

  it("a cache that cannot be written is a named error", async () => {
    const blocker = path.join(tempDir("ro"), "not-a-folder");
    writeFileSync(blocker, "");
    const error = await hubError(
      resolveSource("test-org/stories", {endpoint: hub.endpoint, modelsPath: [], cacheDir: blocker}).then((s) =>
        s.read("config.json")
      )
    );
    expect(error.code).toBe("cache-write");
    expect(error.message).toMatch(
      /^test-org\/stories\/config\.json: downloaded, but it could not be written to the cache \(ENOTDIR: not a directory/
    );
  });
});

describe("the cache is keyed by revision and endpoint", () => {
  it("asking for v2 after main gets v2's files, each in its own folder", async () => {
    const main = await readJson<{rms_norm_eps: number}>(await open("test-org/stories"), "config.json");
    const v2 = await readJson<{rms_norm_eps: number}>(await open("test-org/stories", {revision: "v2"}), "config.json");
    expect([main.rms_norm_eps, v2.rms_norm_eps]).toEqual([1e-5, 2e-5]);
    expect(folderOf("test-org/stories", "v2")).not.toBe(folderOf("test-org/stories"));
    expect(hub.requests.filter((r) => r.method === "GET").map((r) => r.url)).toEqual([
      "/test-org/stories/resolve/main/config.json",
      "/test-org/stories/resolve/v2/config.json"
    ]);
  });

  it("the real Hub's main branch is data/models/<org>/<name>; anything else is under .hub/", () => {
    expect(hubCacheFolder("HuggingFaceTB/SmolLM2-135M")).toBe(path.join("data/models", "HuggingFaceTB/SmolLM2-135M"));
    expect(hubCacheFolder("gpt2", {revision: "refs/pr/1"})).toBe(
      path.join("data/models/.hub/huggingface.co/refs%2Fpr%2F1/gpt2")
    );
    expect(hubCacheFolder("gpt2", {endpoint: "http://127.0.0.1:8080"})).toBe(
      path.join("data/models/.hub/127.0.0.1_8080/main/gpt2")
    );
  });

  it("a revision is URL-encoded into the URL", () => {
    expect(hubUrl("org/name", "sub dir/a#b.json", {revision: "refs/pr/1"})).toBe(
      "https://huggingface.co/org/name/resolve/refs%2Fpr%2F1/sub%20dir/a%23b.json"
    );
  });
});

describe("ids that are not Hub ids never reach the Hub or the disk", () => {
  const cwdBefore = readdirSync(".");
  const hostile = [
    "a/b/../../../..",
    "org/name?x=1",
    "org/name#x",
    "a/b/c",
    "/org",
    "org/",
    "-org/name",
    "org/name.",
    "org/na--me",
    "x".repeat(97),
    "org/na me",
    "org\\name"
  ];

  for (const id of hostile) {
    it(`refuses ${JSON.stringify(id.slice(0, 20))}`, async () => {
      const error = await hubError(open(id));
      expect(["invalid-id", "not-found"]).toContain(error.code);
      expect(hub.requests).toEqual([]);
      expect(readdirSync(".")).toEqual(cwdBefore);
      expect(readdirSync(cacheDir)).toEqual([]);
    });
  }

  it("../../etc/passwd and an absolute path that is not a folder are paths, not ids", async () => {
    expect((await hubError(open("../../no/such/model"))).message).toBe(
      "../../no/such/model does not exist: give a folder holding config.json (and tokenizer.json, model.safetensors), or a Hub id"
    );
    expect((await hubError(open("/etc/passwd"))).message).toMatch(/^\/etc\/passwd is a file, not a model folder/);
    const file = path.join(STORIES, "config.json");
    expect((await hubError(open(file))).message).toMatch(/config\.json is a file, not a model folder/);
    expect(hub.requests).toEqual([]);
  });

  it("takes what the Hub takes", () => {
    for (const id of [
      "gpt2",
      "HuggingFaceTB/SmolLM2-135M",
      "openai-community/gpt2",
      "a/b_c.d-e",
      "_x/y_",
      "x".repeat(96)
    ])
      expect(checkHubId(id)).toBe(id);
    expect(() => checkHubId("org/name?x=1")).toThrow(/"\?" is not allowed: letters, digits, "-", "_" and "\." only/);
  });
});
