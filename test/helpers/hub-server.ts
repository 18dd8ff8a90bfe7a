/**
 * A stand-in for the Hugging Face Hub in tests, on two loopback ports, behaving as the real Hub does:
 *
 * - `GET/HEAD /{org?}/{name}/resolve/{revision}/{file}` serves small files itself (200, with an `ETag` that is
 *   not a sha256, as the Hub's git blob ids are not); a large ("LFS") file — any `.safetensors`, or any file of
 *   `lfsMinBytes` or more — answers 302 to the second port, the "CDN", with `X-Linked-Size` and
 *   `X-Linked-Etag` (the file's sha256, quoted, as the Hub gives it) and `ETag` the same;
 * - the CDN serves the file with Range (206), its sha256 as `ETag`, and CORS headers;
 * - a gated repository (`gated`: by default `meta-llama/*`) answers 401 unless `Authorization: Bearer <token>`
 *   carries its token; a missing repository or file answers 404 with the Hub's `X-Error-Code`;
 * - faults can be injected: 429 with `Retry-After`, a connection dropped after some bytes, a `Content-Length`
 *   shorter than the file, an HTML page with 200.
 *
 * Repositories are local folders: `roots` maps a repo id ("test-org/tiny") to a folder, or "id@revision" to the
 * folder of that revision only. Also a tiny safetensors writer for making checkpoints in tests.
 */
import {createHash} from "node:crypto";
import {createServer, type IncomingMessage, type Server, type ServerResponse} from "node:http";
import {readFileSync} from "node:fs";
import {stat} from "node:fs/promises";
import path from "node:path";

export interface HubRequest {
  method: string;
  url: string;
  range?: string;
  /** The Authorization header, if the request carried one. */
  authorization?: string;
}

/** Something to go wrong, for the next `times` requests that match (default 1). */
export type Fault = {times?: number; file?: string; on?: "hub" | "cdn"} & (
  | {kind: "rate-limit"; retryAfter: number}
  /** Send the headers and `afterBytes` of the body, then drop the connection. */
  | {kind: "drop"; afterBytes: number}
  /** A Content-Length (and body) of `bytes`, shorter than the file, sent as if complete. */
  | {kind: "short"; bytes: number}
  /** 200 with an HTML page, as a captive portal or a proxy's error page sends. */
  | {kind: "html"}
  /** The right length, one byte changed near the end (damaged on the way). */
  | {kind: "flip"}
);

export interface HubServer {
  /** e.g. http://127.0.0.1:40123 — pass as `endpoint`. */
  endpoint: string;
  /** The CDN's origin, where large files are redirected. */
  cdn: string;
  close(): Promise<void>;
  /** Every request to the Hub's port, in order. */
  requests: HubRequest[];
  /** Every request to the CDN's port, in order. */
  cdnRequests: HubRequest[];
  /** Queue a fault for the next matching requests. */
  inject(fault: Fault): void;
  /** Forget the faults not used up yet. */
  clearFaults(): void;
}

export interface HubServerOptions {
  /** Answer Range requests with the whole file (200), as some servers do. */
  ignoreRange?: boolean;
  /** Files of this size or more are LFS files, redirected to the CDN (`.safetensors` always are). Default 10 MB. */
  lfsMinBytes?: number;
  /** Gated repositories, "org/name" or "org/*", each with the token that opens it. Default: meta-llama/* → TEST_TOKEN. */
  gated?: Record<string, string>;
}

/** The token that opens the default gated repositories. */
export const TEST_TOKEN = "hf_loopbackTestToken0123456789";

const CORS_HEADERS = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Headers": "Range, Authorization",
  "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
  "Access-Control-Expose-Headers":
    "Content-Length, Content-Range, Accept-Ranges, ETag, X-Linked-Size, X-Linked-Etag, X-Error-Code, Retry-After",
  "Cross-Origin-Resource-Policy": "cross-origin"
};

interface RepoFile {
  repo: string;
  file: string;
  path: string;
  size: number;
}

/** Starts the Hub and its CDN on 127.0.0.1. */
export async function startHubServer(
  roots: Record<string, string>,
  options: HubServerOptions = {}
): Promise<HubServer> {
  const requests: HubRequest[] = [];
  const cdnRequests: HubRequest[] = [];
  const faults: Fault[] = [];
  const gated = options.gated ?? {"meta-llama/*": TEST_TOKEN};
  const lfsMinBytes = options.lfsMinBytes ?? 10 << 20;
  const hashes = new Map<string, string>(); // path → sha256, computed once
  const sha256Of = (file: string) => {
    if (!hashes.has(file)) hashes.set(file, createHash("sha256").update(readFileSync(file)).digest("hex"));
    return hashes.get(file)!;
  };
  const byHash = new Map<string, RepoFile>(); // what the CDN serves, filled as the Hub redirects

  /** The first queued fault that matches, used up once. */
  const takeFault = (on: "hub" | "cdn", file: string): Fault | undefined => {
    const index = faults.findIndex((f) => (f.on ?? on) === on && (f.file === undefined || f.file === file));
    if (index < 0) return undefined;
    const fault = faults[index];
    fault.times = (fault.times ?? 1) - 1;
    if (fault.times <= 0) faults.splice(index, 1);
    return fault;
  };

  const handle = (
    origin: "hub" | "cdn",
    answer: (request: IncomingMessage, response: ServerResponse) => Promise<void>
  ) =>
    createServer((request, response) => {
      const authorization = request.headers.authorization;
      (origin === "hub" ? requests : cdnRequests).push({
        method: request.method ?? "GET",
        url: request.url ?? "/",
        range: request.headers.range,
        ...(authorization ? {authorization} : {})
      });
      if (request.method === "OPTIONS") return void response.writeHead(204, CORS_HEADERS).end();
      answer(request, response).catch((error) => {
        if (!response.headersSent) response.writeHead(500, CORS_HEADERS);
        response.end(String(error));
      });
    });

  let cdnOrigin = "";
  const hub = handle("hub", async (request, response) => {
    const parsed = parseResolve(request.url ?? "/");
    if (!parsed) return notFound(response, "EntryNotFound", "Not a resolve URL");
    const {repo, revision, file} = parsed;
    const gate = gateOf(repo, gated);
    if (gate !== undefined && request.headers.authorization !== `Bearer ${gate}`) {
      const message = `Access to model ${repo} is restricted. You must have access to it and be authenticated to access it. Please log in.`;
      return void response
        .writeHead(401, {...CORS_HEADERS, "Content-Type": "text/plain", "X-Error-Code": "GatedRepo"})
        .end(message);
    }
    const root = rootOf(roots, repo, revision);
    if (!root) return notFound(response, "RepoNotFound", "Repository not found");
    const found = await findFile(root, repo, file);
    if (!found) return notFound(response, "EntryNotFound", "Entry not found");
    if (request.method !== "GET" && request.method !== "HEAD") return void response.writeHead(405, CORS_HEADERS).end();

    const fault = takeFault("hub", file);
    if (fault?.kind === "rate-limit") {
      return void response
        .writeHead(429, {...CORS_HEADERS, "Retry-After": String(fault.retryAfter), "Content-Type": "text/plain"})
        .end("Too Many Requests");
    }
    if (fault?.kind === "html") {
      const page =
        "<!doctype html><html><head><title>Sign in to the network</title></head><body>Please sign in.</body></html>";
      return void response
        .writeHead(200, {
          ...CORS_HEADERS,
          "Content-Type": "text/html; charset=utf-8",
          "Content-Length": String(page.length)
        })
        .end(page);
    }
    if (file.endsWith(".safetensors") || found.size >= lfsMinBytes) {
      const sha = sha256Of(found.path);
      byHash.set(sha, found);
      const location = `${cdnOrigin}/repos/${sha.slice(0, 2)}/${sha}?file=${encodeURIComponent(file)}&expires=${Date.now() + 3600_000}`;
      // The Hub's own headers on the redirect: the size and hash of the file behind it.
      return void response
        .writeHead(302, {
          ...CORS_HEADERS,
          Location: location,
          "X-Linked-Size": String(found.size),
          "X-Linked-Etag": `"${sha}"`,
          ETag: `"${sha}"`,
          "Content-Length": "0"
        })
        .end();
    }
    // A small file is served from git: its ETag is the git blob id (sha1), not a sha256.
    const etag = createHash("sha1").update(`blob ${found.size}\0`).update(readFileSync(found.path)).digest("hex");
    sendFile(request, response, found, {ETag: `"${etag}"`}, options, fault);
  });

  const cdn = handle("cdn", async (request, response) => {
    const url = new URL(request.url ?? "/", "http://localhost");
    const sha = url.pathname.match(/^\/repos\/[0-9a-f]{2}\/([0-9a-f]{64})$/)?.[1];
    const found = sha === undefined ? undefined : byHash.get(sha);
    if (!found)
      return void response
        .writeHead(403, {...CORS_HEADERS, "Content-Type": "application/xml"})
        .end("<Error><Code>AccessDenied</Code></Error>");
    const fault = takeFault("cdn", found.file);
    if (fault?.kind === "rate-limit") {
      return void response.writeHead(429, {...CORS_HEADERS, "Retry-After": String(fault.retryAfter)}).end();
    }
    sendFile(request, response, found, {ETag: `"${sha}"`}, options, fault);
  });

  const [hubPort, cdnPort] = await Promise.all([listen(hub), listen(cdn)]);
  cdnOrigin = `http://127.0.0.1:${cdnPort}`;
  const close = (server: Server) =>
    new Promise<void>((resolve, reject) => {
      server.closeAllConnections();
      server.close((error) => (error ? reject(error) : resolve()));
    });
  return {
    endpoint: `http://127.0.0.1:${hubPort}`,
    cdn: cdnOrigin,
    requests,
    cdnRequests,
    inject: (fault) => void faults.push({...fault}),
    clearFaults: () => void (faults.length = 0),
    close: async () => void (await Promise.all([close(hub), close(cdn)]))
  };
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("hub server has no port");
  return address.port;
}

function notFound(response: ServerResponse, code: "RepoNotFound" | "EntryNotFound", message: string): void {
  response.writeHead(404, {...CORS_HEADERS, "Content-Type": "text/plain", "X-Error-Code": code}).end(message);
}

/** The file's bytes (or the part asked for), with whatever fault was drawn. */
function sendFile(
  request: IncomingMessage,
  response: ServerResponse,
  found: RepoFile,
  extra: Record<string, string>,
  options: HubServerOptions,
  fault?: Fault
) {
  const range = options.ignoreRange ? undefined : parseRange(request.headers.range, found.size);
  if (range === "unsatisfiable") {
    response.writeHead(416, {...CORS_HEADERS, "Content-Range": `bytes */${found.size}`}).end();
    return;
  }
  const [start, end] = range ?? [0, found.size - 1]; // inclusive, as HTTP counts
  let body = readFileSync(found.path).subarray(start, end + 1);
  if (fault?.kind === "short") body = body.subarray(0, fault.bytes);
  if (fault?.kind === "flip" && body.length > 0) (body = Buffer.from(body))[body.length - 2] ^= 0xff;
  response.writeHead(range ? 206 : 200, {
    ...CORS_HEADERS,
    ...extra,
    "Accept-Ranges": options.ignoreRange ? "none" : "bytes",
    "Content-Type": "application/octet-stream",
    "Content-Length": String(fault?.kind === "drop" ? end - start + 1 : body.length),
    ...(range ? {"Content-Range": `bytes ${start}-${end}/${found.size}`} : {})
  });
  if (request.method === "HEAD" || body.length === 0) return void response.end();
  if (fault?.kind === "drop") {
    // Part of the body, then the connection goes: the client sees a body shorter than its Content-Length.
    response.write(body.subarray(0, fault.afterBytes), () => setTimeout(() => response.socket?.destroy(), 20));
    return;
  }
  response.end(body);
}

/** `/{repo}/resolve/{revision}/{file}` with each part decoded, as the Hub reads it. */
function parseResolve(url: string): {repo: string; revision: string; file: string} | undefined {
  const match = new URL(url, "http://localhost").pathname.match(/^\/(.+?)\/resolve\/([^/]+)\/(.+)$/);
  if (!match) return undefined;
  try {
    return {
      repo: decodeURIComponent(match[1]),
      revision: decodeURIComponent(match[2]),
      file: decodeURIComponent(match[3])
    };
  } catch {
    return undefined;
  }
}

function gateOf(repo: string, gated: Record<string, string>): string | undefined {
  for (const [pattern, token] of Object.entries(gated)) {
    if (pattern === repo || (pattern.endsWith("/*") && repo.startsWith(pattern.slice(0, -1)))) return token;
  }
  return undefined;
}

function rootOf(roots: Record<string, string>, repo: string, revision: string): string | undefined {
  const key = Object.hasOwn(roots, `${repo}@${revision}`)
    ? `${repo}@${revision}`
    : Object.hasOwn(roots, repo)
      ? repo
      : undefined;
  return key === undefined ? undefined : path.resolve(roots[key]);
}

async function findFile(root: string, repo: string, file: string): Promise<RepoFile | undefined> {
  const full = path.resolve(root, file);
  if (!full.startsWith(root + path.sep)) return undefined;
  try {
    const info = await stat(full);
    return info.isFile() ? {repo, file, path: full, size: info.size} : undefined;
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
  return encodeRaw(
    JSON.stringify(header),
    tensors.map((t) => t.bytes)
  );
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
