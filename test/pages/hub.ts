/**
 * The page's side of test/hub-browser.test.ts: reads a file through `browserSource` (with the Cache API, as the
 * pages use it) and reports what came back or the HubError, and what the Cache API holds.
 */
import {browserSource} from "../../src/browser.js";

interface Outcome {
  bytes?: number;
  error?: {name: string; code?: string; message: string};
  notices: string[];
}

(window as any).hub = {
  async read(id: string, file: string, endpoint: string, token?: string): Promise<Outcome> {
    const notices: string[] = [];
    try {
      const source = browserSource(id, {endpoint, token, onNotice: (m) => notices.push(m)});
      const bytes = await source.read(file);
      return {bytes: bytes.length, notices};
    } catch (error) {
      const e = error as Error & {code?: string};
      return {error: {name: e.name, code: e.code, message: e.message}, notices};
    }
  },
  /** The URLs the Cache API holds. */
  async cached(): Promise<string[]> {
    const cache = await caches.open("lm-workbench");
    return (await cache.keys()).map((r) => r.url);
  }
};
document.title = "ready";
