/**
 * `npm test`: vitest's three projects (vitest.config.ts) in two steps. First the Node files; then the Chromium files
 * and, beside them at the lowest CPU priority (`nice -n 19`), the WebGPU-in-Node (Dawn) files.
 *
 * Why: the Chromium files leave ~30% of the two cores idle (a model's session made on one thread in a page's worker,
 * a page painting), and the Dawn files are CPU work that needs nothing but a core. At the lowest priority they run
 * in those gaps and take the CPU from no browser test: Linux gives a nice-19 process ~1.5% of a core that a nice-0
 * one wants. (`npx vitest run` still runs the three projects one after another.)
 *
 * The three vitest processes share one run folder (test/helpers/run-folder.ts), so the site the Node files build is
 * the one the Chromium files serve. Arguments go to every process (a file filter, `-t`, reporters); one that has no
 * file matching them passes, and the run fails if none ran a test. `--outputFile.json=<file>` gets their JSON
 * reports merged into one, as one vitest run writes it.
 */
import {spawn} from "node:child_process";
import {mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync} from "node:fs";
import {tmpdir} from "node:os";
import {dirname, join, resolve} from "node:path";
import {mergeReports, type Report} from "./helpers/reports.js";

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
  const merged = mergeReports(["node", "browser", "dawn"].map((p) => readReport(join(reports, `${p}.json`))));
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

/** A step's JSON report; undefined where the step crashed before writing it (its exit code fails the run). */
function readReport(file: string): Report | undefined {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as Report;
  } catch {
    return undefined;
  }
}
