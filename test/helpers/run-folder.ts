/**
 * Vitest's global setup: one folder for this test run, shared by every test file's process (vitest starts them
 * after this runs, with this environment), where a site built by one file is kept for the others
 * (`buildSiteCopy` in site.ts). Removed when the run ends.
 */
import {mkdtemp, rm} from "node:fs/promises";
import {tmpdir} from "node:os";
import {join} from "node:path";

export default async function setup(): Promise<() => Promise<void>> {
  // Every project of vitest.config.ts runs the global setup: the first makes the folder, the others keep it.
  if (process.env.LMW_TEST_RUN_DIR) return async () => {};
  const dir = await mkdtemp(join(tmpdir(), "lmw-test-run-"));
  process.env.LMW_TEST_RUN_DIR = dir;
  return () => rm(dir, {recursive: true, force: true});
}
