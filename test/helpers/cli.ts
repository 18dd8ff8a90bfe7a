/**
 * The CLI as users run it: `node bin/lm-workbench.js …` in a child process, with the tests' model folder and a
 * Hub that answers nothing (so no test reaches the network by accident).
 */
import {execFile} from "node:child_process";
import path from "node:path";
import {expect} from "vitest";

const BIN = path.resolve("bin/lm-workbench.js");

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

export function cli(...args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      {
        env: {...process.env, LMW_MODELS: "test/fixtures", LMW_HUB_ENDPOINT: "http://127.0.0.1:9"},
        maxBuffer: 256 << 20
      },
      (error, stdout, stderr) => resolve({code: error ? Number(error.code ?? 1) : 0, stdout, stderr})
    );
  });
}

/** `--json` output: nothing on stderr, exit 0, and the parsed stdout. */
export function json(result: Result): any {
  expect(result.stderr, "stderr in --json mode").toBe("");
  expect(result.code).toBe(0);
  return JSON.parse(result.stdout);
}

/** A WorkbenchError: exit 1, the message on stderr, no stack trace. */
export function expectCleanError(result: Result, message: RegExp) {
  expect(result.code).toBe(1);
  expect(result.stderr).toMatch(message);
  expect(result.stderr).not.toMatch(/\n\s+at /);
  expect(result.stderr).not.toMatch(/unexpected error/);
}
