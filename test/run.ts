/**
 * `npm test`: vitest's three projects (vitest.config.ts) in two steps. First the Node files; then the Chromium files
 * and, beside them at the lowest CPU priority (`nice -n 19`), the WebGPU-in-Node (Dawn) files.
 *
 * Why: the Chromium files leave ~30% of the two cores idle (a model's session made on one thread in a page's worker,
 * a page painting, a worker waiting for its tokenizer), and the Dawn files are CPU work that needs nothing but a
 * core. At the lowest priority they run in those gaps and take the CPU from no browser test: Linux gives a nice-19
 * process ~1.5% of a core that a nice-0 one wants. One after another, as `npx vitest run` still runs them, the
 * Dawn files came after the Chromium files.
 *
 * The three steps share one run folder (test/helpers/run-folder.ts), so the site the Node files build is the one
 * the Chromium files serve. Arguments go to every step (a file filter, `-t`, reporters); a step that has no file
 * matching them passes, and the run fails if no step ran a test. `--outputFile.json=<file>` gets the steps' JSON
 * reports merged into one, as one vitest run writes it.
 */
import {spawn} from "node:child_process";
import {mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync} from "node:fs";
import {tmpdir} from "node:os";
import {dirname, join, resolve} from "node:path";

const VITEST = resolve(import.meta.dirname, "..", "node_modules", "vitest", "vitest.mjs");

const args = process.argv.slice(2);
const jsonFile = args.find((a) => a.startsWith("--outputFile.json="))?.slice("--outputFile.json=".length);
const passed = args.filter((a) => !a.startsWith("--outputFile.json=") && a !== "--reporter=json");
const reporters = passed.some((a) => a.startsWith("--reporter")) ? [] : ["--reporter=default"];

const runDir = mkdtempSync(join(tmpdir(), "lmw-test-run-"));
const reports = join(runDir, "reports");
mkdirSync(reports);

/** One vitest process for `project`; resolves to its exit code. */
function step(project: string, nice = false): Promise<number> {
  const command = [
    process.execPath,
    VITEST,
    "run",
    "--project",
    project,
    "--passWithNoTests",
    ...passed,
    ...reporters,
    "--reporter=json",
    `--outputFile.json=${join(reports, `${project}.json`)}`
  ];
  const [cmd, ...rest] = nice ? ["nice", "-n", "19", ...command] : command;
  const child = spawn(cmd, rest, {stdio: "inherit", env: {...process.env, LMW_TEST_RUN_DIR: runDir}});
  return new Promise((done) => {
    child.on("error", (error) => {
      process.stderr.write(`npm test: could not start ${cmd}: ${error.message}\n`);
      done(1);
    });
    child.on("exit", (code, signal) => done(code ?? (signal ? 1 : 0)));
  });
}

let codes: number[] = [];
try {
  codes = [await step("node")];
  codes.push(...(await Promise.all([step("browser"), step("dawn", true)])));
  const merged = merge(["node", "browser", "dawn"].map((p) => join(reports, `${p}.json`)));
  if (jsonFile) {
    mkdirSync(dirname(resolve(jsonFile)), {recursive: true});
    writeFileSync(jsonFile, JSON.stringify(merged));
  }
  if (merged.numTotalTests === 0) {
    process.stderr.write(`npm test: no test matched ${JSON.stringify(args)}\n`);
    codes.push(1);
  }
} finally {
  rmSync(runDir, {recursive: true, force: true});
}
process.exit(codes.some((c) => c !== 0) ? 1 : 0);

/** Vitest's JSON reports of the steps as one: counts added, test files in the order they ran. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- vitest's report, read as JSON
type Report = Record<string, any>;

function merge(files: string[]): Report {
  const parts = files.flatMap((f): Report[] => {
    try {
      return [JSON.parse(readFileSync(f, "utf8")) as Report];
    } catch {
      return []; // a step that crashed before reporting: its exit code fails the run
    }
  });
  const sum = (key: string): number => parts.reduce((total, p) => total + ((p[key] as number) ?? 0), 0);
  const merged: Report = {numTotalTests: 0};
  for (const key of Object.keys(parts[0] ?? {})) merged[key] = parts[0][key];
  for (const key of Object.keys(merged))
    if (typeof merged[key] === "number" && key.startsWith("num")) merged[key] = sum(key);
  merged.startTime = Math.min(...parts.map((p) => p.startTime));
  merged.success = parts.length === files.length && parts.every((p) => p.success);
  merged.testResults = parts
    .flatMap((p) => p.testResults as Report[])
    .sort((a, b) => (a.startTime as number) - (b.startTime as number));
  return merged;
}
