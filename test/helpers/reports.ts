/**
 * Vitest's JSON reports (`--reporter=json`) of several runs as the one report a single run writes: what `npm test`
 * (test/run.ts) hands `--outputFile.json`, and what .ci/run reads its closing line from.
 */

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- vitest's report, read as JSON
export type Report = Record<string, any>;

/**
 * The runs' reports as one: the counts (`num…`) added, the test files in the order they started, `success` only if
 * every run reported and succeeded. A run without a report (`undefined`: it crashed before writing one) fails it.
 */
export function mergeReports(reports: (Report | undefined)[]): Report {
  const parts = reports.filter((r): r is Report => r !== undefined);
  const merged: Report = {...parts[0], numTotalTests: 0};
  for (const key of Object.keys(merged))
    if (key.startsWith("num")) merged[key] = parts.reduce((total, p) => total + (Number(p[key]) || 0), 0);
  merged.startTime = Math.min(...parts.map((p) => Number(p.startTime)));
  merged.success = parts.length === reports.length && parts.every((p) => p.success === true);
  merged.testResults = parts
    .flatMap((p) => (p.testResults ?? []) as Report[])
    .sort((a, b) => Number(a.startTime) - Number(b.startTime));
  return merged;
}
