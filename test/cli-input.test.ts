/**
 * Long prompts on the command line: onnxruntime-node's telemetry parsed /proc/self/cmdline with a recursive
 * regex and crashed (SIGSEGV) on a ~30,000-character argument. The CLI turns telemetry off, so such a prompt
 * gets the model's own "at most N positions" error, and no /tmp/mat-debug-<pid>.log is left behind; long text
 * can also come from `--prompt-file FILE` or standard input.
 */
import {spawnSync} from "node:child_process";
import {existsSync, mkdtempSync, rmSync, writeFileSync} from "node:fs";
import os from "node:os";
import path from "node:path";
import {afterAll, describe, expect, it} from "vitest";
import {main} from "../src/cli.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "lmw-cli-input-"));
afterAll(() => rmSync(dir, {recursive: true, force: true}));

async function run(args: string[], stdin?: string) {
  let out = "",
    err = "";
  const code = await main(args, {
    out: (t) => void (out += t),
    err: (t) => void (err += t),
    stdin: stdin === undefined ? undefined : async () => stdin
  });
  return {code, out, err};
}

describe("where the text comes from", () => {
  it("--prompt-file FILE, less its last line end", async () => {
    const file = path.join(dir, "prompt.txt");
    writeFileSync(file, "Once upon a time\n");
    const fromFile = await run(["tokens", "stories260K", "--prompt-file", file, "--json"]);
    const inline = await run(["tokens", "stories260K", "Once upon a time", "--json"]);
    expect(fromFile.code).toBe(0);
    expect(fromFile.out).toBe(inline.out);
  });

  it('standard input, as TEXT "-" or --prompt-file -', async () => {
    const inline = await run(["tokens", "stories260K", "Once upon", "--json"]);
    expect((await run(["tokens", "stories260K", "-", "--json"], "Once upon\n")).out).toBe(inline.out);
    expect((await run(["tokens", "stories260K", "--prompt-file", "-", "--json"], "Once upon")).out).toBe(inline.out);
  });

  it("a missing file, or TEXT as well as --prompt-file, is a usage error", async () => {
    const missing = await run(["generate", "stories260K", "--prompt-file", path.join(dir, "nope.txt")]);
    expect(missing).toMatchObject({
      code: 1,
      err: expect.stringContaining(`--prompt-file ${path.join(dir, "nope.txt")}: no such file`)
    });
    const both = await run(["tokens", "stories260K", "text", "--prompt-file", path.join(dir, "nope.txt")]);
    expect(both.err).toContain("too many arguments");
  });

  it("a 30,000-character prompt on the command line: the positions error, no crash, no files left", () => {
    const prompt = "a ".repeat(15_000);
    const result = spawnSync(
      process.execPath,
      ["bin/lm-workbench.js", "generate", "stories260K", prompt, "--max-new-tokens", "1", "--json"],
      {
        encoding: "utf8",
        env: {...process.env, ORT_DISABLE_TELEMETRY: undefined},
        timeout: 60_000
      }
    );
    expect(result.signal).toBe(null);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(
      "lm-workbench: the prompt is 15002 tokens long; stories260K takes at most 512 positions"
    );
    expect(existsSync(`/tmp/mat-debug-${result.pid}.log`)).toBe(false);
  }, 60_000);
});
