/**
 * Debian's chromium, driven by playwright-core, for the browser tests: a fresh profile per launch,
 * every request that leaves 127.0.0.1 refused and recorded, console errors collected per page.
 */
import {existsSync} from "node:fs";
import {mkdtemp, rm} from "node:fs/promises";
import {tmpdir} from "node:os";
import {join} from "node:path";
import {chromium, type BrowserContext, type Frame, type Page, type Request} from "playwright-core";

/** The chromium binary: $LMW_CHROMIUM, else Debian's /usr/bin/chromium. */
export const CHROMIUM_PATH = process.env.LMW_CHROMIUM ?? "/usr/bin/chromium";

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--enable-unsafe-webgpu"
];

export function hasChromium(): boolean {
  return existsSync(CHROMIUM_PATH);
}

export interface LaunchOptions {
  /** Arguments added after CHROMIUM_ARGS (e.g. "--disable-features=WebGPU"). */
  extraArgs?: string[];
  /** Viewport of every page (default 1000 × 800). */
  viewport?: {width: number; height: number};
  /** False leaves out --enable-unsafe-webgpu: navigator.gpu then gives no adapter (default true). */
  webgpu?: boolean;
  /**
   * Let V8 optimize WebAssembly as a reader's browser does (default false: `LIFTOFF_ONLY`). The bench sets it: it
   * times the code a reader runs.
   */
  optimizedWasm?: boolean;
}

/**
 * V8 compiles WebAssembly with its baseline compiler (Liftoff) and recompiles the functions that run hot with
 * TurboFan, on background threads. Every model a test page loads gets a fresh worker, hence a fresh onnxruntime
 * module (~20 MB of WebAssembly) whose hot functions TurboFan compiles again: on this 2-core machine that was most
 * of what the browser tests spent (one /tokens page on five families: 44 s of compile threads against 1.5 s, and
 * 48 s against 27 s for the whole test). The tests run tiny models, where baseline code is fast enough, and what
 * they check (numbers, counts, pages) does not depend on which compiler made the code.
 */
const LIFTOFF_ONLY = "--js-flags=--liftoff-only";

export interface WatchedPage {
  page: Page;
  /** Console messages of type "error", uncaught exceptions, failed requests, in order. */
  errors: string[];
  /** Console messages of every type, "type: text". */
  console: string[];
  /** URLs the page tried to reach outside 127.0.0.1 (each refused). */
  externalRequests: string[];
}

export interface TestBrowser {
  context: BrowserContext;
  /** The browser's profile folder: its processes carry `--user-data-dir=<it>` (the bench finds its renderers so). */
  userDataDir: string;
  /** Opens a new tab watching its console, navigates to url and waits for "load". */
  open(url: string): Promise<WatchedPage>;
  close(): Promise<void>;
}

/** Launches chromium with a fresh user-data-dir (removed on close). */
export async function launchBrowser(options: LaunchOptions = {}): Promise<TestBrowser> {
  const userDataDir = await mkdtemp(join(tmpdir(), "lmw-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      ...CHROMIUM_ARGS.filter((a) => options.webgpu !== false || a !== "--enable-unsafe-webgpu"),
      ...(options.optimizedWasm ? [] : [LIFTOFF_ONLY]),
      ...(options.extraArgs ?? [])
    ],
    viewport: options.viewport ?? {width: 1000, height: 800}
  });
  const watched = new WeakMap<Page, WatchedPage>();

  // Nothing leaves the machine: a request to any other host is aborted and recorded on its page.
  await context.route(
    (url) => url.hostname !== "127.0.0.1" && url.protocol !== "data:" && url.protocol !== "blob:",
    async (route, request) => {
      const frame = request.frame();
      const page = frame ? frame.page() : undefined;
      if (page) watched.get(page)?.externalRequests.push(request.url());
      await route.abort("blockedbyclient");
    }
  );

  async function open(url: string): Promise<WatchedPage> {
    const page = await context.newPage();
    const w: WatchedPage = {page, errors: [], console: [], externalRequests: []};
    watched.set(page, w);
    page.on("console", (message) => {
      w.console.push(`${message.type()}: ${message.text()}`);
      if (message.type() === "error") w.errors.push(`console.error: ${message.text()} (${message.location().url})`);
    });
    page.on("pageerror", (error) => w.errors.push(`uncaught: ${error.message}`));
    // The tab's navigations so far, and the navigation each request was made under: when a test goes to another
    // page, the browser cancels what the page it leaves was still loading (net::ERR_ABORTED), as it does for a
    // reader who clicks a link — those requests' document is gone, and their end is not an error of either page.
    let navigations = 0;
    const madeUnder = new WeakMap<Request, number>();
    page.on("request", (request) => {
      if (request.isNavigationRequest() && frameOf(request) === page.mainFrame()) navigations++;
      else madeUnder.set(request, navigations);
    });
    page.on("requestfailed", async (request) => {
      // Chromium reports ERR_ABORTED for requests that did succeed: every bodiless HEAD, and GETs whose body
      // the page read through response.body.getReader(). Those had a response, and the page saw it; a real
      // failure (refused, reset, blocked) has none, and a 4xx/5xx is reported below.
      if (request.failure()?.errorText === "net::ERR_ABORTED") {
        if ((madeUnder.get(request) ?? navigations) < navigations) return;
        if (await request.response().catch(() => null)) return;
      }
      w.errors.push(`request failed: ${request.url()} (${request.failure()?.errorText ?? "?"})`);
    });
    page.on("response", (response) => {
      if (response.status() >= 400) w.errors.push(`HTTP ${response.status()}: ${response.url()}`);
    });
    await page.goto(url, {waitUntil: "load"});
    return w;
  }

  return {
    context,
    userDataDir,
    open,
    async close() {
      await context.close();
      await rm(userDataDir, {recursive: true, force: true});
    }
  };
}

/** The frame that made a request (none for a service worker's). */
function frameOf(request: Request): Frame | undefined {
  try {
    return request.frame();
  } catch {
    return undefined;
  }
}

/**
 * Browser tests skip where there is no chromium, except in CI (`CI` set), where a missing browser must fail
 * the run rather than pass it silently: use as `describe.skipIf(skipBrowserTests())`.
 */
export function skipBrowserTests(): boolean {
  return !hasChromium() && !process.env.CI;
}

/** A built page at rest: the network quiet and no Observable cell still loading or running. */
export async function settle(w: WatchedPage, timeout = 120_000): Promise<void> {
  await w.page.waitForLoadState("networkidle");
  await w.page.waitForFunction(
    () => document.querySelectorAll("observablehq-loading, .observablehq--running").length === 0,
    null,
    {timeout}
  );
}

/**
 * The page's live model at rest: its worker answers asynchronously, so wait until the count of forward passes it
 * has run (`window.lmw.runs()`, set by docs/components/workbench.ts) holds still over three looks.
 */
export async function quietModel(page: WatchedPage["page"]): Promise<void> {
  let last = -1;
  for (let same = 0; same < 3;) {
    const now = await page.evaluate(() => (window as unknown as {lmw?: {runs(): number}}).lmw?.runs() ?? 0);
    same = now === last ? same + 1 : 0;
    last = now;
    await page.waitForTimeout(250);
  }
}

/** The text of every cell that shows an error. */
export const cellErrors = (w: WatchedPage): Promise<string[]> =>
  w.page.locator(".observablehq--error").allTextContents();
