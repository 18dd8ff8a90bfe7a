/**
 * The browser's side of the Hub (src/browser.ts, the Cache API) in Chromium, against the stand-in Hub on two
 * loopback ports: the page, the Hub and its CDN are three origins. The token goes to the Hub only — Chromium
 * drops Authorization when the Hub redirects to the CDN — and the Cache API holds a file only once it came
 * whole and checked.
 */
import {readFileSync} from "node:fs";
import path from "node:path";
import {afterAll, beforeAll, beforeEach, describe, expect, it} from "vitest";
import {launchBrowser, skipBrowserTests, type TestBrowser, type WatchedPage} from "./helpers/browser.js";
import {buildTestPages, type TestPages} from "./helpers/bundle.js";
import {startHubServer, TEST_TOKEN, type HubServer} from "./helpers/hub-server.js";
import {serveStatic, type StaticServer} from "./helpers/static-server.js";

const STORIES = path.resolve("test/fixtures/stories260K");

interface Outcome {
  bytes?: number;
  error?: {name: string; code?: string; message: string};
  notices: string[];
}

describe.skipIf(skipBrowserTests())("the Hub from a page", () => {
  let pages: TestPages, site: StaticServer, hub: HubServer, browser: TestBrowser, w: WatchedPage;
  beforeAll(async () => {
    [pages, hub] = await Promise.all([
      buildTestPages(["hub"]),
      startHubServer({"test-org/stories": STORIES, "meta-llama/stories": STORIES})
    ]);
    site = await serveStatic(pages.dir);
    browser = await launchBrowser({webgpu: false});
    w = await browser.open(`${site.origin}/hub.html`);
    await w.page.waitForFunction(() => document.title === "ready");
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await Promise.all([site?.close(), hub?.close(), pages?.remove()]);
  });
  beforeEach(() => {
    hub.requests.length = 0;
    hub.cdnRequests.length = 0;
    hub.clearFaults();
  });

  const read = (id: string, file: string, token?: string): Promise<Outcome> =>
    w.page.evaluate(([i, f, e, t]) => (window as any).hub.read(i, f, e, t), [id, file, hub.endpoint, token] as const);
  const cached = (): Promise<string[]> => w.page.evaluate(() => (window as any).hub.cached());

  it("a gated model: the error says to paste a token; with one, the file comes, and the CDN never sees it", async () => {
    const refused = await read("meta-llama/stories", "model.safetensors");
    expect(refused.error).toMatchObject({name: "HubError", code: "gated"});
    expect(refused.error!.message).toMatch(
      /meta-llama\/stories is gated or private: paste a Hugging Face access token/
    );
    hub.requests.length = 0;

    const opened = await read("meta-llama/stories", "model.safetensors", TEST_TOKEN);
    expect(opened).toEqual({bytes: 1044992, notices: []});
    const gets = hub.requests.filter((r) => r.method === "GET");
    expect(gets.map((r) => r.url)).toEqual(["/meta-llama/stories/resolve/main/model.safetensors"]);
    expect(gets.every((r) => r.authorization === `Bearer ${TEST_TOKEN}`)).toBe(true);
    expect(hub.cdnRequests.filter((r) => r.method === "GET").length).toBe(1);
    expect(hub.cdnRequests.every((r) => r.authorization === undefined && !r.url.includes(TEST_TOKEN))).toBe(true);
    expect([...hub.requests, ...hub.cdnRequests].every((r) => !r.url.includes(TEST_TOKEN))).toBe(true);
  });

  it("a download that keeps dropping is never put in the Cache API; the next one is", async () => {
    hub.inject({kind: "drop", afterBytes: 2000, file: "model.safetensors", on: "cdn", times: 10});
    const dropped = await read("test-org/stories", "model.safetensors");
    expect(dropped.error).toMatchObject({name: "HubError", code: "network"});
    expect(dropped.notices.length).toBe(3);
    expect((await cached()).filter((url) => url.includes("test-org/stories"))).toEqual([]);

    hub.clearFaults();
    expect((await read("test-org/stories", "model.safetensors")).bytes).toBe(1044992);
    expect(await cached()).toContain(`${hub.endpoint}/test-org/stories/resolve/main/model.safetensors`);
  });

  it("an HTML page for config.json is refused and not cached; 429 is waited out", async () => {
    hub.inject({kind: "html", file: "config.json"});
    const html = await read("test-org/stories", "config.json");
    expect(html.error).toMatchObject({code: "corrupt"});
    expect(html.error!.message).toContain("the server sent an HTML page instead of the file");
    expect((await cached()).some((url) => url.endsWith("/config.json"))).toBe(false);

    hub.inject({kind: "rate-limit", retryAfter: 0, file: "config.json"});
    const waited = await read("test-org/stories", "config.json");
    expect(waited.bytes).toBe(readFileSync(path.join(STORIES, "config.json")).length);
    expect(waited.notices).toEqual([
      expect.stringMatching(/config\.json: rate-limited by 127\.0\.0\.1:\d+, retrying in 0 s/)
    ]);
  });

  it("refuses ids the Hub would refuse, before any request", async () => {
    const outcome = await read("a/b/../../x", "config.json");
    expect(outcome.error).toMatchObject({code: "invalid-id"});
    expect(hub.requests).toEqual([]);
  });
});
