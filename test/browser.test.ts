/**
 * The built site's engine in Debian's chromium: the offline build (the run's shared one, test/helpers/site.ts) ships
 * onnxruntime-web's wasm and nothing from a CDN; the engine check page runs onnxruntime-web on WASM (multi-threaded
 * when cross-origin isolated, single-threaded and saying so when not) and on WebGPU with WASM's numbers; the pages'
 * worker generates on WebGPU's lean decode graph. No console errors, no request leaving 127.0.0.1. That every page
 * loads with no console error is test/e2e.test.ts's first check, on the same build.
 */
import {existsSync, readdirSync, readFileSync} from "node:fs";
import {mkdir} from "node:fs/promises";
import {createServer, type Server, type ServerResponse} from "node:http";
import type {AddressInfo} from "node:net";
import {join} from "node:path";
import {afterAll, beforeAll, describe, expect, test} from "vitest";
import {referenceForward} from "../docs/components/tiny-onnx.js";
import {hasChromium, launchBrowser, quietModel, settle, type TestBrowser, type WatchedPage} from "./helpers/browser.js";
import {serveStatic, type StaticServer} from "./helpers/static-server.js";
import {buildSiteCopy, type BuiltSite} from "./helpers/site.js";

declare global {
  interface Window {
    /** Set by the pages (docs/components/workbench.ts) once a live model exists. */
    lmw?: {model: {id: string} | undefined; runs: () => number};
  }
}

const ROOT = join(import.meta.dirname, "..");
const SCREENSHOTS = join(ROOT, "test-results", "screenshots");

/** Whether the page's browser gives a WebGPU adapter (this chromium: SwiftShader's, with --enable-unsafe-webgpu). */
function hasAdapter(w: WatchedPage): Promise<boolean> {
  return w.page.evaluate(async () => {
    const gpu = (navigator as unknown as {gpu?: {requestAdapter(): Promise<unknown>}}).gpu;
    return gpu ? (await gpu.requestAdapter()) !== null : false;
  });
}

interface OrtResult {
  backend: string;
  threads: number;
  x: number[];
  logits: number[];
  probs: number[];
  reason: string;
  isolated: boolean;
}

async function readResult(w: WatchedPage): Promise<OrtResult> {
  await w.page.waitForSelector("#ort-result", {timeout: 60_000});
  await settle(w);
  return w.page.evaluate(() => {
    const result = document.querySelector<HTMLElement>("#ort-result")!.dataset;
    return {
      backend: result.backend!,
      threads: Number(result.threads),
      x: JSON.parse(result.x!),
      logits: JSON.parse(result.logits!),
      probs: JSON.parse(result.probs!),
      reason: document.querySelector("#ort-backend")?.textContent ?? "",
      isolated: crossOriginIsolated
    };
  });
}

function expectClose(actual: number[], expected: number[], tolerance: number): void {
  expect(actual).toHaveLength(expected.length);
  actual.forEach((a, i) =>
    expect(Math.abs(a - expected[i]!), `element ${i}: ${a} vs ${expected[i]}`).toBeLessThan(tolerance)
  );
}

function expectClean(w: WatchedPage): void {
  expect(w.errors, w.console.join("\n")).toEqual([]);
  expect(w.externalRequests).toEqual([]);
}

describe.skipIf(!hasChromium())("the built site in chromium", () => {
  let site: BuiltSite;
  let server: StaticServer;
  let browser: TestBrowser;

  beforeAll(async () => {
    site = await buildSiteCopy();
    server = await serveStatic(site.dir);
    browser = await launchBrowser();
    await mkdir(SCREENSHOTS, {recursive: true});
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  test("the build needs no network and ships onnxruntime-web's wasm", () => {
    const buildLog = site.log;
    expect(buildLog).not.toMatch(/^npm:/m); // Framework prints "npm:<name> →" when it asks the registry
    expect(buildLog).not.toMatch(/jsdelivr|unable to fetch/);
    expect(existsSync(join(site.dir, "_npm")), "nothing comes from jsDelivr").toBe(false);
    const ort = readdirSync(join(site.dir, "_node")).find((d) => d.startsWith("onnxruntime-web@"));
    expect(ort).toBeDefined();
    // The WASM build's, the native WebGPU provider's and JSEP's (?backend=webgpu-jsep).
    expect(readdirSync(join(site.dir, "_node", ort!))).toEqual(
      expect.arrayContaining([
        "ort-wasm-simd-threaded.wasm",
        "ort-wasm-simd-threaded.asyncify.wasm",
        "ort-wasm-simd-threaded.jsep.wasm"
      ])
    );
  });

  let wasmProbs: number[] | undefined;

  test("engine check: onnxruntime-web on WASM, multi-threaded when cross-origin isolated", async () => {
    const w = await browser.open(`${server.origin}/engine?backend=wasm`);
    try {
      const result = await readResult(w);
      expect(result.isolated).toBe(true);
      expect(result.backend).toBe("wasm");
      const cores = await w.page.evaluate(() => navigator.hardwareConcurrency);
      expect(result.threads).toBe(cores);
      expect(result.reason).toMatch(/^WASM \(\d+ threads?\): WebGPU was not asked for/);
      const reference = referenceForward(result.x);
      expectClose(result.logits, reference.logits, 1e-5);
      expectClose(result.probs, reference.probs, 1e-5);
      wasmProbs = result.probs;

      // Reactivity: a new input scale reruns the model.
      const number = w.page.locator("form input[type=number]");
      await number.fill("-2");
      await number.dispatchEvent("input");
      await w.page.waitForFunction(
        () => JSON.parse(document.querySelector<HTMLElement>("#ort-result")!.dataset.x!)[0] === -2
      );
      const moved = await readResult(w);
      expectClose(moved.probs, referenceForward(moved.x).probs, 1e-5);
      await w.page.screenshot({path: join(SCREENSHOTS, "index-wasm.png"), fullPage: true});
      expectClean(w);
    } finally {
      await w.page.close();
    }
  });

  test("engine check: onnxruntime-web on WebGPU gives WASM's numbers", async (context) => {
    // ?backend=webgpu: this machine's adapter is SwiftShader, which "auto" leaves for WASM.
    const w = await browser.open(`${server.origin}/engine?backend=webgpu`);
    try {
      const adapter = await hasAdapter(w);
      const result = await readResult(w);
      expectClean(w);
      if (!adapter) {
        expect(result.backend).toBe("wasm");
        expect(result.reason).toMatch(/navigator\.gpu/);
        context.skip("this chromium has no WebGPU adapter; the page fell back to WASM and said why");
      }
      expect(result.backend).toBe("webgpu");
      expect(result.reason).toMatch(/^WebGPU \(native provider\): adapter /);
      expectClose(result.probs, referenceForward(result.x).probs, 1e-5);
      if (wasmProbs) expectClose(result.probs, wasmProbs, 1e-5);
    } finally {
      await w.page.close();
    }
  });

  test("generation on WebGPU: the page's worker generates stories260K's reference tokens on the lean decode graph", async (context) => {
    const w = await browser.open(`${server.origin}/tokens?backend=webgpu`);
    try {
      const adapter = await hasAdapter(w);
      if (!adapter) context.skip("this chromium has no WebGPU adapter");
      const form = w.page.locator("form.lmw-model");
      await form.locator("input").fill("stories260K");
      await form.locator("button").click();
      await w.page.locator("form.lmw-live input[type=checkbox]").check();
      await w.page.waitForFunction(() => window.lmw?.model?.id === "stories260K", undefined, {timeout: 180_000});
      // The live cells' passes first.
      await quietModel(w.page);
      const gen = JSON.parse(readFileSync(join(ROOT, "test", "fixtures", "stories260K", "reference.json"), "utf8"))
        .generations[0] as {input_ids: number[]; new_ids: number[]};
      const result = await w.page.evaluate(async (ids) => {
        const model = window.lmw!.model as unknown as {
          backend: string;
          generate(p: number[], o: object): Promise<{new_ids: number[]}>;
        };
        const before = window.lmw!.runs();
        const out = await model.generate(ids, {maxNewTokens: 20, stopAtEos: false});
        return {backend: model.backend, ids: out.new_ids, runs: window.lmw!.runs() - before};
      }, gen.input_ids);
      expect(result.backend).toMatch(/^WebGPU \(native provider\)/);
      expect(result.ids).toEqual(gen.new_ids);
      // On the traced graph each of the 20 steps is a forward pass; on the lean graph none is (a live cell may
      // still make one meanwhile).
      expect(result.runs).toBeLessThanOrEqual(1);
      expect(w.errors, w.console.join("\n")).toEqual([]);
    } finally {
      await w.page.close();
    }
  });

  test("engine check without COOP/COEP: still runs, single-threaded, and says so", async () => {
    const open = await serveStatic(site.dir, {crossOriginIsolation: false});
    try {
      const w = await browser.open(`${open.origin}/engine?backend=wasm`);
      try {
        const result = await readResult(w);
        expect(result.isolated).toBe(false);
        expect(result.backend).toBe("wasm");
        expect(result.threads).toBe(1);
        expect(result.reason).toMatch(/^WASM single-threaded: the page is not cross-origin isolated/);
        expectClose(result.probs, referenceForward(result.x).probs, 1e-5);
        await w.page.screenshot({path: join(SCREENSHOTS, "index-not-isolated.png"), fullPage: true});
        expectClean(w);
      } finally {
        await w.page.close();
      }
    } finally {
      await open.close();
    }
  });

  test("the tests' error watch: what the browser cancels when the tab moves on is no error, a refused request is", async () => {
    // A page that starts a request its server never answers, and one that asks a port where nothing listens.
    let asked: () => void = () => {};
    const hanging = new Promise<void>((resolve) => (asked = resolve));
    const pending = new Set<ServerResponse>();
    const closed = await listen(createServer((_, response) => response.destroy()));
    const nobody = port(closed);
    closed.close();
    const pages = createServer((request, response) => {
      if (request.url === "/hang") return void (pending.add(response), asked());
      const script = request.url === "/refused" ? `fetch("http://127.0.0.1:${nobody}/x")` : `fetch("/hang")`;
      response.writeHead(200, {"content-type": "text/html"}).end(`<!doctype html><script>${script}</script>`);
    });
    const origin = `http://127.0.0.1:${port(await listen(pages))}`;
    try {
      const w = await browser.open(`${origin}/`);
      try {
        await hanging;
        await w.page.goto(`${origin}/next`);
        await w.page.goto(`${origin}/refused`);
        // The refused request is reported (with the console's line and the page's rejected fetch); the
        // hanging one, cancelled when the tab left its page, is not.
        const refused = `request failed: http://127.0.0.1:${nobody}/x (net::ERR_CONNECTION_REFUSED)`;
        await expect.poll(() => w.errors, {timeout: 10_000}).toContain(refused);
        expect(w.errors.filter((e) => e.includes("/hang"))).toEqual([]);
      } finally {
        await w.page.close();
      }
    } finally {
      for (const response of pending) response.destroy();
      pages.close();
    }
  });
});

/** `server` listening on a free port of 127.0.0.1. */
function listen(server: Server): Promise<Server> {
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

const port = (server: Server) => (server.address() as AddressInfo).port;
