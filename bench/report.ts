/** The benchmark's results as a Markdown table, and the results section of `docs/performance.md`. */
import type {FloorResult, ModelResult} from "./one.js";
import {floorMs} from "./measure.js";

const RUNTIME_NAMES = {node: "onnxruntime-node", web: "onnxruntime-web (wasm, node)"} as const;

export function markdownTable(results: ModelResult[], floors: Map<string, FloorResult>): string {
  const head = [
    "model", "runtime", "params", "graph build ms", "session ms",
    "fwd 10 tok ms (× floor)", "all hooks 10 tok ms (× logits)",
    "fwd 128 tok ms (× floor)", "all hooks 128 tok ms (× logits)",
    "gen KV tok/s", "gen no-KV tok/s (KV ×)", "peak MB"
  ];
  const lines = [`| ${head.join(" | ")} |`, `|${head.map((_, i) => (i < 2 ? " --- " : " ---: ")).join("|")}|`];
  for (const r of results) {
    const f = floors.get(r.runtime)!;
    const cell = (tokens: number) => {
      const fw = r.forward.find((x) => x.tokens === tokens) ?? r.forward[r.forward.length - 1];
      const floor = floorMs(fw, f.flopRate, f.bandwidth);
      const note = fw.tokens !== tokens ? ` [${fw.tokens} tok]` : "";
      return [`${ms(fw.logitsMs)} (${(fw.logitsMs / floor).toFixed(2)}×)${note}`, `${ms(fw.allHooksMs)} (${(fw.allHooksMs / fw.logitsMs).toFixed(2)}×)`];
    };
    const g = r.generate;
    lines.push(
      `| ${[
        r.model, RUNTIME_NAMES[r.runtime], params(r.parameters), ms(r.graphBuildMs), ms(r.sessionCreateMs),
        ...cell(10), ...cell(128),
        g.kvTokensPerS.toFixed(1), `${g.noKvTokensPerS.toFixed(1)} (${(g.kvTokensPerS / g.noKvTokensPerS).toFixed(1)}×)${g.sameTokens ? "" : " DIFFERENT TOKENS"}`,
        r.peakRssMb.toFixed(0)
      ].join(" | ")} |`
    );
  }
  return lines.join("\n");
}

interface Report {
  machine: Record<string, string | number>;
  commands: string[];
  limits: FloorResult[];
  results: ModelResult[];
  targets: string[];
}

const BEGIN = "<!-- bench:results (written by npm run bench; edit around it) -->";
const END = "<!-- /bench:results -->";

/** Replace the results section of the page (or write the whole page when there is none yet). */
export function renderPerformancePage(existing: string | undefined, report: Report): string {
  const section = [BEGIN, "", resultsSection(report), "", END].join("\n");
  if (existing?.includes(BEGIN) && existing.includes(END)) {
    return existing.slice(0, existing.indexOf(BEGIN)) + section + existing.slice(existing.indexOf(END) + END.length);
  }
  return `---\ntitle: Performance\n---\n\n# Performance\n\n${section}\n`;
}

function resultsSection({machine, commands, limits, results, targets}: Report): string {
  const floors = new Map(limits.map((f) => [f.runtime, f]));
  const m = machine;
  const limitLines = limits.map(
    (f) =>
      `- ${RUNTIME_NAMES[f.runtime]}: fp32 MatMul ${f.matmulN}×${f.matmulN}×${f.matmulN} at **${(f.flopRate / 1e9).toFixed(1)} GFLOP/s**; ` +
      `a 256 MiB copy at **${(f.bandwidth / 1e9).toFixed(1)} GB/s** (bytes read + written)`
  );
  const reps = (results.find((r) => r.parameters > 10e6) ?? results[0])?.reps;
  return [
    `Measured ${m.date.toString().slice(0, 10)} on ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}, ` +
      `onnxruntime-node ${m.onnxruntimeNode}, onnxruntime-web ${m.onnxruntimeWeb} (load average ${Number(m.loadAverageAtStart).toFixed(2)} at the start; ` +
      `the machine was shared, so treat differences under ~20% as noise). Command: ${commands.map((c) => `\`${c}\``).join(", ")}.`,
    "",
    "The machine's limits, measured in the same run:",
    "",
    ...limitLines,
    "",
    markdownTable(results, floors),
    "",
    "Chromium (WASM) and Chromium (WebGPU): not measured yet (`--browser` is still to be written).",
    "",
    "Targets:",
    "",
    ...targets.map((t) => `- ${t.replace(/^MET\s+/, "✅ ").replace(/^MISSED\s+/, "❌ ")}`),
    "",
    `Medians of ${reps?.forward ?? "?"} forward passes (21 for the fixtures) and ${reps?.generate ?? "?"} generations (7 for the fixtures), after a warm-up.`
  ].join("\n");
}

function ms(x: number): string {
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

function params(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : `${(n / 1e3).toFixed(0)}K`;
}
