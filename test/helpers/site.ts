/**
 * A private build of the site for a test file: `observable build` with the project's config but its own
 * output folder, so that test files building at the same time (vitest runs files in parallel) never write
 * into one another's dist/. Offline (inside `unshare -rn`) where this machine allows it.
 */
import {execFile} from "node:child_process";
import {mkdir, mkdtemp, rm, stat, writeFile} from "node:fs/promises";
import {tmpdir} from "node:os";
import {join} from "node:path";
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
  for (const started = Date.now(); ;) {
    try {
      await mkdir(lock);
      break;
    } catch {
      // A lock left by a killed run is older than any build takes.
      const age = await stat(lock).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0
      );
      if (age > 15 * 60_000) await rm(lock, {recursive: true, force: true});
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

export async function buildSiteCopy(): Promise<BuiltSite> {
  const dir = await mkdtemp(join(tmpdir(), "lmw-site-"));
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
  const build = [join(ROOT, "node_modules", ".bin", "observable"), "build", "--config", config];
  const [cmd, ...args] = offline ? ["unshare", "-rn", ...build] : build;
  const {stdout, stderr} = await oneBuildAtATime(() => run(cmd, args, {cwd: ROOT, maxBuffer: 64 << 20}));
  return {dir: output, log: `${stdout}\n${stderr}`, remove: () => rm(dir, {recursive: true, force: true})};
}
