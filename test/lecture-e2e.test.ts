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
import {copyFile, mkdir, mkdtemp, readFile, rm, writeFile} from "node:fs/promises";
import {tmpdir} from "node:os";
import {join} from "node:path";
import {afterAll, beforeAll, describe, expect, test} from "vitest";
import {launchBrowser, skipBrowserTests, type TestBrowser, type WatchedPage} from "./helpers/browser.js";
import {startHubServer, type HubServer} from "./helpers/hub-server.js";
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
  await w.page.waitForFunction(
    () => document.querySelectorAll("observablehq-loading, .observablehq--running").length === 0,
    null,
    {timeout: 120_000}
  );
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

const generatedTokens = (w: WatchedPage) =>
  w.page.locator(".generation .continuation").evaluate((e) => e.childNodes.length);

describe.skipIf(skipBrowserTests())("the lecture, as a teacher runs it", () => {
  let site: BuiltSite;
  let server: StaticServer;
  let browser: TestBrowser;
  let hub: HubServer;
  let slow: string;
  const measured: Record<string, unknown> = {};

  beforeAll(async () => {
    site = await buildSiteCopy();
    server = await serveStatic(site.dir);
    // stories260K with a tokenizer whose pre-tokenizer pattern backtracks exponentially on a run of "a"s
    // (a real regular expression: 40 of them would take hours), served from a loopback Hub.
    slow = await mkdtemp(join(tmpdir(), "lmw-slow-tokenizer-"));
    const stories = join(ROOT, "data", "models", "stories260K");
    for (const file of ["config.json", "tokenizer_config.json", "model.safetensors"])
      await copyFile(join(stories, file), join(slow, file));
    const tokenizer = JSON.parse(await readFile(join(stories, "tokenizer.json"), "utf8"));
    tokenizer.pre_tokenizer = {type: "Split", pattern: {Regex: "(?:a+)+b"}, behavior: "Isolated", invert: false};
    await writeFile(join(slow, "tokenizer.json"), JSON.stringify(tokenizer));
    hub = await startHubServer({"test-org/slow-tokenizer": slow});
    browser = await launchBrowser({viewport: {width: 1200, height: 900}});
  });

  afterAll(async () => {
    await mkdir(RESULTS, {recursive: true});
    await writeFile(join(RESULTS, "lecture-responsiveness.json"), JSON.stringify(measured, null, 2));
    await browser?.close();
    await server?.close();
    await hub?.close();
    await site?.remove();
    if (slow) await rm(slow, {recursive: true, force: true});
  });

  // Retried: on a small shared machine the OS can take the page's thread away on its own; model work on the
  // page's thread would pause it for a whole token step (~100 ms for gpt2) or the whole run, every try.
  test(
    "generation on full-size gpt2 (WASM, in the worker): the page keeps painting and Stop ends the run within 200 ms",
    {retry: 2, timeout: 400_000},
    async () => {
      const w = await browser.open(`${server.origin}/generation?backend=wasm&weights=random&live`);
      try {
        await waitForModel(w, "gpt2");
        expect(
          await w.page.evaluate(() => (window.lmw!.model as unknown as {weightsOrigin: string}).weightsOrigin)
        ).toMatch(/^random/);
        await w.page.waitForSelector(".generation:not([data-state=running]):not([data-state=precomputed])", {
          timeout: 120_000
        });

        // A long run: 100 tokens of gpt2 take seconds on WASM. The timer starts with it.
        await w.page.evaluate(() => {
          window.ticks = [performance.now()];
          setInterval(() => window.ticks!.push(performance.now()), 10);
        });
        await setRange(w, "Max new tokens", 100);
        await w.page.waitForSelector(".generation[data-state=running]");
        await w.page.waitForFunction(
          () => (document.querySelector(".generation .continuation")?.childNodes.length ?? 0) >= 15,
          null,
          {timeout: 120_000}
        );
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
          return {
            stopMs: window.stoppedAt! - window.stopClickedAt!,
            gaps,
            state: document.querySelector(".generation")!.getAttribute("data-state")
          };
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
        // The timer fires every ≤ 50 ms: 95% of its gaps are within that, and none is a freeze. (The longest single
        // pause is reported: 19–56 ms on this 2-core machine at load averages of 10–15, more when it is swamped;
        // model work on this thread would instead pause it for a whole token step, ~100 ms, at every token.)
        expect(
          sorted[Math.floor(sorted.length * 0.95)],
          "95% of a 10 ms timer's gaps during the generation"
        ).toBeLessThanOrEqual(50);
        expect(maxGap, "the longest pause of a 10 ms timer during the generation").toBeLessThanOrEqual(250);
        expect(stopMs, "from Stop to the run's end").toBeLessThanOrEqual(200);
        expect(w.errors, w.console.join("\n")).toEqual([]);
      } finally {
        await w.page.close();
      }
    }
  );

  test("a dragged 'Max new tokens' runs its last value only: the older values' generations are dropped, not queued", async () => {
    const w = await browser.open(`${server.origin}/generation?backend=wasm&weights=random&live`);
    try {
      await waitForModel(w, "gpt2");
      await w.page.waitForSelector(".generation:not([data-state=running]):not([data-state=precomputed])", {
        timeout: 120_000
      });
      const before = await w.page.evaluate(() => window.lmw!.runs());
      for (const value of [30, 31, 32, 33, 34, 35]) await setRange(w, "Max new tokens", value);
      await w.page.waitForSelector(".generation[data-state=max_new_tokens]", {timeout: 120_000});
      await settle(w);
      expect(await generatedTokens(w)).toBe(35);
      // One generation of 35 tokens is 35 passes; six queued generations would be 195.
      const passes = (await w.page.evaluate(() => window.lmw!.runs())) - before;
      measured.drag = {values: 6, lastValue: 35, forwardPasses: passes};
      expect(passes).toBeLessThan(35 + 15);
      // Greedy: the sampling controls are off, so they cannot re-run a generation that would give the same text.
      const disabled = await w.page
        .locator(".lmw-disabled input[type=range]")
        .evaluateAll((inputs) => inputs.map((i) => (i as HTMLInputElement).disabled));
      expect(disabled).toEqual([true, true, true, true]);
      await w.page.getByLabel("sampling", {exact: true}).check();
      await w.page.waitForFunction(() => !document.querySelector(".lmw-disabled"));
      expect(await w.page.getByLabel("Temperature", {exact: true}).first().isDisabled()).toBe(false);
      expect(w.errors, w.console.join("\n")).toEqual([]);
    } finally {
      await w.page.close();
    }
  }, 400_000);

  test("self_attn.source: the attention block's steps and shapes from the engine, for SmolLM2 and gpt2 structures and stories260K; a step shows its tensor", async () => {
    const cases = [
      {
        model: "HuggingFaceTB/SmolLM2-135M",
        weights: "&weights=random",
        first: "q_proj.output",
        weightsShape: "[1, 9, 10, 10]",
        qShape: "[1, 10, 576]"
      },
      {
        model: "gpt2",
        weights: "&weights=random",
        first: "c_attn.output",
        weightsShape: "[1, 12, 10, 10]",
        qShape: "[1, 10, 2304]"
      },
      {model: "stories260K", weights: "", first: "q_proj.output", weightsShape: "[1, 8, 16, 16]", qShape: "[1, 16, 64]"}
    ];
    for (const c of cases) {
      const w = await browser.open(
        `${server.origin}/mlp-attention?backend=wasm&live&model=${encodeURIComponent(c.model)}${c.weights}`
      );
      try {
        await waitForModel(w, c.model);
        // On WASM the full-size structures run every structure on one graph (one copy of their weights), the
        // small trained model the layout whose session is faster to make (runtime/model.ts `ONE_GRAPH_FROM_BYTES`).
        const oneGraph = await w.page.evaluate(() => (window.lmw!.model as unknown as {oneGraph: boolean}).oneGraph);
        expect(oneGraph, c.model).toBe(c.model !== "stories260K");
        await w.page.waitForSelector(".step-tensor[data-shape]:not([data-shape=''])", {timeout: 120_000});
        await settle(w);
        expect(await w.page.locator(".attn-shape").textContent(), c.model).toContain(c.weightsShape);
        const steps = await w.page
          .locator("form.lmw-steps .step")
          .evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.path!));
        expect(steps.length, c.model).toBeGreaterThanOrEqual(4);
        expect(steps[0]!.endsWith(`.${c.first}`), `${c.model} opens on ${steps[0]}`).toBe(true);
        expect(steps.at(-1)!.endsWith("attn.output") || steps.at(-1)!.endsWith("self_attn.output"), c.model).toBe(true);
        // The attention weights are shown first; choosing the first step shows its own tensor, with no new pass.
        const runs = await w.page.evaluate(() => window.lmw!.runs());
        await w.page.locator("form.lmw-steps label", {hasText: c.first}).click();
        await w.page.waitForSelector(`.step-tensor[data-step='${steps[0]}']`);
        expect(await w.page.locator(".step-tensor").getAttribute("data-shape"), c.model).toBe(c.qShape);
        expect(await w.page.evaluate(() => window.lmw!.runs())).toBe(runs);
        expect(await w.page.locator(".observablehq--error").count()).toBe(0);
        expect(w.errors, w.console.join("\n")).toEqual([]);
      } finally {
        await w.page.close();
      }
    }
  }, 600_000);

  test("every exercise is posed: 1 on generation, 2 on tokens, 3 on context with its 0.7–0.8 band, 4 on MLP and attention with the answer on request", async () => {
    const w = await browser.open(`${server.origin}/generation`);
    try {
      await settle(w);
      await expect(w.page.locator("#exercise-1").textContent()).resolves.toMatch(/arithmetic/);
      await w.page.goto(`${server.origin}/tokens`);
      await settle(w);
      await expect(w.page.locator("#exercise-2").textContent()).resolves.toMatch(/three most likely/);
      // The logits as the lecture prints them: [1, T, 50257], and logits[0]: [T, 50257] (gpt2, precomputed).
      await expect(w.page.locator("code.logits0").textContent()).resolves.toMatch(/^\[\d+, 50257\]$/);
      await w.page.getByLabel("Add a trailing space").check();
      await w.page.waitForSelector(".top-three");
      await w.page.goto(`${server.origin}/context`);
      await settle(w);
      await expect(w.page.locator("#exercise-3").textContent()).resolves.toMatch(/between 0\.7 and 0\.8/);
      expect(await w.page.locator(".band-check").getAttribute("data-lands")).toMatch(/^(true|false)$/);
      await expect(w.page.locator("figure, svg").filter({hasText: "target 0.7–0.8"}).count()).resolves.toBeGreaterThan(
        0
      );
      await w.page.goto(`${server.origin}/mlp-attention`);
      await settle(w);
      await expect(w.page.locator("#exercise-4").textContent()).resolves.toMatch(/share/);
      expect(await w.page.locator(".answer").count()).toBe(0);
      await w.page.getByRole("button", {name: "Show the answer"}).click();
      await expect(w.page.locator(".answer").textContent()).resolves.toMatch(/the MLPs hold \d+(\.\d)?%/);
      expect(w.errors, w.console.join("\n")).toEqual([]);
    } finally {
      await w.page.close();
    }
  }, 300_000);

  test("the reader's settings survive a page change; ?weights=random leaves stories260K's trained weights alone", async () => {
    const w = await browser.open(`${server.origin}/tokens?backend=wasm&weights=random`);
    try {
      const form = w.page.locator("form.lmw-model");
      await form.locator("input").fill("stories260K");
      await form.locator("button").click();
      await w.page.locator("form.lmw-live input[type=checkbox]").check();
      await waitForModel(w, "stories260K");
      // A model that ships with its checkpoint runs it, whatever ?weights= says.
      expect(await w.page.evaluate(() => (window.lmw!.model as unknown as {weightsOrigin: string}).weightsOrigin)).toBe(
        "checkpoint"
      );
      await w.page.goto(`${server.origin}/anatomy`);
      await waitForModel(w, "stories260K");
      expect(await w.page.locator("form.lmw-model input").inputValue()).toBe("stories260K");
      expect(await w.page.locator("form.lmw-live input[type=checkbox]").isChecked()).toBe(true);
      const url = new URL(w.page.url());
      expect(url.searchParams.get("backend")).toBe("wasm");
      expect(url.searchParams.get("weights")).toBe("random");
      await settle(w);
      expect(await w.page.locator(".lmw-badge.live").count()).toBeGreaterThan(0);
      expect(w.errors, w.console.join("\n")).toEqual([]);
    } finally {
      await w.page.close();
    }
  }, 300_000);

  test("the index opens on a live next-token prediction; performance is its own part of the site", async () => {
    const w = await browser.open(`${server.origin}/?backend=wasm`);
    try {
      await waitForModel(w, "stories260K");
      await w.page.waitForSelector(".next-token[data-top]:not([data-top=''])", {timeout: 60_000});
      expect(await w.page.locator("#ort-result").count()).toBe(0);
      const box = w.page.getByLabel("Prompt", {exact: true}).first();
      const top = await w.page.locator(".next-token").getAttribute("data-top");
      await box.fill("Lily and Ben went to the");
      await box.press("Enter");
      await w.page
        .waitForFunction(
          (before) => {
            const el = document.querySelector(".next-token");
            return el && el.getAttribute("data-top") !== before;
          },
          top,
          {timeout: 60_000}
        )
        .catch(() => undefined);
      await settle(w);
      expect(await w.page.locator(".observablehq--error").count()).toBe(0);
      // The sidebar: the lecture's pages, then a Performance section holding the benchmarks and the engine check.
      const section = w.page.locator("#observablehq-sidebar details", {hasText: "Performance"});
      await expect(section.locator("a").evaluateAll((as) => as.map((a) => a.textContent?.trim()))).resolves.toEqual([
        "Benchmarks",
        "Engine check"
      ]);
      expect(w.errors, w.console.join("\n")).toEqual([]);
    } finally {
      await w.page.close();
    }
  }, 300_000);

  test("a tokenizer call that hangs is given up after its time limit with a named error, the worker replaced, the page responsive", async () => {
    const model = "test-org/slow-tokenizer";
    const w = await browser.open(
      `${server.origin}/tokens?backend=wasm&live&hub=${encodeURIComponent(hub.endpoint)}&model=${encodeURIComponent(model)}`
    );
    try {
      await waitForModel(w, model);
      await settle(w);
      await w.page.evaluate(() => {
        window.ticks = [performance.now()];
        setInterval(() => window.ticks!.push(performance.now()), 10);
      });
      const started = Date.now();
      const box = w.page.getByLabel("Prompt", {exact: true}).first();
      await box.fill("a".repeat(40));
      await box.press("Enter");
      const note = w.page.locator(".lmw-error-note[data-for=tokens]");
      await w.page.evaluate(() => {
        const el = document.querySelector(".lmw-error-note[data-for=tokens]")!;
        new MutationObserver(() => {
          if (el.textContent) window.stoppedAt ??= performance.now();
        }).observe(el, {childList: true, characterData: true, subtree: true});
      });
      await expect
        .poll(() => note.textContent(), {timeout: 60_000})
        .toMatch(/^tokenizing took longer than 10 s, so it was given up/);
      const gaveUpAfterMs = Date.now() - started;
      // The pauses of the page's timer while the worker hung, up to the error (the worker's replacement after
      // it is reported, not asserted).
      const {maxGap, maxGapAfter, long, errorAt} = await w.page.evaluate(() => {
        const gaps = window.ticks!.slice(1).map((t, i) => ({at: t, gap: t - window.ticks![i]!}));
        const max = (list: {gap: number}[]) => Math.max(0, ...list.map((g) => g.gap));
        const long = gaps
          .filter((g) => g.gap > 50)
          .map((g) => [Math.round(g.at - window.ticks![0]!), Math.round(g.gap)]);
        return {
          maxGap: max(gaps.filter((g) => g.at <= window.stoppedAt!)),
          maxGapAfter: max(gaps.filter((g) => g.at > window.stoppedAt!)),
          long,
          errorAt: Math.round(window.stoppedAt! - window.ticks![0]!)
        };
      });
      // The new worker loads the model again; an ordinary prompt then runs.
      await box.fill("Once upon a time");
      await box.press("Enter");
      await expect.poll(() => note.textContent(), {timeout: 60_000}).toBe("");
      await w.page.waitForFunction(
        () =>
          [...document.querySelectorAll(".tokens .piece")]
            .map((e) => e.textContent)
            .join("")
            .includes("time"),
        null,
        {timeout: 60_000}
      );
      measured.tokenizerTimeout = {
        gaveUpAfterMs,
        maxTimerGapMsWhileHung: maxGap,
        maxTimerGapMsAfterTheError: maxGapAfter,
        pausesOver50Ms: long,
        errorAtMs: errorAt
      };
      // Not frozen for the 10 s the worker hung: a page blocked by the tokenizer would show one 10 s pause. The
      // bound is loose because the hung worker spins one core of a small shared machine, and the OS then takes
      // the page's thread away for up to a few hundred ms (measured: pauses of 50–250 ms, spread over the hang).
      expect(maxGap, "the page kept painting while the worker hung").toBeLessThan(1000);
      expect(await w.page.locator(".observablehq--error").count()).toBe(0);
      expect(w.errors, w.console.join("\n")).toEqual([]);
    } finally {
      await w.page.close();
    }
  }, 300_000);
});
