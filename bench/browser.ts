/**
 * The Chromium rows of `npm run bench`: bench/pages/bench.ts bundled by esbuild, served cross-origin isolated
 * (COOP/COEP, so WASM runs on navigator.hardwareConcurrency threads) from a loopback static server, models
 * from a loopback Hub: stories260K (the fixture's weights), SmolLM2-135M, gpt2, Qwen2.5-0.5B and gemma-3-270m
 * (their configs and tokenizers from data/models, `init: "random"`). All timing is done in the page
 * (performance.now()).
 *
 * Each model runs in a fresh browser, so that the renderer's peak resident memory (VmHWM in
 * /proc/<pid>/status, the renderer processes of that browser) is that model's: like Node's maxRSS it covers
 * the JS heap, the WASM memory and onnxruntime's arenas; it leaves out the browser and GPU processes.
 * WebGPU runs only where the adapter is a real GPU: SwiftShader (software) timings mean nothing.
 */
import {build} from "esbuild";
import {copyFile, mkdtemp, readFile, readdir, rm, symlink} from "node:fs/promises";
import {tmpdir} from "node:os";
import {join} from "node:path";
import {fileURLToPath} from "node:url";
import type {Page} from "playwright-core";
import {launchBrowser, type TestBrowser} from "../test/helpers/browser.js";
import {startHubServer} from "../test/helpers/hub-server.js";
import {serveStatic} from "../test/helpers/static-server.js";
import type {Measured} from "./procedure.js";
import type {MemoryStages} from "./one.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DATA_MODELS = join(ROOT, "data", "models");

export type BrowserRuntime = "chromium-wasm" | "chromium-webgpu";

export interface BrowserFloor {
  kind: "floor";
  runtime: BrowserRuntime;
  matmulN: number;
  flopRate: number;
  bandwidth: number;
}

export interface BrowserModelResult extends Measured {
  kind: "model";
  model: string;
  runtime: BrowserRuntime;
  /** The page's sentence: backend and threads. */
  backend: string;
  graphBuildMs: number;
  sessionCreateMs: number;
  /** Peak resident memory of the browser's renderer processes (VmHWM), MB, at the end. */
  peakRssMb: number;
  /** …and after each stage, as bench/one.ts measures Node's. */
  memory: MemoryStages;
  /** V8 heap of the page after the run (CDP Performance.getMetrics JSHeapTotalSize), MB. */
  jsHeapTotalMb: number;
}

export interface BrowserBench {
  floors: BrowserFloor[];
  results: BrowserModelResult[];
  /** Lines to print and to put on the page: the WebGPU verdict, what failed. */
  notes: string[];
  /** e.g. "Chrome/131.0.6778.85", from the page's user agent. */
  chromium: string;
  date: string;
}

const MODELS: {model: string; init: "checkpoint" | "random"; dir: string}[] = [
  {model: "stories260K", init: "checkpoint", dir: join(DATA_MODELS, "stories260K")},
  {model: "SmolLM2-135M", init: "random", dir: join(DATA_MODELS, "HuggingFaceTB", "SmolLM2-135M")},
  {model: "gpt2", init: "random", dir: join(DATA_MODELS, "gpt2")},
  // The bigger checkpoint the model box offers (494M parameters, a 151,936-token vocabulary): does it live in a tab?
  {model: "Qwen2.5-0.5B", init: "random", dir: join(DATA_MODELS, "Qwen", "Qwen2.5-0.5B")},
  // The other one: 268M parameters, 170M of them a 262,144-token embedding (its head), bf16 on the Hub.
  {model: "gemma-3-270m", init: "random", dir: join(DATA_MODELS, "google", "gemma-3-270m")}
];

/** A fresh browser (its own profile, so its renderers are its own) on the bench page, once the page is ready. */
async function launch(url: string, webgpu: boolean): Promise<TestBrowser & {page: Page}> {
  const browser = await launchBrowser({webgpu, optimizedWasm: true});
  const {page} = await browser.open(url);
  await page.waitForFunction(() => "bench" in window);
  return {...browser, page};
}

/** The renderer processes of the chromium started with `userDataDir`. */
async function rendererPids(userDataDir: string): Promise<number[]> {
  const procs: {pid: number; ppid: number; cmdline: string}[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const cmdline = (await readFile(`/proc/${name}/cmdline`, "utf8")).replaceAll("\0", " ");
      procs.push({pid: Number(name), ppid, cmdline});
    } catch {
      // gone
    }
  }
  const ours = new Set(
    procs
      .filter((p) => p.cmdline.includes(`--user-data-dir=${userDataDir}`) && !p.cmdline.includes("--type="))
      .map((p) => p.pid)
  );
  for (let grew = true; grew;) {
    grew = false;
    for (const p of procs) if (ours.has(p.ppid) && !ours.has(p.pid)) (ours.add(p.pid), (grew = true));
  }
  return procs.filter((p) => ours.has(p.pid) && p.cmdline.includes("--type=renderer")).map((p) => p.pid);
}

/**
 * The peak resident memory of the renderer processes of the chromium started with `userDataDir`, MB, from the start
 * of the watch: their VmHWM, and their VmRSS sampled every 100 ms — Chromium resets a renderer's VmHWM from time to
 * time (`/proc/self/clear_refs`, for its own memory metrics: seen here falling from 1,550 to 1,409 MB), so the
 * samples keep a peak that a reset would lose.
 */
function watchRenderers(userDataDir: string): {peakMb(): Promise<number>; stop(): void} {
  let peakKb = 0;
  let pids: number[] = [];
  const sample = async (field: "VmHWM" | "VmRSS") => {
    for (const pid of pids) {
      const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
      peakKb = Math.max(peakKb, Number(status.match(new RegExp(`${field}:\\s+(\\d+) kB`))?.[1] ?? 0));
    }
  };
  let busy = false;
  let scanned = 0;
  const timer = setInterval(async () => {
    if (busy) return;
    busy = true;
    // Finding the renderers reads all of /proc: every 2 s, not on every sample (the samples must not take the CPU).
    if (performance.now() - scanned > 2000) ((pids = await rendererPids(userDataDir)), (scanned = performance.now()));
    await sample("VmRSS");
    busy = false;
  }, 100);
  return {
    async peakMb() {
      pids = await rendererPids(userDataDir);
      await sample("VmHWM");
      return (peakKb * 1024) / 1e6;
    },
    stop: () => clearInterval(timer)
  };
}

async function jsHeapTotalMb(page: Page): Promise<number> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Performance.enable");
  const {metrics} = await cdp.send("Performance.getMetrics");
  await cdp.detach();
  return (metrics.find((m) => m.name === "JSHeapTotalSize")?.value ?? 0) / 1e6;
}

/** LMW_BENCH_LOAD_OPTIONS='{"oneGraph": false}': more `loadModel` options for every model, to compare layouts. */
const extraOptions = JSON.parse(process.env.LMW_BENCH_LOAD_OPTIONS ?? "{}") as Record<string, unknown>;

export async function runBrowserBench(
  options: {quick?: boolean; log?: (line: string) => void} = {}
): Promise<BrowserBench> {
  const log = options.log ?? ((line: string) => console.log(line));
  const quick = options.quick ?? false;
  const dir = await mkdtemp(join(tmpdir(), "lmw-bench-page-"));
  await build({
    entryPoints: [join(ROOT, "bench", "pages", "bench.ts")],
    outdir: dir,
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    external: ["onnxruntime-web", "onnxruntime-web/wasm", "onnxruntime-web/webgpu", "onnxruntime-node"],
    logLevel: "error"
  });
  await copyFile(join(ROOT, "bench", "pages", "bench.html"), join(dir, "bench.html"));
  await symlink(join(ROOT, "node_modules", "onnxruntime-web", "dist"), join(dir, "ort"));
  const site = await serveStatic(dir);
  const hub = await startHubServer(Object.fromEntries(MODELS.map((m) => [`bench/${m.model}`, m.dir])));
  const url = `${site.origin}/bench.html`;
  const out: BrowserBench = {floors: [], results: [], notes: [], chromium: "unknown", date: new Date().toISOString()};

  try {
    // WebGPU: only a real GPU's timings mean anything.
    const probe = await launch(url, true);
    const adapter = await probe.page.evaluate(
      () => (window as any).bench.adapter() as Promise<Record<string, string> | null>
    );
    out.chromium =
      (await probe.page.evaluate(() => navigator.userAgent)).match(/(?:HeadlessChrome|Chrome|Chromium)\/[\d.]+/)?.[0] ??
      "unknown";
    await probe.close();
    const runtimes: BrowserRuntime[] = ["chromium-wasm"];
    if (!adapter) out.notes.push("webgpu: no adapter in this chromium — skipped");
    else if (/swiftshader|google/i.test(Object.values(adapter).join(" ")))
      out.notes.push("webgpu: software adapter (SwiftShader), timings not meaningful — skipped");
    else runtimes.push("chromium-webgpu");
    for (const note of out.notes) log(note);

    for (const runtime of runtimes) {
      const webgpu = runtime === "chromium-webgpu";
      // LMW_BENCH_MODELS=SmolLM2-135M: only those models, as for the Node rows (bench/bench.ts).
      const only = process.env.LMW_BENCH_MODELS?.split(",").map((x) => x.trim());
      for (const m of MODELS.filter((x) => !only || only.includes(x.model))) {
        const t = performance.now();
        const b = await launch(url, webgpu);
        const watch = watchRenderers(b.userDataDir);
        try {
          // Peak memory after each stage, as bench/one.ts measures Node's: loaded, a trace of every hook point, the
          // lens + patching + steering; then the timed passes.
          const loaded = await b.page.evaluate(
            ([id, endpoint, init, gpu, extra]) => (window as any).bench.load(id, endpoint, init, gpu, extra),
            [`bench/${m.model}`, hub.endpoint, m.init, webgpu, extraOptions] as const
          );
          const afterLoadMb = await watch.peakMb();
          await b.page.evaluate(() => (window as any).bench.traceAll());
          const afterTraceMb = await watch.peakMb();
          await b.page.evaluate(() => (window as any).bench.analyses());
          const afterAnalysesMb = await watch.peakMb();
          const measured = await b.page.evaluate((q) => (window as any).bench.measure(q), quick);
          await b.page.evaluate(() => (window as any).bench.dispose());
          const {weightMb, ...r} = loaded;
          const result: BrowserModelResult = {
            kind: "model",
            model: m.model,
            runtime,
            ...r,
            ...measured,
            memory: {weightMb, afterLoadMb, afterTraceMb, afterAnalysesMb},
            peakRssMb: await watch.peakMb(),
            jsHeapTotalMb: await jsHeapTotalMb(b.page)
          };
          if (webgpu && !/^WebGPU/.test(result.backend)) throw new Error(`asked for WebGPU, ran on: ${result.backend}`);
          out.results.push(result);
          // The WASM limits, once, in the same kind of page (same threads).
          if (!webgpu && !out.floors.length) {
            const n = 1024;
            const f = await b.page.evaluate(([n, reps, bytes]) => (window as any).bench.floor(n, reps, bytes), [
              n,
              quick ? 3 : 7,
              128 * 2 ** 20
            ] as const);
            out.floors.push({kind: "floor", runtime, matmulN: n, flopRate: f.flopRate, bandwidth: f.bandwidth});
            log(
              `limit on chromium (wasm, ${f.threads} threads): MatMul ${n}³ fp32 ${(f.flopRate / 1e9).toFixed(1)} GFLOP/s; copy bandwidth ${(f.bandwidth / 1e9).toFixed(1)} GB/s (read + write)`
            );
          }
          log(
            `${m.model} on chromium (${webgpu ? "webgpu" : "wasm"}) [${result.backend}] … ${((performance.now() - t) / 1000).toFixed(0)} s`
          );
        } catch (e) {
          log(
            `${m.model} on chromium (${webgpu ? "webgpu" : "wasm"}) … failed: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}`
          );
          out.notes.push(`${m.model} on chromium (${webgpu ? "webgpu" : "wasm"}): failed`);
        } finally {
          watch.stop();
          await b.close();
        }
      }
    }
  } finally {
    await site.close();
    await hub.close();
    await rm(dir, {recursive: true, force: true});
  }
  return out;
}
