/**
 * `npm test` runs vitest in steps (test/run.ts) and hands on one JSON report, as one vitest run writes it: what
 * .ci/run reads its closing line ("N passed, M failed") from.
 */
import {describe, expect, it} from "vitest";
import {mergeReports} from "./helpers/reports.js";

const report = (name: string, startTime: number, passed: number, failed: number) => ({
  numTotalTestSuites: 1,
  numTotalTests: passed + failed,
  numPassedTests: passed,
  numFailedTests: failed,
  numPendingTests: 0,
  startTime,
  success: failed === 0,
  testResults: [{name, startTime: startTime + 5}]
});

describe("the steps' reports as one", () => {
  it("adds the counts, orders the files by their start and succeeds only if every step did", () => {
    const merged = mergeReports([report("node.test.ts", 200, 3, 0), report("browser.test.ts", 100, 2, 1)]);
    expect(merged).toMatchObject({
      numTotalTestSuites: 2,
      numTotalTests: 6,
      numPassedTests: 5,
      numFailedTests: 1,
      numPendingTests: 0,
      startTime: 100,
      success: false
    });
    expect(merged.testResults.map((r: {name: string}) => r.name)).toEqual(["browser.test.ts", "node.test.ts"]);
    expect(mergeReports([report("a", 1, 3, 0), report("b", 2, 1, 0)]).success).toBe(true);
  });

  it("a step that left no report fails the whole; no step at all is no test", () => {
    const merged = mergeReports([report("node.test.ts", 1, 3, 0), undefined]);
    expect(merged).toMatchObject({numTotalTests: 3, numPassedTests: 3, success: false});
    expect(mergeReports([undefined])).toMatchObject({numTotalTests: 0, success: false, testResults: []});
  });
});
