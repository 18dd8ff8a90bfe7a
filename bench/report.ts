/** The benchmark's results as a Markdown table, and the results section of `docs/performance.md`. */
import type {FloorResult, ModelResult} from "./one.js";
import type {BrowserBench, BrowserFloor, BrowserModelResult} from "./browser.js";
import {isWebGPU} from "../src/node.js";
import {floorMs} from "./measure.js";

export type AnyResult = ModelResult | BrowserModelResult;
export type AnyFloor = FloorResult | BrowserFloor;
export type RuntimeKey = AnyResult["runtime"];

export const RUNTIME_NAMES: Record<RuntimeKey, string> = {
  node: "onnxruntime-node",
  web: "onnxruntime-web (wasm, node)",
  webgpu: "onnxruntime-web (webgpu, node)",
  "webgpu-native": "onnxruntime-web (webgpu native EP, node)",
  "chromium-wasm": "chromium (wasm)",
  "chromium-webgpu": "chromium (webgpu)"
};

export function markdownTable(results: AnyResult[], floors: Map<string, AnyFloor>): string {
  const head = [
    "model",
    "runtime",
    "params",
    "graph build ms",
    "session ms",
    "fwd 10 tok ms (× floor)",
    "all hooks 10 tok ms (× logits)",
    "fwd 128 tok ms (× floor)",
    "all hooks 128 tok ms (× logits)",
    "gen KV tok/s",
    "gen no-KV tok/s (KV ×)",
    "peak MB"
  ];
  const lines = [`| ${head.join(" | ")} |`, `|${head.map((_, i) => (i < 2 ? " --- " : " ---: ")).join("|")}|`];
  for (const r of results) {
    const f = floors.get(r.runtime);
    const cell = (tokens: number) => {
      const fw = r.forward.find((x) => x.tokens === tokens) ?? r.forward[r.forward.length - 1];
      const ratio = f ? ` (${(fw.logitsMs / floorMs(fw, f.flopRate, f.bandwidth)).toFixed(2)}×)` : "";
      const note = fw.tokens !== tokens ? ` [${fw.tokens} tok]` : "";
      return [
        `${ms(fw.logitsMs)}${ratio}${note}`,
        `${ms(fw.allHooksMs)} (${(fw.allHooksMs / fw.logitsMs).toFixed(2)}×)`
      ];
    };
    const g = r.generate;
    lines.push(
      `| ${[
        r.model,
        RUNTIME_NAMES[r.runtime],
        params(r.parameters),
        ms(r.graphBuildMs),
        ms(r.sessionCreateMs),
        ...cell(10),
        ...cell(128),
        g.kvTokensPerS.toFixed(1),
        `${g.noKvTokensPerS.toFixed(1)} (${(g.kvTokensPerS / g.noKvTokensPerS).toFixed(1)}×)${g.sameTokens ? "" : " DIFFERENT TOKENS"}`,
        `${r.peakRssMb.toFixed(0)}${r.runtime.startsWith("chromium") ? "¹" : ""}`
      ].join(" | ")} |`
    );
  }
  return lines.join("\n");
}

/**
 * Memory as one model is used (issue 21), per (model, runtime) that measured it: the process's peak after load,
 * after a trace of every hook point, after the logit lens, a patching sweep and a steered generation; each peak
 * also as a multiple of the weights' bytes.
 */
export function memoryTable(results: AnyResult[]): string {
  const head = [
    "model",
    "runtime",
    "weights MB",
    "peak after load MB",
    "after trace of every hook MB",
    "after lens + patching + steering MB"
  ];
  const lines = [`| ${head.join(" | ")} |`, `|${head.map((_, i) => (i < 2 ? " --- " : " ---: ")).join("|")}|`];
  for (const r of results) {
    const m = "memory" in r ? r.memory : undefined;
    if (!m) continue;
    const peak = (mb: number) => `${mb.toFixed(0)} (${(mb / m.weightMb).toFixed(2)}×)`;
    lines.push(
      `| ${[r.model, RUNTIME_NAMES[r.runtime], m.weightMb.toFixed(0), peak(m.afterLoadMb), peak(m.afterTraceMb), peak(m.afterAnalysesMb)].join(" | ")} |`
    );
  }
  return lines.join("\n");
}

/** What `test/e2e.test.ts` writes to test-results/redraw-times.json. */
export interface RedrawTimes {
  note?: string;
  /** `redrawMs`: the first move of a slider; `repeatedMs`: four more moves back and forth, one record each. */
  slider: {page: string; control: string; redrawMs: Record<string, number>; repeatedMs?: Record<string, number>[]}[];
  prompt: {
    page: string;
    forwardPasses: number;
    viewsRedrawn: string[];
    msFromForwardEndToLastRedraw: number | null;
    redrawMs: Record<string, number>;
  }[];
}

/** A few lines on the redraw times, saying where they came from; `source` is the file and its date. */
export function redrawSummary(times: RedrawTimes | undefined, source: string): string[] {
  const run = "run the end-to-end tests (`npx vitest run test/e2e.test.ts`) to measure";
  if (!times) return [`Redraw times: not measured (no ${source}); ${run}.`];
  const slider = times.slider.flatMap((s) => Object.values(s.redrawMs));
  const prompt = times.prompt.map((p) => p.msFromForwardEndToLastRedraw).filter((x): x is number => x !== null);
  if (!slider.length && !prompt.length)
    return [`Redraw times: ${source} holds no measurements (the end-to-end tests stopped early); ${run}.`];
  const lines = [
    `Redraw times, from ${source} (performance measures \`lmw:redraw:*\` read by the end-to-end tests; chromium, WASM, stories260K):`
  ];
  const sliderLine = (what: string, moves: number, times: number[]) =>
    `- ${what}: ${moves} move(s), ${times.length} view redraw(s), median ${ms(med(times))} ms, ` +
    `slowest ${ms(Math.max(...times))} ms; ${times.filter((x) => x <= 16).length} of ${times.length} within 16 ms (goal: all)`;
  if (slider.length)
    lines.push(sliderLine("layer / position / head changes, each slider's first move", times.slider.length, slider));
  const repeated = times.slider.flatMap((s) => s.repeatedMs ?? []);
  const repeatedTimes = repeated.flatMap((r) => Object.values(r));
  if (repeatedTimes.length)
    lines.push(sliderLine("the same sliders moved back and forth four more times", repeated.length, repeatedTimes));
  if (prompt.length) {
    const within = prompt.filter((x) => x <= 100).length;
    lines.push(
      `- prompt edits: last redraw ${ms(med(prompt))} ms (median) after the forward pass ends, slowest ${ms(Math.max(...prompt))} ms; ${within} of ${prompt.length} within 100 ms (goal: all)`
    );
  }
  return lines;
}

export interface Report {
  machine: Record<string, string | number>;
  commands: string[];
  limits: AnyFloor[];
  results: AnyResult[];
  targets: string[];
  /** The Chromium run: browser version, date, notes (WebGPU verdict, failures); absent when not run. */
  chromium?: Omit<BrowserBench, "floors" | "results">;
  /** Set on a --gpu run: no Chromium or redraw paragraphs. */
  redraw?: string[];
}

const MARKERS = {
  main: ["<!-- bench:results (written by npm run bench; edit around it) -->", "<!-- /bench:results -->"],
  gpu: ["<!-- bench:gpu (written by npm run bench -- --gpu; edit around it) -->", "<!-- /bench:gpu -->"]
};

/**
 * Replace a results section of the page: `main` (this machine's run) or `gpu` (a run with a GPU, `--gpu`);
 * a section the page lacks is added at its end (the whole page is written when there is none yet).
 */
export function renderPerformancePage(
  existing: string | undefined,
  report: Report,
  which: keyof typeof MARKERS = "main"
): string {
  const [BEGIN, END] = MARKERS[which];
  const section = [BEGIN, "", resultsSection(report), "", END].join("\n");
  if (existing?.includes(BEGIN) && existing.includes(END)) {
    return existing.slice(0, existing.indexOf(BEGIN)) + section + existing.slice(existing.indexOf(END) + END.length);
  }
  if (existing) return `${existing.trimEnd()}\n\n${section}\n`;
  return `---\ntitle: Performance\n---\n\n# Performance\n\n${section}\n`;
}

function limitLine(f: AnyFloor): string {
  if ("skipped" in f && f.skipped) return `- ${RUNTIME_NAMES[f.runtime]}: not measured (${f.skipped})`;
  if (f.runtime === "webgpu" || f.runtime === "webgpu-native") {
    return (
      `- ${RUNTIME_NAMES[f.runtime]}: fp32 MatMul ${f.matmulN}×${f.matmulN}×${f.matmulN} at **${(f.flopRate / 1e9).toFixed(1)} GFLOP/s**; ` +
      `GPU buffer copies (256 MiB) at **${(f.bandwidth / 1e9).toFixed(1)} GB/s** (bytes read + written); ${f.adapter}`
    );
  }
  return (
    `- ${RUNTIME_NAMES[f.runtime]}: fp32 MatMul ${f.matmulN}×${f.matmulN}×${f.matmulN} at **${(f.flopRate / 1e9).toFixed(1)} GFLOP/s**; ` +
    `a ${f.runtime.startsWith("chromium") ? "128" : "256"} MiB copy at **${(f.bandwidth / 1e9).toFixed(1)} GB/s** (bytes read + written)`
  );
}

/** The Chromium paragraph: what ran, what peak memory covers, WebGPU's verdict. */
export function chromiumLines(report: Pick<Report, "chromium" | "results">): string[] {
  const c = report.chromium;
  if (!c)
    return [
      "Chromium (WASM) and Chromium (WebGPU): not measured in this run (`npm run bench -- --browser` measures them)."
    ];
  const backend = (report.results.find((r) => r.runtime === "chromium-wasm") as BrowserModelResult | undefined)
    ?.backend;
  return [
    `Chromium rows: ${c.chromium}, measured ${c.date.slice(0, 10)} in a bench page (bench/pages/bench.ts) served cross-origin isolated from a loopback server, ` +
      `models from a loopback Hub (SmolLM2-135M and gpt2 with random weights); timed in the page with performance.now()` +
      `${backend ? `; the page said "${backend}"` : ""}. ` +
      `¹ Peak MB there is the peak resident memory (VmHWM) of the renderer process of a fresh browser per model: JS heap, WASM memory and onnxruntime's arenas, not the browser or GPU processes.`,
    ...c.notes.map((n) => `- ${n}`)
  ];
}

/** The WebGPU paragraph of a --gpu run. */
function gpuLines(): string[] {
  return [
    "onnxruntime-web (webgpu, node): the JSEP build the browser runs, on Dawn through the `webgpu` npm package (Vulkan), " +
      "in Node (src/runtime/webgpu-node.ts); (webgpu native EP, node): the same package's C++ WebGPU execution provider (`onnxruntime-web/webgpu`). " +
      "Outputs are downloaded to the host (what a page gets), all fetched tensors in one mapped copy; the key/value cache stays on the GPU. " +
      "Its floor uses the GPU's own MatMul rate and buffer-copy bandwidth. Peak MB is the host process's resident memory (GPU memory is not in it)."
  ];
}

function resultsSection({machine, commands, limits, results, targets, chromium, redraw}: Report): string {
  const floors = new Map(limits.map((f) => [f.runtime as string, f]));
  const m = machine;
  const big = results.find((r) => r.parameters > 10e6) ?? results[0];
  const reps = big && {short: big.forward[0]?.reps, long: big.forward[1]?.reps, generate: big.generate.reps};
  return [
    `Measured ${m.date.toString().slice(0, 10)} on ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}, ` +
      `onnxruntime-node ${m.onnxruntimeNode}, onnxruntime-web ${m.onnxruntimeWeb} (load average ${Number(m.loadAverageAtStart).toFixed(2)} at the start; ` +
      `the machine was shared, so treat differences under ~20% as noise). Command: ${commands.map((c) => `\`${c}\``).join(", ")}.`,
    "",
    "The machine's limits, measured in the same run:",
    "",
    ...limits.map(limitLine),
    "",
    markdownTable(results, floors),
    "",
    ...(results.some((r) => isWebGPU(r.runtime)) && !chromium ? gpuLines() : chromiumLines({chromium, results})),
    "",
    "Targets:",
    "",
    ...targets.map((t) => `- ${t.replace(/^MET\s+/, "✅ ").replace(/^MISSED\s+/, "❌ ")}`),
    "",
    ...(redraw ??
      (chromium === undefined && results.some((r) => isWebGPU(r.runtime))
        ? []
        : ["Redraw times: run the end-to-end tests to measure."])),
    "",
    `Medians of ${reps?.short ?? "?"} forward passes at 10 tokens and ${reps?.long ?? "?"} at 128 (21 for the fixtures), ` +
      `and of ${reps?.generate ?? "?"} generations (7 for the fixtures), after a warm-up.`
  ].join("\n");
}

function med(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const k = s.length >> 1;
  return s.length % 2 ? s[k] : (s[k - 1] + s[k]) / 2;
}

function ms(x: number): string {
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

function params(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : `${(n / 1e3).toFixed(0)}K`;
}
