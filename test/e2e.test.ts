/**
 * The lecture pages end to end, in chromium: every page loads with no console error (screenshots in
 * test-results/screenshots); live on stories260K (shipped with the site, offline, WASM), a new prompt updates
 * the tokens, the top-k and the plots; a layer or head slider redraws the heatmap without a forward pass
 * (`window.lmw.runs()`); the exercise cell takes the reader's sentence; a bad Hub id (404 from a loopback Hub)
 * or a corrupt checkpoint shows a readable message and keeps the last results; without COOP/COEP the pages
 * run single-threaded and say so. Redraw times (performance measures `lmw:redraw:*`) are reported in
 * test-results/redraw-times.json, never asserted: tests don't time.
 */
import {copyFile, mkdir, mkdtemp, rm, writeFile} from "node:fs/promises";
import {readdirSync} from "node:fs";
import {tmpdir} from "node:os";
import {join, relative, sep} from "node:path";
import {afterAll, beforeAll, describe, expect, test} from "vitest";
import {
  launchBrowser,
  quietModel,
  settle,
  skipBrowserTests,
  type TestBrowser,
  type WatchedPage
} from "./helpers/browser.js";
import {fixtureDir} from "./helpers/fixtures.js";
import {startHubServer, type HubServer} from "./helpers/hub-server.js";
import {buildSiteCopy, ROOT, type BuiltSite} from "./helpers/site.js";
import {serveStatic, type StaticServer} from "./helpers/static-server.js";

const RESULTS = join(ROOT, "test-results");
const SCREENSHOTS = join(RESULTS, "screenshots");
const LIVE = "stories260K";

declare global {
  interface Window {
    /** Set by the pages (docs/components/workbench.ts) once a live model exists. */
    lmw?: {model: {id: string} | undefined; runs: () => number};
  }
}

interface Measure {
  name: string;
  start: number;
  duration: number;
}
const report: {slider: Record<string, unknown>[]; prompt: Record<string, unknown>[]} = {slider: [], prompt: []};

/** Every page of a built site, as its URL path ("/", "/tokens"). */
function sitePages(dir: string): string[] {
  const pages: string[] = [];
  const visit = (folder: string) => {
    for (const entry of readdirSync(folder, {withFileTypes: true})) {
      if (entry.name.startsWith("_") || entry.name === "models" || entry.name === "embed") continue;
      const path = join(folder, entry.name);
      if (entry.isDirectory()) visit(path);
      else if (entry.name.endsWith(".html") && entry.name !== "404.html") {
        pages.push(
          (
            "/" +
            relative(dir, path)
              .split(sep)
              .join("/")
              .replace(/\.html$/, "")
          ).replace(/(^|\/)index$/, "$1")
        );
      }
    }
  };
  visit(dir);
  return pages.sort();
}

/** Types a model id into the page's model control and loads it ("Load"). */
async function chooseModel(w: WatchedPage, id: string): Promise<void> {
  const form = w.page.locator("form.lmw-model");
  await form.locator("input").fill(id);
  await form.locator("button").click();
}

/** stories260K live: the model control, then "Run live"; waits for the model and every cell. */
async function goLive(w: WatchedPage): Promise<void> {
  await chooseModel(w, LIVE);
  await w.page.locator("form.lmw-live input[type=checkbox]").check();
  await w.page.waitForFunction((id) => window.lmw?.model?.id === id, LIVE, {timeout: 60_000});
  await w.page.waitForSelector(".lmw-status[data-status=ready]");
  await settle(w);
  // The model answers from its worker: wait until no forward pass is still on its way.
  await quietModel(w.page);
}

const runs = (w: WatchedPage) => w.page.evaluate(() => window.lmw?.runs() ?? 0);
const now = (w: WatchedPage) => w.page.evaluate(() => performance.now());

/** The redraw measures since `since` (page time). */
const redraws = (w: WatchedPage, since: number) =>
  w.page.evaluate(
    (t) =>
      performance
        .getEntriesByType("measure")
        .filter((m) => m.name.startsWith("lmw:redraw:") && m.startTime >= t)
        .map((m) => ({name: m.name.slice("lmw:redraw:".length), start: m.startTime, duration: m.duration})),
    since
  ) as Promise<Measure[]>;

/** The end of the last forward pass: the page marks it when the answer of a call that ran the model arrives. */
const lastForwardEnd = (w: WatchedPage) =>
  w.page.evaluate(() => performance.getEntriesByName("lmw:forward:end").at(-1)?.startTime ?? NaN);

/** Sets an Observable range input (its number box) and tells the page. */
async function setRange(w: WatchedPage, label: string, value: number): Promise<void> {
  const box = w.page.getByLabel(label, {exact: true}).first();
  await box.fill(String(value));
  await box.dispatchEvent("input");
}

/** Types into an Observable text input and submits it. */
async function submitText(w: WatchedPage, label: string, text: string): Promise<void> {
  const box = w.page.getByLabel(label, {exact: true}).first();
  await box.fill(text);
  await box.press("Enter");
}

/** A prompt edit: one forward pass, then every view redraws; reports how long after the pass they finished. */
async function timePromptEdit(
  w: WatchedPage,
  page: string,
  edit: () => Promise<void>,
  views: string[]
): Promise<Measure[]> {
  const before = await runs(w);
  const since = await now(w);
  await edit();
  await w.page.waitForFunction((n) => (window.lmw?.runs() ?? 0) > n, before, {timeout: 60_000});
  await settle(w);
  const measures = await redraws(w, since);
  for (const view of views)
    expect(
      measures.map((m) => m.name),
      `${page}: ${view} redrew`
    ).toContain(view);
  const end = await lastForwardEnd(w);
  // Not a timing: the mark must be there, or the report below has no end to time the redraws from.
  expect(end, "the page marks the forward pass's end (lmw:forward:end)").toBeGreaterThan(since);
  const after = measures.filter((m) => m.start >= end);
  report.prompt.push({
    page,
    forwardPasses: (await runs(w)) - before,
    viewsRedrawn: [...new Set(measures.map((m) => m.name))],
    msFromForwardEndToLastRedraw: after.length ? Math.max(...after.map((m) => m.start + m.duration)) - end : null,
    redrawMs: Object.fromEntries(measures.map((m) => [m.name, Number(m.duration.toFixed(2))]))
  });
  return measures;
}

/** Moves a slider and waits for `views` to redraw; their redraw durations (ms) by view. */
async function moveSlider(
  w: WatchedPage,
  label: string,
  value: number,
  views: string[]
): Promise<Record<string, number>> {
  const since = await now(w);
  await setRange(w, label, value);
  await w.page.waitForFunction(
    ([t, names]) => {
      const seen = new Set(
        performance
          .getEntriesByType("measure")
          .filter((m) => m.startTime >= t)
          .map((m) => m.name)
      );
      return names.every((n) => seen.has(`lmw:redraw:${n}`));
    },
    [since, views] as const,
    {timeout: 30_000}
  );
  await settle(w);
  return Object.fromEntries((await redraws(w, since)).map((m) => [m.name, Number(m.duration.toFixed(2))]));
}

/**
 * A slider move: no forward pass. Reports the redraw durations of the move, the first since the page drew
 * (its code paths still cold), and of four more moves back and forth, as a reader dragging the slider makes.
 */
async function timeSlider(w: WatchedPage, page: string, label: string, value: number, views: string[]): Promise<void> {
  const previous = Number(await w.page.getByLabel(label, {exact: true}).first().inputValue());
  const before = await runs(w);
  const redrawMs = await moveSlider(w, label, value, views);
  const repeatedMs: Record<string, number>[] = [];
  if (previous !== value)
    for (const v of [previous, value, previous, value]) repeatedMs.push(await moveSlider(w, label, v, views));
  expect(await runs(w), `${page}: moving ${label} re-ran the model`).toBe(before);
  report.slider.push({page, control: `${label} → ${value}`, redrawMs, repeatedMs});
}

function expectClean(w: WatchedPage, allowed: RegExp[] = []): void {
  const errors = w.errors.filter((e) => !allowed.some((a) => a.test(e)));
  expect(errors, w.console.join("\n")).toEqual([]);
  expect(w.externalRequests).toEqual([]);
}

describe.skipIf(skipBrowserTests())("the lecture pages in chromium", () => {
  let site: BuiltSite;
  let server: StaticServer;
  let hub: HubServer;
  let browser: TestBrowser;
  let corrupt: string;
  let query: string;

  beforeAll(async () => {
    site = await buildSiteCopy();
    server = await serveStatic(site.dir);
    // A Hub with a good model and a corrupt one (its model.safetensors cut in half, header and all).
    corrupt = await mkdtemp(join(tmpdir(), "lmw-corrupt-"));
    for (const file of ["config.json", "tokenizer.json", "tokenizer_config.json"])
      await copyFile(join(fixtureDir(LIVE), file), join(corrupt, file));
    await writeFile(
      join(corrupt, "model.safetensors"),
      Buffer.from([0x40, 0, 0, 0, 0, 0, 0, 0, ...Buffer.from('{"model.embed_tokens.weight": {"dtype": "F32", "sha')])
    );
    hub = await startHubServer({"test-org/stories260K": fixtureDir(LIVE), "test-org/corrupt": corrupt});
    query = `?backend=wasm&hub=${encodeURIComponent(hub.endpoint)}`;
    browser = await launchBrowser({viewport: {width: 1200, height: 900}});
    await mkdir(SCREENSHOTS, {recursive: true});
  });

  afterAll(async () => {
    await mkdir(RESULTS, {recursive: true});
    await writeFile(
      join(RESULTS, "redraw-times.json"),
      JSON.stringify(
        {
          note: "performance measures lmw:redraw:* read from the pages (chromium, WASM, stories260K); goals: a slider redraw within 16 ms, a prompt edit's redraws within 100 ms of the forward pass finishing. Reported, not asserted.",
          ...report
        },
        null,
        2
      )
    );
    await browser?.close();
    await server?.close();
    await hub?.close();
    await site?.remove();
    if (corrupt) await rm(corrupt, {recursive: true, force: true});
  });

  test("every page loads, precomputed, with no console error and no request leaving the machine", async () => {
    const pages = sitePages(site.dir);
    expect(pages).toEqual(
      expect.arrayContaining(["/", "/generation", "/tokens", "/anatomy", "/context", "/mlp-attention", "/big-models"])
    );
    for (const path of pages) {
      const w = await browser.open(server.origin + path);
      try {
        await settle(w);
        expect(await w.page.locator(".observablehq--error").count(), `cell errors on ${path}`).toBe(0);
        await w.page.screenshot({
          path: join(SCREENSHOTS, `${path === "/" ? "index" : path.slice(1).replace(/\//g, "-")}.png`),
          fullPage: true
        });
        expectClean(w);
      } finally {
        await w.page.close();
      }
    }
    // onnxruntime-web's wasm, from the site itself: on WASM, its WASM build's alone (no WebGPU code).
    const wasms = server.requests.filter((r) => r.url.endsWith(".wasm"));
    expect(wasms[0]?.status).toBe(200);
    expect([...new Set(wasms.map((r) => r.url.split("/").pop()))]).toEqual(["ort-wasm-simd-threaded.wasm"]);
  }, 180_000);

  test("tokens: a new prompt updates the tokens, the top-k table and the plots (one forward pass)", async () => {
    const w = await browser.open(`${server.origin}/tokens${query}`);
    try {
      await settle(w);
      await goLive(w);
      await expect(w.page.locator(".lmw-status .lmw-backend").textContent()).resolves.toMatch(/^WASM \(\d+ threads?\)/);
      const tokensBefore = await w.page.locator(".tokens").first().textContent();
      await timePromptEdit(w, "tokens", () => submitText(w, "Prompt", "Lily and Ben went to the park to play"), [
        "tokens",
        "top-k",
        "distribution"
      ]);
      expect(await w.page.locator(".tokens").first().textContent()).not.toBe(tokensBefore);
      await expect(w.page.locator(".tokens").first().textContent()).resolves.toMatch(/^<s>1·Lily\d+·and/);
      await timeSlider(w, "tokens", "Top k", 5, ["top-k"]);
      await w.page.screenshot({path: join(SCREENSHOTS, "tokens-live.png"), fullPage: true});
      expectClean(w);
    } finally {
      await w.page.close();
    }
  }, 120_000);

  test("mlp-attention: layer and head sliders redraw the heatmap without a forward pass; a bad Hub id and a corrupt checkpoint keep the last results", async () => {
    const w = await browser.open(`${server.origin}/mlp-attention${query}`);
    try {
      await settle(w);
      await goLive(w);
      await timePromptEdit(w, "mlp-attention", () => submitText(w, "Prompt", "x is x & z is z & y is"), [
        "attention-head",
        "attention-heads"
      ]);
      await timeSlider(w, "mlp-attention", "Layer", 3, ["attention-head", "attention-heads"]);
      await timeSlider(w, "mlp-attention", "Head", 5, ["attention-head", "attention-heads"]);
      await timeSlider(w, "mlp-attention", "Layer", 1, ["attention-head", "attention-heads"]);
      const heatmap = await w.page.locator("svg").count();

      // A Hub id that does not exist (the loopback Hub answers 404): a readable message; the views stay.
      await chooseModel(w, "test-org/no-such-model");
      await w.page.waitForSelector(".lmw-status[data-status=error]", {timeout: 30_000});
      const message = await w.page.locator(".lmw-status .lmw-error").textContent();
      expect(message).toMatch(/no-such-model/);
      expect(message).not.toMatch(/TypeError|undefined|at \w+ \(/);
      await expect(w.page.locator(".lmw-status").textContent()).resolves.toMatch(/Still showing:.*stories260K/s);
      expect(await w.page.evaluate(() => window.lmw?.model?.id)).toBe(LIVE);
      expect(await w.page.locator("svg").count()).toBe(heatmap);
      await w.page.screenshot({path: join(SCREENSHOTS, "mlp-attention-bad-id.png"), fullPage: true});

      // A corrupt checkpoint: the same.
      await chooseModel(w, "test-org/corrupt");
      await w.page.waitForFunction(
        () =>
          document.querySelector(".lmw-status")?.textContent?.includes("corrupt") &&
          document.querySelector(".lmw-status[data-status=error]"),
        null,
        {timeout: 30_000}
      );
      const corruptMessage = await w.page.locator(".lmw-status .lmw-error").textContent();
      expect(corruptMessage).toMatch(/model\.safetensors/);
      expect(corruptMessage).not.toMatch(/TypeError|at \w+ \(/);
      expect(await w.page.evaluate(() => window.lmw?.model?.id)).toBe(LIVE);
      expect(await w.page.locator("svg").count()).toBe(heatmap);

      // The last good model still answers the sliders.
      await timeSlider(w, "mlp-attention", "Head", 2, ["attention-head"]);
      expectClean(w, [/404.*no-such-model/]); // the 404 itself is expected
    } finally {
      await w.page.close();
    }
  }, 150_000);

  test("context: the exercise takes the reader's sentence", async () => {
    const w = await browser.open(`${server.origin}/context${query}`);
    try {
      await settle(w);
      await goLive(w);
      await timePromptEdit(
        w,
        "context",
        () => submitText(w, "Your sentence", "The dog will break the toy if he bites it"),
        ["exercise"]
      );
      const options = await w.page.getByLabel("Token", {exact: true}).last().locator("option").allTextContents();
      // stories260K's 512-token vocabulary cuts "break" into ·b re a k.
      expect(options.map((o) => o.replace(/^\d+: /, "")).join("")).toBe(
        "<s>·The·dog·will·break·the·toy·if·he·bites·it"
      );
      await timeSlider(w, "context", "Layer", 2, []);
      await w.page.screenshot({path: join(SCREENSHOTS, "context-exercise.png"), fullPage: true});
      expectClean(w);
    } finally {
      await w.page.close();
    }
  }, 120_000);

  test("anatomy: the residual stream follows the layer without a forward pass", async () => {
    const w = await browser.open(`${server.origin}/anatomy${query}`);
    try {
      await settle(w);
      await goLive(w);
      // Both prompts are traced at once by two cells: no inline error (e.g. "Session already started").
      expect(await w.page.locator(".lmw-error-note").allInnerTexts()).toEqual(
        expect.not.arrayContaining([expect.stringMatching(/\S/)])
      );
      await timeSlider(w, "anatomy", "Layer", 3, ["residual"]);
      expectClean(w);
    } finally {
      await w.page.close();
    }
  }, 120_000);

  test("without COOP/COEP (GitHub Pages): live pages still run, single-threaded, and say so", async () => {
    const open = await serveStatic(site.dir, {crossOriginIsolation: false});
    try {
      const w = await browser.open(`${open.origin}/tokens${query}`);
      try {
        await settle(w);
        await goLive(w);
        expect(await w.page.evaluate(() => crossOriginIsolated)).toBe(false);
        await expect(w.page.locator(".lmw-status .lmw-backend").textContent()).resolves.toMatch(
          /WASM single-threaded: the page is not cross-origin isolated/
        );
        await timePromptEdit(w, "tokens (not isolated)", () => submitText(w, "Prompt", "Once upon a time"), [
          "tokens",
          "top-k"
        ]);
        await w.page.screenshot({path: join(SCREENSHOTS, "tokens-not-isolated.png"), fullPage: true});
        expectClean(w);
      } finally {
        await w.page.close();
      }
    } finally {
      await open.close();
    }
  }, 120_000);
});
