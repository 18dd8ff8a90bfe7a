/**
 * Embedding: examples/embed.html — a plain page outside Framework — imports the built site's exported
 * modules (embed/runtime.js, embed/next-token.js, embed/attention.js), mounts two cells with
 * `new Runtime().module(define, Inspector.into(element))`, and steers them with `module.redefine`. The model
 * is stories260K as the site ships it (offline).
 */
import {mkdir, mkdtemp, rm, symlink} from "node:fs/promises";
import {tmpdir} from "node:os";
import {join} from "node:path";
import {afterAll, beforeAll, describe, expect, test} from "vitest";
import {launchBrowser, skipBrowserTests, type TestBrowser, type WatchedPage} from "./helpers/browser.js";
import {buildSiteCopy, ROOT, type BuiltSite} from "./helpers/site.js";
import {serveStatic, type StaticServer} from "./helpers/static-server.js";

const SCREENSHOTS = join(ROOT, "test-results", "screenshots");

/** What the page's two cells show, read from their figures. */
async function shown(w: WatchedPage) {
  return w.page.evaluate(() => {
    const next = document.querySelector<HTMLElement>("#next-token figure.lmw-next-token");
    const attention = document.querySelector<HTMLElement>("#attention figure.lmw-attention");
    return {
      prompt: next?.dataset.prompt,
      top: next?.dataset.top,
      layer: attention?.dataset.layer,
      tokens: attention?.dataset.tokens,
      cells: attention?.querySelectorAll("svg [aria-label=cell] rect").length ?? 0
    };
  });
}

/** The forward passes the page's model has run (both cells share one model). */
const runs = (w: WatchedPage) =>
  w.page.evaluate(async () => {
    const cells = (window as any).cells;
    const [a, b] = await Promise.all([cells.nextToken.value("loaded"), cells.attention.value("loaded")]);
    if (a !== b) throw new Error("the two cells loaded two models");
    return a.runs as number;
  });

describe.skipIf(skipBrowserTests())("cells embedded in a plain page", () => {
  let site: BuiltSite;
  let root: string;
  let server: StaticServer;
  let browser: TestBrowser;

  beforeAll(async () => {
    site = await buildSiteCopy();
    // The page and the site side by side, as /examples/embed.html and /dist/.
    root = await mkdtemp(join(tmpdir(), "lmw-embed-"));
    await symlink(site.dir, join(root, "dist"));
    await symlink(join(ROOT, "examples"), join(root, "examples"));
    server = await serveStatic(root);
    browser = await launchBrowser();
    await mkdir(SCREENSHOTS, {recursive: true});
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await site?.remove();
    if (root) await rm(root, {recursive: true, force: true});
  });

  test("the site exports the cells as modules with a define", async () => {
    const w = await browser.open(`${server.origin}/examples/embed.html?backend=wasm`);
    try {
      // (A string, so that vitest leaves the browser's import() alone.)
      const exported = await w.page.evaluate(`(async () => {
        const names = async (path) => Object.keys(await import(path)).sort();
        return {runtime: await names("/dist/embed/runtime.js"), next: await names("/dist/embed/next-token.js"), attention: await names("/dist/embed/attention.js")};
      })()`);
      expect(exported).toEqual({runtime: ["Inspector", "Runtime"], next: ["define"], attention: ["define"]});
    } finally {
      await w.page.close();
    }
  });

  test("two cells render, and react to redefined inputs without needless forward passes", async () => {
    const w = await browser.open(`${server.origin}/examples/embed.html?backend=wasm`);
    try {
      await w.page.waitForSelector("#next-token figure.lmw-next-token svg", {timeout: 60_000});
      await w.page.waitForSelector("#attention figure.lmw-attention svg", {timeout: 60_000});
      const first = await shown(w);
      expect(first).toMatchObject({prompt: "Once upon a time, there was a little", layer: "2"});
      expect(first.top).toBeTruthy();
      expect(first.cells).toBeGreaterThan(0);
      await expect(w.page.locator("#next-token small").textContent()).resolves.toMatch(
        /^stories260K · trained weights · WASM/
      );
      const before = await runs(w);
      expect(before).toBe(2); // one forward pass per cell

      // A new layer re-slices the attention the model already returned: no forward pass.
      await w.page.evaluate(() => (window as any).cells.attention.redefine("layer", 4));
      await w.page.waitForSelector("#attention figure[data-layer='4']");
      expect(await runs(w)).toBe(before);

      // A new prompt: one forward pass, a new table.
      await w.page.evaluate(() => (window as any).cells.nextToken.redefine("prompt", "The cat sat on the"));
      await w.page.waitForSelector("#next-token figure[data-prompt='The cat sat on the']");
      expect(await runs(w)).toBe(before + 1);
      expect((await shown(w)).top).toBeTruthy();

      // The page's own control redefines the prompt the same way.
      await w.page.fill("#prompt", "Lily wanted to play with her");
      await w.page.dispatchEvent("#prompt", "change");
      await w.page.waitForSelector("#next-token figure[data-prompt='Lily wanted to play with her']");

      await w.page.evaluate(() => (window as any).cells.attention.redefine("prompt", "one two three"));
      // (While the cell recomputes its figure is briefly absent: wait for the new one, then for the run count.)
      await w.page.waitForFunction(() => {
        const figure = document.querySelector<HTMLElement>("#attention figure");
        return figure !== null && figure.dataset.tokens !== "13";
      });
      await expect.poll(() => runs(w)).toBe(before + 3);

      // A layer the model lacks: a readable error in the cell, not a crash.
      await w.page.evaluate(() => (window as any).cells.attention.redefine("layer", 9));
      await w.page.waitForSelector("#attention .observablehq--error");
      await expect(w.page.locator("#attention .observablehq--error").textContent()).resolves.toMatch(
        /layer 9: stories260K has layers 0 to 4/
      );

      await w.page.evaluate(() => (window as any).cells.attention.redefine("layer", 1));
      await w.page.waitForSelector("#attention figure[data-layer='1']");
      await w.page.screenshot({path: join(SCREENSHOTS, "embed.png"), fullPage: true});
      expect(w.errors, w.console.join("\n")).toEqual([]);
      expect(w.externalRequests).toEqual([]);
    } finally {
      await w.page.close();
    }
  }, 120_000);
});
