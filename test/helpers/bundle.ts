/**
 * Test-only pages (test/pages/*.html) in a folder the static server can serve: each page's module is
 * bundled by esbuild (installed with tsx and vite), onnxruntime-web is left out of the bundle and reached
 * through the page's import map at ./ort/ (a link to node_modules/onnxruntime-web/dist), so that ort's
 * worker script and .wasm load from their own files, as on the site.
 */
import {build} from "esbuild";
import {copyFile, mkdir, mkdtemp, rm, symlink} from "node:fs/promises";
import {tmpdir} from "node:os";
import {basename, join} from "node:path";

const ROOT = join(import.meta.dirname, "..", "..");
export const TEST_PAGES = join(ROOT, "test", "pages");

export interface TestPages {
  /** The folder to serve. */
  dir: string;
  remove(): Promise<void>;
}

/** Bundles `test/pages/<name>.ts` → `<name>.js` next to `<name>.html`, for each name. */
export async function buildTestPages(names: string[]): Promise<TestPages> {
  const dir = await mkdtemp(join(tmpdir(), "lmw-test-pages-"));
  await build({
    entryPoints: names.map((name) => join(TEST_PAGES, `${name}.ts`)),
    outdir: dir,
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    external: ["onnxruntime-web", "onnxruntime-web/wasm", "onnxruntime-web/webgpu"],
    logLevel: "error"
  });
  for (const name of names) await copyFile(join(TEST_PAGES, `${name}.html`), join(dir, basename(`${name}.html`)));
  await mkdir(dir, {recursive: true});
  await symlink(join(ROOT, "node_modules", "onnxruntime-web", "dist"), join(dir, "ort"));
  return {dir, remove: () => rm(dir, {recursive: true, force: true})};
}
