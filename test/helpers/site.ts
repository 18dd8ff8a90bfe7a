/**
 * A private build of the site for a test file: `observable build` with the project's config but its own
 * output folder, so that test files building at the same time (vitest runs files in parallel) never write
 * into one another's dist/. Offline (inside `unshare -rn`) where this machine allows it.
 */
import {execFile} from "node:child_process";
import {mkdtemp, readdir, rm, stat, writeFile} from "node:fs/promises";
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
 * `observable build` reuses a data loader's cached output unless the loader file itself is newer, but the
 * loaders compute with src/: a change there (a default prompt, a new field) would ship yesterday's numbers.
 * Drop every cached loader output older than the newest file under src/ or docs/data/.
 */
export async function dropStaleLoaderOutputs(): Promise<string[]> {
  const newest = async (dir: string): Promise<number> => {
    let latest = 0;
    for (const entry of await readdir(dir, {withFileTypes: true, recursive: true})) {
      if (entry.isFile()) latest = Math.max(latest, (await stat(join(entry.parentPath, entry.name))).mtimeMs);
    }
    return latest;
  };
  const sources = Math.max(await newest(join(ROOT, "src")), await newest(join(ROOT, "docs", "data")));
  const cache = join(ROOT, "docs", ".observablehq", "cache", "data");
  const dropped: string[] = [];
  for (const name of await readdir(cache).catch(() => [] as string[])) {
    const file = join(cache, name);
    if ((await stat(file)).mtimeMs < sources) await rm(file, {force: true}), dropped.push(name);
  }
  return dropped;
}

export async function buildSiteCopy(): Promise<BuiltSite> {
  await dropStaleLoaderOutputs();
  const dir = await mkdtemp(join(tmpdir(), "lmw-site-"));
  const output = join(dir, "site");
  const config = join(dir, "observablehq.config.mjs");
  await writeFile(
    config,
    `import {tsImport} from ${JSON.stringify(join(ROOT, "node_modules", "tsx", "dist", "esm", "api", "index.mjs"))};\n` +
      `const {default: config} = await tsImport(${JSON.stringify(join(ROOT, "observablehq.config.ts"))}, import.meta.url);\n` +
      `export default {...config, output: ${JSON.stringify(output)}};\n`
  );
  const offline = await run("unshare", ["-rn", "true"]).then(() => true, () => false);
  const build = [join(ROOT, "node_modules", ".bin", "observable"), "build", "--config", config];
  const [cmd, ...args] = offline ? ["unshare", "-rn", ...build] : build;
  const {stdout, stderr} = await run(cmd, args, {cwd: ROOT, maxBuffer: 64 << 20});
  return {dir: output, log: `${stdout}\n${stderr}`, remove: () => rm(dir, {recursive: true, force: true})};
}
