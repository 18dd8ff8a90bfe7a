/**
 * WebGPU and WASM agree, in a real browser: src/browser.ts's loadModel on a test-only page (test/pages/parity)
 * loads each fixture from a loopback Hub and traces the reference prompts; the tensors come back to Node and
 * are compared with reference.safetensors at the fixtures' tolerances. Chromium's WebGPU here is SwiftShader
 * (software: right answers, slow), so WebGPU checks every prompt of stories260K — the model the site runs live —
 * and a few of each mini fixture, and generates on stories260K (each new sequence length compiles new shaders).
 * WebGPU is the pages' build, onnxruntime-web's native provider; its models run one after another on one page.
 * Where WebGPU is missing or fails, loadModel falls back to WASM and says why.
 */
import {afterAll, beforeAll, describe, expect, test} from "vitest";
import {launchBrowser, skipBrowserTests, type TestBrowser, type WatchedPage} from "./helpers/browser.js";
import {buildTestPages, type TestPages} from "./helpers/bundle.js";
import {FIXTURES, RELATIVE, expectHookMatches, fixtureDir, readReference, relativeError} from "./helpers/fixtures.js";
import {readInterventions} from "./helpers/interventions.js";
import {startHubServer, type HubServer} from "./helpers/hub-server.js";
import {serveStatic, type StaticServer} from "./helpers/static-server.js";

type Backend = "wasm" | "webgpu";
interface Traced {
  ids: number[];
  tensors: Record<string, {shape: number[]; data: Float32Array}>;
}

/** Float32 tensors come from the page as base64 of their bytes. */
function decode(traced: {ids: number[]; tensors: Record<string, {shape: number[]; base64: string}>}): Traced {
  const tensors: Traced["tensors"] = {};
  for (const [hook, {shape, base64}] of Object.entries(traced.tensors)) {
    const bytes = Buffer.from(base64, "base64");
    tensors[hook] = {shape, data: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)};
  }
  return {ids: traced.ids, tensors};
}

const references = new Map<string, ReturnType<typeof readReference>>();
const reference = (name: string) => references.get(name) ?? references.set(name, readReference(name)).get(name)!;

/** The page's window.parity, called from Node. */
const parity = {
  load: (w: WatchedPage, id: string, endpoint: string, preferWebGPU: boolean) =>
    w.page.evaluate(([i, e, g]) => (window as any).parity.load(i, e, g) as Promise<string>, [
      id,
      endpoint,
      preferWebGPU
    ] as const),
  stepCounts: (w: WatchedPage, text: string, steps: number) =>
    w.page.evaluate(
      ([t, n]) =>
        (window as any).parity.stepCounts(t, n) as Promise<{
          step: {kernels: number; readbacks: number; readbackBytes: number};
          layers: number;
          lean: boolean;
        }>,
      [text, steps] as const
    ),
  trace: async (w: WatchedPage, text: string, hooks: string[]) =>
    decode(await w.page.evaluate(([t, h]) => (window as any).parity.trace(t, h), [text, hooks] as const)),
  generate: (w: WatchedPage, text: string, n: number) =>
    w.page.evaluate(
      ([t, k]) =>
        (window as any).parity.generate(t, k) as Promise<{input_ids: number[]; new_ids: number[]; text: string}>,
      [text, n] as const
    )
};

describe.skipIf(skipBrowserTests())("the engine in chromium: WebGPU and WASM against the references", () => {
  let pages: TestPages;
  let site: StaticServer;
  let hub: HubServer;
  let browser: TestBrowser;
  let hasAdapter = false;

  beforeAll(async () => {
    pages = await buildTestPages(["parity"]);
    site = await serveStatic(pages.dir);
    hub = await startHubServer(Object.fromEntries(FIXTURES.map((name) => [`test-org/${name}`, fixtureDir(name)])));
    browser = await launchBrowser();
    const w = await open();
    hasAdapter = await w.page.evaluate(async () => Boolean(await (navigator as any).gpu?.requestAdapter()));
    await w.page.close();
  });

  afterAll(async () => {
    await webgpuPage?.page.close();
    await browser?.close();
    await site?.close();
    await hub?.close();
    await pages?.remove();
  });

  /** A fresh page: onnxruntime-web sets up WebGPU once per page. */
  async function open(b = browser): Promise<WatchedPage> {
    const w = await b.open(`${site.origin}/parity.html`);
    await w.page.waitForFunction(() => "parity" in window);
    return w;
  }

  /**
   * One page for the native provider's models, one after another (each disposed before the next loads), with
   * stories260K held open beside them (`parity.hold`): its device, and the shaders compiled on it, serve them all,
   * as the provider's context does in Node (lean-decode.test.ts). SwiftShader compiles each shader in seconds.
   */
  let webgpuPage: WatchedPage | undefined;
  const sharedWebGPUPage = async () => {
    if (!webgpuPage) {
      webgpuPage = await open();
      // Held for the page's life: the provider's device, and the shaders compiled on it, outlive each model.
      const held = await webgpuPage.page.evaluate(
        ([e]) => (window as any).parity.hold("test-org/stories260K", e) as Promise<string>,
        [hub.endpoint] as const
      );
      expect(held).toMatch(/^WebGPU \(native provider\)/);
    }
    return webgpuPage;
  };

  function compare(name: string, prompt: ReturnType<typeof readReference>["json"]["prompts"][number], got: Traced) {
    const ref = reference(name);
    expect(got.ids).toEqual(prompt.input_ids);
    for (const hook of prompt.captured)
      expectHookMatches(hook, got.tensors[hook], ref.tensor(`p${prompt.index}.${hook}`));
    const logits = got.tensors["lm_head.output"].data;
    const last = ref.tensor(`p${prompt.index}.logits.last`).data;
    expect(relativeError(logits.subarray(logits.length - last.length), last), "logits").toBeLessThan(RELATIVE);
  }

  type Row = [Backend, (typeof FIXTURES)[number], number[], number];
  const plan: Row[] = [
    // backend, fixture, prompts traced, greedy generations checked: every prompt on WASM; on WebGPU (SwiftShader,
    // slow) every prompt of the trained stories260K first, then two of each mini fixture
    ...FIXTURES.map((name): Row => ["wasm", name, [0, 1, 2, 3], 1]),
    ["webgpu", "stories260K", [0, 1, 2, 3], 1],
    ...FIXTURES.filter((name) => name !== "stories260K").map((name): Row => ["webgpu", name, [0, 2], 0])
  ];

  test.for(plan)(
    "%s, %s: every captured hook point and the logits; greedy generations",
    {timeout: 180_000},
    async ([backend, name, prompts, generations], context) => {
      if (backend === "webgpu" && !hasAdapter) {
        if (process.env.CI)
          throw new Error("this chromium offers no WebGPU adapter (expected SwiftShader with --enable-unsafe-webgpu)");
        context.skip();
      }
      const ref = reference(name);
      const w = backend === "webgpu" ? await sharedWebGPUPage() : await open();
      const errorsBefore = w.errors.length;
      try {
        const sentence = await parity.load(w, `test-org/${name}`, hub.endpoint, backend === "webgpu");
        expect(sentence).toMatch(
          backend === "webgpu"
            ? /^WebGPU \(native provider\): adapter /
            : /^WASM \(\d+ threads?\): WebGPU was not asked for/
        );
        for (const i of prompts) {
          const prompt = ref.json.prompts[i];
          compare(name, prompt, await parity.trace(w, prompt.text, [...prompt.captured, "lm_head.output"]));
        }
        for (const gen of ref.json.generations.slice(0, generations)) {
          const result = await parity.generate(w, gen.text, 20);
          expect(result.input_ids).toEqual(gen.input_ids);
          expect(result.new_ids, gen.text).toEqual(gen.new_ids);
          expect(result.text).toBe(gen.generated_text);
        }
        if (backend === "webgpu" && name === "stories260K") {
          // The page's generation runs on the lean decode graph, as on the native provider in Node
          // (webgpu-counts.test.ts): 12 kernels a layer + 5 a step, one readback of the next id.
          const counts = await parity.stepCounts(w, ref.json.generations[0].text, 2);
          expect(counts.lean).toBe(true);
          expect(counts.step.kernels).toBeLessThanOrEqual(12 * counts.layers + 5);
          expect(counts.step.readbacks).toBe(1);
          expect(counts.step.readbackBytes).toBeLessThanOrEqual(64);
        }
        expect(w.errors.slice(errorsBefore), w.console.join("\n")).toEqual([]);
      } finally {
        if (w !== webgpuPage) await w.page.close();
      }
    }
  );

  test("webgpu on the JSEP build (?backend=webgpu-jsep), mini-llama: its own .wasm; every captured hook point and the logits", async (context) => {
    if (!hasAdapter) {
      if (process.env.CI)
        throw new Error("this chromium offers no WebGPU adapter (expected SwiftShader with --enable-unsafe-webgpu)");
      context.skip();
    }
    const w = await open();
    try {
      const sentence = await w.page.evaluate(
        ([i, e]) => (window as any).parity.load(i, e, true, "jsep") as Promise<string>,
        ["test-org/mini-llama", hub.endpoint] as const
      );
      expect(sentence).toMatch(/^WebGPU \(JSEP\): adapter /);
      expect(site.requests.some((r) => r.url.endsWith("/ort-wasm-simd-threaded.jsep.wasm") && r.status === 200)).toBe(
        true
      );
      const prompt = reference("mini-llama").json.prompts[0];
      compare("mini-llama", prompt, await parity.trace(w, prompt.text, [...prompt.captured, "lm_head.output"]));
      expect(w.errors, w.console.join("\n")).toEqual([]);
    } finally {
      await w.page.close();
    }
  }, 180_000);

  test.for([
    ["wasm", "stories260K"],
    ["wasm", "mini-gemma3"],
    ["webgpu", "stories260K"]
  ] as [Backend, string][])(
    "%s, %s: the interventions' references — logit lens, patching sweeps, head ablation, steering",
    {timeout: 300_000},
    async ([backend, name], context) => {
      if (backend === "webgpu" && !hasAdapter) {
        if (process.env.CI)
          throw new Error("this chromium offers no WebGPU adapter (expected SwiftShader with --enable-unsafe-webgpu)");
        context.skip();
      }
      const ref = readInterventions(name);
      const w = backend === "webgpu" ? await sharedWebGPUPage() : await open();
      const errorsBefore = w.errors.length;
      try {
        const sentence = await parity.load(w, `test-org/${name}`, hub.endpoint, backend === "webgpu");
        expect(sentence).toMatch(backend === "webgpu" ? /^WebGPU \(native provider\): adapter / : /^WASM/);
        const cases = Object.fromEntries(ref.json.cases.map((c) => [c.case, c]));
        const got = await w.page.evaluate((c) => (window as any).parity.interventions(c), cases);
        const floats = (b64: string) => {
          const bytes = Buffer.from(b64, "base64");
          return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
        };
        expect(got.lensIds).toEqual(Array.from(ref.tensor("lens.top10_ids").data));
        expect(relativeError(floats(got.lensLogprobs), ref.tensor("lens.top10_logprobs").data)).toBeLessThan(RELATIVE);
        for (const kind of ["resid", "attn", "mlp"]) {
          expect(
            relativeError(floats(got.patches[kind]), ref.tensor(`patch.${kind}.tracked_logits`).data),
            kind
          ).toBeLessThan(RELATIVE);
        }
        expect(relativeError(floats(got.ablation), ref.tensor("ablate_head.tracked_logits").data)).toBeLessThan(
          RELATIVE
        );
        expect(got.steered).toEqual(cases.steer.generations[0].new_ids);
        expect(w.errors.slice(errorsBefore), w.console.join("\n")).toEqual([]);
      } finally {
        if (w !== webgpuPage) await w.page.close();
      }
    }
  );

  test("WebGPU whose device cannot be created: the session falls back to WASM, says so, and is right", async (context) => {
    if (!hasAdapter) context.skip();
    const w = await open();
    try {
      // An adapter that exists but refuses to give a device, as a blocklisted or lost GPU does.
      await w.page.evaluate(() => {
        const gpu = (navigator as any).gpu;
        const real = gpu.requestAdapter.bind(gpu);
        gpu.requestAdapter = async (options: unknown) => {
          const adapter = await real(options);
          adapter.requestDevice = () => Promise.reject(new Error("no device for this test"));
          return adapter;
        };
      });
      const sentence = await parity.load(w, "test-org/stories260K", hub.endpoint, true);
      expect(sentence).toMatch(/^WASM: the WebGPU session failed \(.+\)/);
      const prompt = reference("stories260K").json.prompts[3];
      compare("stories260K", prompt, await parity.trace(w, prompt.text, [...prompt.captured, "lm_head.output"]));
      expect(await w.page.locator("#status").textContent()).toBe(sentence);
    } finally {
      await w.page.close();
    }
  }, 120_000);

  test("a browser without a WebGPU adapter runs on WASM and says why", async () => {
    const plain = await launchBrowser({webgpu: false});
    try {
      const w = await open(plain);
      const sentence = await parity.load(w, "test-org/stories260K", hub.endpoint, true);
      expect(sentence).toMatch(
        /^WASM \(\d+ threads?\): navigator\.gpu(\.requestAdapter\(\) gave no adapter| is missing)/
      );
      const prompt = reference("stories260K").json.prompts[3];
      compare("stories260K", prompt, await parity.trace(w, prompt.text, [...prompt.captured, "lm_head.output"]));
      expect(w.errors, w.console.join("\n")).toEqual([]);
    } finally {
      await plain.close();
    }
  }, 120_000);
});
