/**
 * Redraw timing for every view: `performance.measure("lmw:redraw:<name>")` around a draw, read by the
 * end-to-end tests and reported by the benchmark.
 */

/** Runs fn and records `performance.measure("lmw:redraw:" + name)` around it (after it settles, if async). */
export function measureRedraw<T>(name: string, fn: () => T): T {
  const start = performance.now();
  const record = () => performance.measure(`lmw:redraw:${name}`, {start, end: performance.now()});
  const result = fn();
  if (result instanceof Promise) return result.finally(record) as T;
  record();
  return result;
}
