/**
 * A private build of the site for a test file: `observable build` with the project's config but its own
 * output folder, so that test files building at the same time (vitest runs files in parallel) never write
 * into one another's dist/. Offline (inside `unshare -rn`) where this machine allows it.
 */
import {execFile} from "node:child_process";
import {mkdtemp, rm, writeFile} from "node:fs/promises";
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
  const offline = await run("unshare", ["-rn", "true"]).then(() => true, () => false);
  const build = [join(ROOT, "node_modules", ".bin", "observable"), "build", "--config", config];
  const [cmd, ...args] = offline ? ["unshare", "-rn", ...build] : build;
  const {stdout, stderr} = await run(cmd, args, {cwd: ROOT, maxBuffer: 64 << 20});
  return {dir: output, log: `${stdout}\n${stderr}`, remove: () => rm(dir, {recursive: true, force: true})};
}
