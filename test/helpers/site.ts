/**
 * The site as the tests serve it: `observable build` with the project's config but an output folder of its own,
 * so that no test writes into dist/. Offline (inside `unshare -rn`) where this machine allows it.
 *
 * Built once per test run and environment (LMW_SITE_MODELS and the other variables the data loaders read): the
 * first test file to ask builds it into the run's folder (run-folder.ts, vitest's global setup), the others serve
 * that same build. A build runs every data loader on full-size models, and no test writes into a built site.
 * Outside vitest (test/readme-screenshots.ts) each call builds a private copy that `remove()` deletes.
 */
import {execFile} from "node:child_process";
import {createHash} from "node:crypto";
import {existsSync} from "node:fs";
import {mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile} from "node:fs/promises";
import {tmpdir} from "node:os";
import {basename, dirname, extname, join} from "node:path";
import {promisify} from "node:util";

const run = promisify(execFile);
export const ROOT = join(import.meta.dirname, "..", "..");

export interface BuiltSite {
  /** The output folder (the site's root). */
  dir: string;
  log: string;
  remove(): Promise<void>;
}

/**
 * One build at a time: test files run in parallel, and builds share Framework's loader cache
 * (docs/.observablehq/cache), which observablehq.config.ts clears when the models asked for change — a build
 * with other LMW_SITE_MODELS running beside another would ship its neighbour's model list. A lock folder
 * (mkdir is atomic) orders them across vitest's worker processes.
 */
export async function oneBuildAtATime<T>(build: () => Promise<T>): Promise<T> {
  const cache = join(ROOT, "docs", ".observablehq", "cache");
  const lock = join(cache, ".lmw-build.lock");
  await mkdir(cache, {recursive: true});
  const holder = join(lock, "pid");
  for (const started = Date.now(); ;) {
    try {
      await mkdir(lock);
      await writeFile(holder, String(process.pid));
      break;
    } catch {
      // A lock whose process is gone (a run killed mid-build) is stale at once; one without a pid yet (taken a
      // moment ago) or from another machine's process is trusted until it is older than any build takes.
      const pid = Number(await readFile(holder, "utf8").catch(() => ""));
      const age = await stat(lock).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0
      );
      if ((pid > 0 && !alive(pid)) || age > 15 * 60_000) await rm(lock, {recursive: true, force: true});
      if (Date.now() - started > 30 * 60_000) throw new Error(`waited 30 minutes for ${lock}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
  try {
    return await build();
  } finally {
    await rm(lock, {recursive: true, force: true});
  }
}

/** Whether a process with this pid runs (signal 0 checks without sending anything). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

export async function buildSiteCopy(): Promise<BuiltSite> {
  const runDir = process.env.LMW_TEST_RUN_DIR;
  if (!runDir) {
    const dir = await mkdtemp(join(tmpdir(), "lmw-site-"));
    const log = await oneBuildAtATime(() => build(dir));
    return {dir: join(dir, "site"), log, remove: () => rm(dir, {recursive: true, force: true})};
  }
  const environment = Object.entries(process.env)
    .filter(([name]) => name.startsWith("LMW_"))
    .sort(([a], [b]) => (a < b ? -1 : 1));
  const dir = join(
    runDir,
    `site-${createHash("sha256").update(JSON.stringify(environment)).digest("hex").slice(0, 16)}`
  );
  const logFile = join(dir, "build.log");
  const log = await oneBuildAtATime(async () => {
    if (existsSync(logFile)) return readFile(logFile, "utf8");
    // What a build cut short left here (its process killed) would conflict with this build's files.
    await rm(dir, {recursive: true, force: true});
    await mkdir(dir, {recursive: true});
    const log = await build(dir);
    await writeFile(logFile, log); // written last: a build that failed is built again by the next file that asks
    return log;
  });
  // The run's folder goes when the run ends (run-folder.ts); another test file may still be serving this one.
  return {dir: join(dir, "site"), log, remove: async () => {}};
}

/** `observable build` into `dir/site`, with the loader outputs of this environment in Framework's cache. */
async function build(dir: string): Promise<string> {
  const output = join(dir, "site");
  const config = join(dir, "observablehq.config.mjs");
  await writeFile(
    config,
    `import {tsImport} from ${JSON.stringify(join(ROOT, "node_modules", "tsx", "dist", "esm", "api", "index.mjs"))};\n` +
      `const {default: config} = await tsImport(${JSON.stringify(join(ROOT, "observablehq.config.ts"))}, import.meta.url);\n` +
      `export default {...config, output: ${JSON.stringify(output)}};\n`
  );
  const offline = await run("unshare", ["-rn", "true"]).then(
    () => true,
    () => false
  );
  await keepLoaderOutputs();
  const command = [join(ROOT, "node_modules", ".bin", "observable"), "build", "--config", config];
  const [cmd, ...args] = offline ? ["unshare", "-rn", ...command] : command;
  const {stdout, stderr} = await run(cmd!, args, {cwd: ROOT, maxBuffer: 64 << 20});
  return `${stdout}\n${stderr}`;
}

/**
 * observablehq.config.ts drops every loader output when the loaders' environment differs from the one they were
 * made in (its stamp, `.lmw-environment.json`): a build for other site models (test/e2e-families.test.ts) would
 * make the next default build run every loader again. So, before a build (inside `oneBuildAtATime`), the outputs
 * of the stamped environment are set aside under `.lmw-stash/`, and those of this process's environment, if set
 * aside earlier, put back with its stamp. The config still drops any output older than the sources.
 */
export async function keepLoaderOutputs(): Promise<void> {
  const cache = join(ROOT, "docs", ".observablehq", "cache");
  const stampFile = join(cache, ".lmw-environment.json");
  if (!existsSync(stampFile)) return;
  const stamp = await readFile(stampFile, "utf8");
  // The variables the config stamps, in its order, as this process has them.
  const wanted = JSON.stringify(
    Object.fromEntries(Object.keys(JSON.parse(stamp) as object).map((name) => [name, process.env[name] ?? null]))
  );
  if (wanted === stamp) return;
  const stash = (s: string) => join(cache, ".lmw-stash", createHash("sha256").update(s).digest("hex").slice(0, 16));
  // Loader outputs sit under their pages' paths (data/, models/), beside Framework's own _-folders.
  const outputs = (dir: string) =>
    readdir(dir, {withFileTypes: true}).then((entries) =>
      entries.filter((e) => e.isDirectory() && !e.name.startsWith("_") && !e.name.startsWith(".")).map((e) => e.name)
    );
  const away = stash(stamp);
  await rm(away, {recursive: true, force: true});
  await mkdir(away, {recursive: true});
  for (const name of await outputs(cache)) await rename(join(cache, name), join(away, name));
  const back = stash(wanted);
  if (!existsSync(back)) return; // the config finds its stamp changed and starts afresh
  for (const name of await outputs(back)) await rename(join(back, name), join(cache, name));
  await rm(back, {recursive: true, force: true});
  await writeFile(stampFile, wanted);
}

/**
 * A data loader's output as the site build shipped it (`data/tokens.json` → `_file/data/tokens.<hash>.json` in
 * the build that `buildSiteCopy` shares), parsed: the tests of the loaders read what the pages read, and the
 * loaders (minutes, on full-size models) run once per environment, in that build.
 */
export async function builtData(path: string): Promise<any> {
  const site = await buildSiteCopy();
  const dir = join(site.dir, "_file", dirname(path));
  const [stem, ext] = [basename(path).replace(/\.[^.]+$/, ""), extname(path)];
  const shipped = (await readdir(dir)).filter((f) => f.startsWith(`${stem}.`) && f.endsWith(ext));
  if (shipped.length !== 1) throw new Error(`the site build shipped ${shipped.length} files for ${path} in ${dir}`);
  return JSON.parse(await readFile(join(dir, shipped[0]!), "utf8"));
}
