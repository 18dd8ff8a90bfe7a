/**
 * A static file server for the built site (dist/), on 127.0.0.1 and a free port, with the
 * cross-origin isolation headers that WASM threads need (switchable off), correct MIME types,
 * and a hook that sees every request.
 */
import {createReadStream} from "node:fs";
import {stat} from "node:fs/promises";
import {createServer, type IncomingMessage} from "node:http";
import type {AddressInfo} from "node:net";
import {extname, join, resolve, sep} from "node:path";

export const MIME_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".wasm": "application/wasm",
  ".onnx": "application/octet-stream",
  ".safetensors": "application/octet-stream",
  ".bin": "application/octet-stream",
  ".gguf": "application/octet-stream",
  ".txt": "text/plain; charset=utf-8",
  ".md": "text/markdown; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".map": "application/json; charset=utf-8"
};

export interface ServedRequest {
  method: string;
  /** The path asked for, with its query string. */
  url: string;
  status: number;
  /** Bytes sent in the body (0 for HEAD, errors). */
  bytes: number;
}

export interface StaticServerOptions {
  /** Send COOP same-origin + COEP require-corp (default true), making the page cross-origin isolated. */
  crossOriginIsolation?: boolean;
  /** Called once per request, after the response is finished. */
  onRequest?: (request: ServedRequest) => void;
}

export interface StaticServer {
  /** "http://127.0.0.1:<port>" — no trailing slash. */
  origin: string;
  port: number;
  /** Every request served so far, in order. */
  requests: ServedRequest[];
  close(): Promise<void>;
}

/**
 * Serves `root`. A path without extension tries `<path>.html` then `<path>/index.html` (how Framework
 * links its pages: "/", "/residual-stream"). Paths outside root are refused; missing files are 404.
 */
export async function serveStatic(root: string, options: StaticServerOptions = {}): Promise<StaticServer> {
  const {crossOriginIsolation = true, onRequest} = options;
  const base = resolve(root);
  const requests: ServedRequest[] = [];

  const server = createServer(async (req, res) => {
    const record = (status: number, bytes: number) => {
      const entry = {method: req.method ?? "GET", url: req.url ?? "/", status, bytes};
      requests.push(entry);
      onRequest?.(entry);
    };
    if (crossOriginIsolation) {
      res.setHeader("Cross-Origin-Opener-Policy", "same-origin");
      res.setHeader("Cross-Origin-Embedder-Policy", "require-corp");
    }
    res.setHeader("Cache-Control", "no-store");
    const file = await findFile(base, req);
    if (!file) {
      res.writeHead(404, {"Content-Type": "text/plain; charset=utf-8"}).end("not found");
      record(404, 0);
      return;
    }
    res.writeHead(200, {
      "Content-Type": MIME_TYPES[extname(file.path).toLowerCase()] ?? "application/octet-stream",
      "Content-Length": file.size
    });
    if (req.method === "HEAD") {
      res.end();
      record(200, 0);
      return;
    }
    createReadStream(file.path)
      .on("error", () => res.destroy())
      .pipe(res)
      .on("finish", () => record(200, file.size));
  });

  await new Promise<void>((ok, fail) => {
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => ok());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    origin: `http://127.0.0.1:${port}`,
    port,
    requests,
    close: () =>
      new Promise<void>((ok, fail) => {
        server.closeAllConnections();
        server.close((error) => (error ? fail(error) : ok()));
      })
  };
}

async function findFile(base: string, req: IncomingMessage): Promise<{path: string; size: number} | undefined> {
  if (req.method !== "GET" && req.method !== "HEAD") return undefined;
  let pathname: string;
  try {
    pathname = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
  } catch {
    return undefined;
  }
  const path = resolve(join(base, pathname));
  if (path !== base && !path.startsWith(base + sep)) return undefined;
  const candidates = pathname.endsWith("/")
    ? [join(path, "index.html")]
    : extname(pathname)
      ? [path]
      : [`${path}.html`, join(path, "index.html"), path];
  for (const candidate of candidates) {
    try {
      const info = await stat(candidate);
      if (info.isFile()) return {path: candidate, size: info.size};
    } catch {
      // try the next
    }
  }
  return undefined;
}
