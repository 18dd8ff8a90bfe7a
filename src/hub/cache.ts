/**
 * Where downloaded files are kept: what a file cache is, and the browser's, over the Cache API. (The one on
 * disk, for Node, is `diskCache` in node.ts, which needs `node:fs`.) Only whole, checked files are put in a
 * cache (see download.ts); an entry that is not marked whole is not trusted.
 */
import {encodeFilePath} from "./ids.js";

/** A store of whole files, keyed by file name: the browser's Cache API, or a folder on disk in Node. */
export interface FileCache {
  /** The size of the cached file, undefined when it is not cached. */
  size(file: string): Promise<number | undefined>;
  get(file: string): Promise<Uint8Array | undefined>;
  /** Bytes [start, end) of a cached file, when the cache can read part of a file. */
  getRange?(file: string, start: number, end: number): Promise<Uint8Array | undefined>;
  put(file: string, bytes: Uint8Array): Promise<void>;
  /** Forget a file (a damaged copy left by an older version, found on reading it). */
  remove?(file: string): Promise<void>;
  /**
   * The beginning of a download that failed, kept apart from the files (never read as one) so that a later run
   * resumes it instead of starting over; only for a file the Hub names by sha256, so that a kept beginning is
   * never joined to another version's end. `undefined` clears it.
   */
  keepPartial?(file: string, partial: KeptBeginning | undefined): Promise<void>;
  partial?(file: string): Promise<KeptBeginning | undefined>;
}

/** The first bytes of a file whose download stopped, and what the Hub said the whole file is. */
export interface KeptBeginning {
  bytes: Uint8Array;
  size: number;
  sha256: string;
}

/** The browser's Cache API for files under `baseUrl`, where the platform has it. */
export function defaultCache(baseUrl: string): FileCache | undefined {
  return typeof globalThis.caches === "undefined" ? undefined : browserCache(baseUrl);
}

/** Marks a Cache API entry as a whole, checked file; entries without it (written by older versions) are not trusted. */
const COMPLETE_HEADER = "x-lmw-complete";

/**
 * Whole files kept in the browser's Cache API, under their URL (which holds the endpoint and the revision, so
 * `v2` never answers for `main`). An entry is put only once its body is complete and checked.
 */
export function browserCache(baseUrl: string, name = "lm-workbench"): FileCache {
  const keyOf = (file: string) => `${baseUrl}/${encodeFilePath(file)}`;
  const match = async (file: string) => {
    const cache = await caches.open(name);
    const response = await cache.match(keyOf(file));
    if (response && response.headers.get(COMPLETE_HEADER) !== "1") {
      await cache.delete(keyOf(file));
      return undefined;
    }
    return response;
  };
  return {
    async size(file) {
      const length = (await match(file))?.headers.get("content-length");
      return length == null ? undefined : Number(length);
    },
    async get(file) {
      const response = await match(file);
      if (!response) return undefined;
      const bytes = new Uint8Array(await response.arrayBuffer());
      return bytes.length === Number(response.headers.get("content-length")) ? bytes : undefined;
    },
    async remove(file) {
      await (await caches.open(name)).delete(keyOf(file));
    },
    async put(file, bytes) {
      const headers = {"content-length": String(bytes.length), [COMPLETE_HEADER]: "1"};
      await (await caches.open(name)).put(keyOf(file), new Response(bytes as BodyInit, {headers}));
    }
  };
}
