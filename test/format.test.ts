/** The repository is formatted by its formatter (prettier, .prettierrc: 120 columns, as Observable Plot's code). */
import {execFile} from "node:child_process";
import {join} from "node:path";
import {promisify} from "node:util";
import {expect, it} from "vitest";

const ROOT = join(import.meta.dirname, "..");

it("prettier --check finds nothing to reformat (npm run format fixes it)", async () => {
  const result = await promisify(execFile)(join(ROOT, "node_modules", ".bin", "prettier"), ["--check", "."], {
    cwd: ROOT
  }).then(
    () => ({code: 0, stdout: ""}),
    (error: {code: number; stdout: string}) => ({code: error.code, stdout: error.stdout})
  );
  expect(result.stdout, "files prettier would change").toBe("");
  expect(result.code).toBe(0);
});
