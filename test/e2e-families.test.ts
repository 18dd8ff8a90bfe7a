/**
 * Every lecture page on every family, in chromium: the site built with one mini fixture of each family
 * (LMW_SITE_MODELS), each page loads its precomputed numbers with no cell error, then runs live (WASM) on each
 * family's model in turn — GPT-NeoX's fused projection and parallel residual, Gemma's four norms and sliding
 * window, Qwen's biases and q/k norms — with no cell error and no console error. test/e2e.test.ts times and
 * drives the pages on stories260K; this checks only that nothing in them assumes a family.
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
import {ONE_PER_FAMILY as FAMILIES} from "./helpers/fixtures.js";
import {buildSiteCopy, ROOT, type BuiltSite} from "./helpers/site.js";
import {serveStatic, type StaticServer} from "./helpers/static-server.js";

const PAGES = ["/generation", "/tokens", "/anatomy", "/context", "/mlp-attention"];
/** Each page, live on the last family (Gemma 3), for a look: test-results/screenshots/families/. */
const SCREENSHOTS = join(ROOT, "test-results", "screenshots", "families");

declare global {
  interface Window {
    lmw?: {model: {id: string} | undefined; runs: () => number};
  }
}

describe.skipIf(skipBrowserTests())("the lecture pages on every family", () => {
  let site: BuiltSite;
  let server: StaticServer;
  let browser: TestBrowser;

  beforeAll(async () => {
    process.env.LMW_SITE_MODELS = FAMILIES.join(","); // read by the build's data loaders and its config
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
    "%s: precomputed, then live on each family",
    async (page) => {
      const w = await browser.open(`${server.origin}${page}?backend=wasm`);
      try {
        await settle(w);
        expect(await cellErrors(w), `${page} precomputed`).toEqual([]);
        const live = w.page.locator("form.lmw-live input[type=checkbox]");
        for (const id of FAMILIES) {
          const form = w.page.locator("form.lmw-model");
          await form.locator("input").fill(id);
          await form.locator("button").click();
          if (!(await live.isChecked())) await live.check();
          await w.page.waitForFunction((want) => window.lmw?.model?.id === want, id, {timeout: 60_000});
          await w.page.waitForSelector(".lmw-status[data-status=ready]");
          await settle(w);
          expect(await cellErrors(w), `${page} live on ${id}`).toEqual([]);
        }
        await w.page.screenshot({path: join(SCREENSHOTS, `${page.slice(1)}-${FAMILIES.at(-1)}.png`), fullPage: true});
        expect(w.errors, w.console.join("\n")).toEqual([]);
        expect(w.externalRequests).toEqual([]);
      } finally {
        await w.page.close();
      }
    },
    300_000
  );
});
