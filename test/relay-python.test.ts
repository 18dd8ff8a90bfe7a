/**
 * The NDIF relay's own tests (relay/tests, Python's unittest against loopback stand-ins of NDIF and the Hub), run
 * as part of `npm test`. They need only python3's standard library; where python3 is missing they are skipped
 * with the reason printed.
 */
import {spawnSync} from "node:child_process";
import {describe, expect, it} from "vitest";

const python = spawnSync("python3", ["--version"], {encoding: "utf8"});
const missing =
  python.error || python.status !== 0 ? `python3 is not available (${python.error?.message ?? python.stderr})` : "";
if (missing) console.log(`skipping the relay's Python tests: ${missing}`);

describe("the NDIF relay's Python unittests", () => {
  it.skipIf(Boolean(missing))("python3 -m unittest discover -s relay/tests passes", () => {
    const run = spawnSync("python3", ["-m", "unittest", "discover", "-s", "relay/tests", "-v"], {
      encoding: "utf8",
      timeout: 110_000,
      // The relay reads these; the tests set their own stand-ins, so none from the caller's environment leaks in.
      env: {...process.env, HF_TOKEN: "", NDIF_API_KEY: "", HF_ENDPOINT: "", LMW_NDIF_HOST: ""}
    });
    const out = `${run.stdout}\n${run.stderr}`;
    const ran = /^Ran (\d+) tests? in /m.exec(out);
    expect(run.status, out).toBe(0);
    expect(ran, out).not.toBeNull();
    expect(Number(ran![1])).toBeGreaterThan(0);
    expect(out).toMatch(/^OK\b/m);
  });
});
