/**
 * A stand-in for the Hugging Face Hub in tests: serves `GET/HEAD /{org?}/{name}/resolve/{revision}/{file}`
 * from local folders, with Content-Length, Range (206) and CORS headers so that browsers can use it too.
 * Also a tiny safetensors writer for making checkpoints in tests.
 */
import {createServer} from "node:http";
import type {IncomingMessage, ServerResponse} from "node:http";
import {createReadStream} from "node:fs";
import {stat} from "node:fs/promises";
import path from "node:path";

export interface HubRequest {
  method: string;
  url: string;
  range?: string;
}

export interface HubServer {
  /** e.g. http://127.0.0.1:40123 — pass as `endpoint`. */
  endpoint: string;
  close(): Promise<void>;
  /** Every request, in order. */
  requests: HubRequest[];
}

export interface HubServerOptions {
  /** Answer Range requests with the whole file (200), as some servers do. */
  ignoreRange?: boolean;
}

const CORS_HEADERS = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Headers": "Range",
  "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
  "Access-Control-Expose-Headers": "Content-Length, Content-Range, Accept-Ranges",
  "Cross-Origin-Resource-Policy": "cross-origin"
};

/** Starts a server on 127.0.0.1 whose repositories are `roots` (repo id such as "test-org/tiny-gpt2" → folder). */
export async function startHubServer(roots: Record<string, string>, options: HubServerOptions = {}): Promise<HubServer> {
  const requests: HubRequest[] = [];
  const server = createServer((request, response) => {
    requests.push({method: request.method ?? "GET", url: request.url ?? "/", range: request.headers.range});
    serve(request, response, roots, options).catch((error) => {
      if (!response.headersSent) response.writeHead(500, CORS_HEADERS);
      response.end(String(error));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("hub server has no port");

  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    requests,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      })
  };
}

async function serve(request: IncomingMessage, response: ServerResponse, roots: Record<string, string>, options: HubServerOptions) {
  if (request.method === "OPTIONS") {
    response.writeHead(204, CORS_HEADERS).end();
    return;
  }
  const file = await findFile(request.url ?? "/", roots);
  if (!file || (request.method !== "GET" && request.method !== "HEAD")) {
    response.writeHead(404, {...CORS_HEADERS, "Content-Type": "text/plain"}).end("Entry not found");
    return;
  }

  const range = options.ignoreRange ? undefined : parseRange(request.headers.range, file.size);
  if (range === "unsatisfiable") {
    response.writeHead(416, {...CORS_HEADERS, "Content-Range": `bytes */${file.size}`}).end();
    return;
  }
  const [start, end] = range ?? [0, file.size - 1]; // inclusive, as HTTP counts
  const headers = {
    ...CORS_HEADERS,
    "Accept-Ranges": options.ignoreRange ? "none" : "bytes",
    "Content-Type": "application/octet-stream",
    "Content-Length": String(Math.max(0, end - start + 1)),
    ...(range ? {"Content-Range": `bytes ${start}-${end}/${file.size}`} : {})
  };
  response.writeHead(range ? 206 : 200, headers);
  if (request.method === "HEAD" || end < start) {
    response.end();
    return;
  }
  createReadStream(file.path, {start, end}).pipe(response);
}

/** The local file for `/{repo id}/resolve/{revision}/{file}`, if there is one. */
async function findFile(url: string, roots: Record<string, string>): Promise<{path: string; size: number} | undefined> {
  const match = new URL(url, "http://localhost").pathname.match(/^\/(.+?)\/resolve\/[^/]+\/(.+)$/);
  if (!match) return undefined;
  const [repo, file] = [decodeURIComponent(match[1]), decodeURIComponent(match[2])];
  const root = Object.hasOwn(roots, repo) ? path.resolve(roots[repo]) : undefined;
  if (!root) return undefined;
  const full = path.resolve(root, file);
  if (!full.startsWith(root + path.sep)) return undefined;
  try {
    const info = await stat(full);
    return info.isFile() ? {path: full, size: info.size} : undefined;
  } catch {
    return undefined;
  }
}

/** `bytes=a-b`, `bytes=a-` or `bytes=-n` as inclusive [start, end]; undefined for no or unusable Range. */
function parseRange(header: string | undefined, size: number): [number, number] | "unsatisfiable" | undefined {
  const match = header?.match(/^bytes=(\d*)-(\d*)$/);
  if (!match || (match[1] === "" && match[2] === "")) return undefined;
  if (match[1] === "") return [Math.max(0, size - Number(match[2])), size - 1];
  const start = Number(match[1]);
  if (start >= size) return "unsatisfiable";
  const end = match[2] === "" ? size - 1 : Math.min(Number(match[2]), size - 1);
  return end < start ? undefined : [start, end];
}

export interface TensorToWrite {
  name: string;
  dtype: string;
  shape: number[];
  /** The raw little-endian data. */
  bytes: Uint8Array;
}

/** A safetensors file holding `tensors` in order, with an optional `__metadata__`. */
export function encodeSafetensors(tensors: TensorToWrite[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = metadata ? {__metadata__: metadata} : {};
  let offset = 0;
  for (const {name, dtype, shape, bytes} of tensors) {
    header[name] = {dtype, shape, data_offsets: [offset, offset + bytes.length]};
    offset += bytes.length;
  }
  return encodeRaw(JSON.stringify(header), tensors.map((t) => t.bytes));
}

/** A file made of an 8-byte length, the header text (padded with spaces to 8 bytes) and the data, as given. */
export function encodeRaw(headerText: string, data: Uint8Array[] = [], headerLength?: number): Uint8Array {
  let json = new TextEncoder().encode(headerText);
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) json = new TextEncoder().encode(headerText + " ".repeat(padded - json.length));
  const dataLength = data.reduce((sum, d) => sum + d.length, 0);
  const out = new Uint8Array(8 + json.length + dataLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength ?? json.length), true);
  out.set(json, 8);
  let offset = 8 + json.length;
  for (const d of data) {
    out.set(d, offset);
    offset += d.length;
  }
  return out;
}
