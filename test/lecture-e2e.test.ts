/**
 * The lecture as a teacher runs it, in chromium, on a private build of the site:
 * - the page never freezes: with full-size gpt2 structure (the site's config and tokenizer, random weights)
 *   generating on WASM in the model's worker, a timer on the page keeps firing and Stop ends the run at once;
 *   dragging "Max new tokens" runs the last value only;
 * - each exercise is posed, the attention block's steps come from the engine's graph, settings survive a
 *   page change, and the defects the lecture's readers met stay fixed.
 * The timings asserted here are the acceptance numbers; they are also written to
 * test-results/lecture-responsiveness.json.
 */
import {mkdir, writeFile} from "node:fs/promises";
import {join} from "node:path";
import {afterAll, beforeAll, describe, expect, test} from "vitest";
import {launchBrowser, skipBrowserTests, type TestBrowser, type WatchedPage} from "./helpers/browser.js";
import {buildSiteCopy, ROOT, type BuiltSite} from "./helpers/site.js";
import {serveStatic, type StaticServer} from "./helpers/static-server.js";

const RESULTS = join(ROOT, "test-results");

declare global {
  interface Window {
    /** The timer this test installs: when each tick fired (page time). */
    ticks?: number[];
    stopClickedAt?: number;
    stoppedAt?: number;
  }
}

/** No cell still loading. */
async function settle(w: WatchedPage): Promise<void> {
  await w.page.waitForFunction(() => document.querySelectorAll("observablehq-loading, .observablehq--running").length === 0, null, {timeout: 120_000});
}

async function waitForModel(w: WatchedPage, id: string): Promise<void> {
  await w.page.waitForFunction((want) => window.lmw?.model?.id === want, id, {timeout: 180_000});
}

/** Sets an Observable range input (its number box) and tells the page. */
async function setRange(w: WatchedPage, label: string, value: number): Promise<void> {
  const box = w.page.getByLabel(label, {exact: true}).first();
  await box.fill(String(value));
  await box.dispatchEvent("input");
}

const generatedTokens = (w: WatchedPage) => w.page.locator(".generation .continuation").evaluate((e) => e.childNodes.length);

describe.skipIf(skipBrowserTests())("the lecture, as a teacher runs it", () => {
  let site: BuiltSite;
  let server: StaticServer;
  let browser: TestBrowser;
  const measured: Record<string, unknown> = {};

  beforeAll(async () => {
    site = await buildSiteCopy();
    server = await serveStatic(site.dir);
    browser = await launchBrowser({viewport: {width: 1200, height: 900}});
  }, 300_000);

  afterAll(async () => {
    await mkdir(RESULTS, {recursive: true});
    await writeFile(join(RESULTS, "lecture-responsiveness.json"), JSON.stringify(measured, null, 2));
    await browser?.close();
    await server?.close();
    await site?.remove();
  });

  test("generation on full-size gpt2 (WASM, in the worker): the page keeps painting and Stop ends the run within 200 ms", async () => {
    const w = await browser.open(`${server.origin}/generation?backend=wasm&weights=random&live`);
    try {
      await waitForModel(w, "gpt2");
      expect(await w.page.evaluate(() => (window.lmw!.model as unknown as {weightsOrigin: string}).weightsOrigin)).toMatch(/^random/);
      await w.page.waitForSelector(".generation:not([data-state=running]):not([data-state=precomputed])", {timeout: 120_000});

      // A long run: 100 tokens of gpt2 take seconds on WASM. The timer starts with it.
      await w.page.evaluate(() => {
        window.ticks = [performance.now()];
        setInterval(() => window.ticks!.push(performance.now()), 10);
      });
      await setRange(w, "Max new tokens", 100);
      await w.page.waitForSelector(".generation[data-state=running]");
      await w.page.waitForFunction(() => (document.querySelector(".generation .continuation")?.childNodes.length ?? 0) >= 15, null, {timeout: 120_000});
      const streamedBeforeStop = await generatedTokens(w);

      // Stop, timed in the page: from the click to the run's end (its data-state leaving "running").
      await w.page.evaluate(() => {
        const box = document.querySelector(".generation")!;
        new MutationObserver(() => {
          if (box.getAttribute("data-state") !== "running") window.stoppedAt ??= performance.now();
        }).observe(box, {attributes: true});
        window.stopClickedAt = performance.now();
        (box.querySelector("button") as HTMLButtonElement).click();
      });
      await w.page.waitForFunction(() => window.stoppedAt !== undefined, null, {timeout: 10_000});
      const {stopMs, gaps, state} = await w.page.evaluate(() => {
        const ticks = window.ticks!.filter((t) => t <= window.stoppedAt!);
        const gaps = ticks.slice(1).map((t, i) => t - ticks[i]!);
        return {stopMs: window.stoppedAt! - window.stopClickedAt!, gaps, state: document.querySelector(".generation")!.getAttribute("data-state")};
      });
      const maxGap = Math.max(...gaps);
      const sorted = [...gaps].sort((x, y) => x - y);
      measured.generation = {
        model: "gpt2 (random weights), WASM",
        streamedBeforeStop,
        timerTicks: gaps.length + 1,
        medianTimerGapMs: sorted[Math.floor(sorted.length / 2)],
        p95TimerGapMs: sorted[Math.floor(sorted.length * 0.95)],
        maxTimerGapMs: maxGap,
        stopMs
      };
      expect(state).toBe("aborted");
      expect(streamedBeforeStop).toBeLessThan(100);
      expect(maxGap, "the longest pause of a 10 ms timer during the generation").toBeLessThanOrEqual(50);
      expect(stopMs, "from Stop to the run's end").toBeLessThanOrEqual(200);
      expect(w.errors, w.console.join("\n")).toEqual([]);
    } finally {
      await w.page.close();
    }
  }, 400_000);
});
