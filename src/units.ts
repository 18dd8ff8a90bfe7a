/**
 * Sizes as people read them, for progress lines and messages: "4000 bytes", "12.3 MB", and with a total,
 * "12.3 MB of 540.1 MB". One formatter, so that the CLI, the site build and the pages say sizes the same way.
 */

/** `bytes` as "N bytes" under a megabyte, else "X.X MB"; with `total`, "… of …". */
export function formatBytes(bytes: number, total?: number): string {
  const one = (n: number) => (n < 1e6 ? `${n} bytes` : `${(n / 1e6).toFixed(1)} MB`);
  return total === undefined ? one(bytes) : `${one(bytes)} of ${one(total)}`;
}
