/**
 * "Inside the model" in chromium, as a reader meets it: each page (logit lens, activation patching, ablation,
 * steering) opens on its precomputed numbers, then runs live on stories260K — the lens, the sweeps and the
 * steered generations computed in the model's Web Worker (WorkerModel.inside), their progress and streamed text
 * coming back to the page — with no cell error, no console error and no request leaving the site.
 */
import {mkdir} from "node:fs/promises";
import {join} from "node:path";
import {afterAll, beforeAll, describe, expect, test} from "vitest";
import {
  launchBrowser,
  skipBrowserTests,
  type TestBrowser,
  type WatchedPage,
  settle,
  cellErrors
} from "./helpers/browser.js";
import {buildSiteCopy, ROOT, type BuiltSite} from "./helpers/site.js";
import {serveStatic, type StaticServer} from "./helpers/static-server.js";

const SCREENSHOTS = join(ROOT, "test-results", "screenshots", "inside");

declare global {
  interface Window {
    lmw?: {model: {id: string} | undefined; runs: () => number};
  }
}

/** Each page, and what its live result shows once the worker has answered. */
const PAGES: [string, (w: WatchedPage) => Promise<void>][] = [
  [
    "/logit-lens",
    async (w) => {
      // A heatmap of layers × positions; the table under it lists a cell's top 5.
      await w.page.waitForSelector(".lmw-selectable svg");
      expect(await w.page.locator(".lens-top tr").count()).toBe(6);
    }
  ],
  [
    "/patching",
    async (w) => {
      // Three sweeps (resid, attn, mlp), each a heatmap; the metric line names both runs.
      await w.page.waitForFunction(() => document.querySelectorAll(".lmw-selectable svg").length >= 3, null, {
        timeout: 120_000
      });
      await expect(
        w.page
          .getByText(/^Logit difference/)
          .first()
          .textContent()
      ).resolves.toMatch(/clean run -?\d+\.\d+, corrupt run -?\d+\.\d+/);
    }
  ],
  [
    "/ablation",
    async (w) => {
      await w.page.waitForSelector(".lmw-selectable svg");
    }
  ],
  [
    "/steering",
    async (w) => {
      // The unsteered and the steered continuation, streamed into their columns.
      await w.page.waitForFunction(
        () =>
          [...document.querySelectorAll(".steer p")].every(
            (p) => (p.textContent ?? "").length > "Once upon a time".length + 5
          ),
        null,
        {timeout: 120_000}
      );
    }
  ]
];

describe.skipIf(skipBrowserTests())("Inside the model, live in the worker", () => {
  let site: BuiltSite;
  let server: StaticServer;
  let browser: TestBrowser;

  beforeAll(async () => {
    site = await buildSiteCopy();
    server = await serveStatic(site.dir);
    browser = await launchBrowser({viewport: {width: 1200, height: 900}});
    await mkdir(SCREENSHOTS, {recursive: true});
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await site?.remove();
  });

  test.each(PAGES)(
    "%s: precomputed, then live on stories260K",
    async (page, shows) => {
      const w = await browser.open(`${server.origin}${page}?backend=wasm`);
      try {
        await settle(w);
        expect(await cellErrors(w), `${page} precomputed`).toEqual([]);
        // The pages open on stories260K (the model that ships); "Run live" loads it in its worker.
        await expect(w.page.locator("form.lmw-model input").inputValue()).resolves.toBe("stories260K");
        await w.page.locator("form.lmw-live input[type=checkbox]").check();
        await w.page.waitForFunction(() => window.lmw?.model?.id === "stories260K", null, {timeout: 120_000});
        await w.page.waitForSelector(".lmw-status[data-status=ready]");
        // Live: the worker runs the page's forward passes (the count comes back with each answer).
        await w.page.waitForFunction(() => window.lmw!.runs() > 0, null, {timeout: 120_000});
        await settle(w);
        await shows(w);
        expect(await cellErrors(w), `${page} live`).toEqual([]);
        await w.page.screenshot({path: join(SCREENSHOTS, `${page.slice(1)}.png`), fullPage: true});
        expect(w.errors, w.console.join("\n")).toEqual([]);
        expect(w.externalRequests).toEqual([]);
      } finally {
        await w.page.close();
      }
    },
    300_000
  );

  test("the NDIF API key: kept for this tab only (sessionStorage, never the address), forgotten when saved blank", async () => {
    const w = await browser.open(`${server.origin}/logit-lens?backend=wasm`);
    try {
      await settle(w);
      const form = w.page.locator("form.lmw-remote");
      await form.locator("input[type=checkbox]").check();
      const key = form.getByLabel("NDIF API key");
      const note = form.locator(".lmw-muted");
      const kept = () => w.page.evaluate(() => sessionStorage.getItem("lmw-ndif-key"));
      await key.fill("ndif-test-key");
      await form.locator("button[type=submit]").click();
      await expect(note.textContent()).resolves.toBe(" kept for this tab only");
      expect(await kept()).toBe("ndif-test-key");
      await expect(key.inputValue()).resolves.toBe("");
      await expect(key.getAttribute("placeholder")).resolves.toBe("a key is kept for this tab");
      expect(w.page.url()).not.toContain("ndif-test-key");
      await form.locator("button[type=submit]").click();
      await expect(note.textContent()).resolves.toBe(" key forgotten");
      expect(await kept()).toBeNull();
      await expect(key.getAttribute("placeholder")).resolves.toBe("NDIF API key");
      expect(w.externalRequests).toEqual([]);
    } finally {
      await w.page.close();
    }
  }, 120_000);
});
