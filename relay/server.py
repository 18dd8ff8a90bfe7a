"""The relay's HTTP server (PROTOCOL.md): the standard library's ThreadingHTTPServer, one thread per request.

Every answer carries `Access-Control-Allow-Origin: *` (the pages call from another origin) and `OPTIONS` answers
preflights. Every non-2xx answer is JSON `{"error": {...}}`. The log names the method, the path and the status,
never a header: the API key (`X-NDIF-Api-Key`) is read, passed to NDIF, and forgotten.
"""

from __future__ import annotations

import json
import sys
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional, TextIO

from . import DEFAULT_NDIF, NAME, PROTOCOL
from .errors import RelayError
from .hub import HubFiles
from .jobs import Jobs
from .ndif import NdifClient
from .runner import NnsightRunner, Runner

MAX_BODY = 1 << 20
KEY_HEADER = "X-NDIF-Api-Key"


class Relay:
    """What the handler serves from: NDIF's client, the jobs, the Hub files."""

    def __init__(
        self,
        ndif_host: str = DEFAULT_NDIF,
        cache_dir: Path = Path("data/relay-cache"),
        runner: Optional[Runner] = None,
        stuck_after: float = 20 * 60,
        tries: int = 3,
        backoff: float = 1.0,
        hub_endpoint: Optional[str] = None,
        log: TextIO = sys.stderr,
    ) -> None:
        self.ndif = NdifClient(ndif_host, tries=tries, backoff=backoff)
        self.runner = runner or NnsightRunner()
        self.hub = HubFiles(cache_dir, endpoint=hub_endpoint)
        self.jobs = Jobs(self.ndif, self.runner, self.hub.config, stuck_after=stuck_after)
        self.log = log

    def health(self) -> dict:
        return {"relay": NAME, "protocol": PROTOCOL, "nnsight": self.runner.version(), "ndif": self.ndif.host}


def make_server(relay: Relay, host: str = "127.0.0.1", port: int = 8765) -> ThreadingHTTPServer:
    class Handler(RelayHandler):
        pass

    Handler.relay = relay
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


class RelayHandler(BaseHTTPRequestHandler):
    relay: Relay
    server_version = "lm-workbench-ndif-relay"
    protocol_version = "HTTP/1.1"

    # --- methods -----------------------------------------------------------------------------------------------------

    def do_OPTIONS(self) -> None:
        self.send_response(204)
        self._cors()
        self.send_header("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", f"Content-Type, {KEY_HEADER}")
        self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # --- routing -----------------------------------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        try:
            # Read the body whatever the route, so a kept-alive connection stays in step after an error.
            self._raw = self._read()
            path = urllib.parse.urlsplit(self.path).path
            parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
            self._route(method, parts)
        except RelayError as error:
            self._json(error.status, error.body())
        except Exception as error:  # a bug: answer in JSON, keep the server up, log the traceback (no headers in it)
            traceback.print_exc(file=self.relay.log)
            self._json(500, {"error": {"message": f"the relay failed: {type(error).__name__}: {error}"}})

    def _route(self, method: str, parts: list) -> None:
        relay = self.relay
        key = self.headers.get(KEY_HEADER)
        if method == "GET" and parts == ["health"]:
            return self._json(200, relay.health())
        if method == "GET" and parts == ["models"]:
            return self._json(200, {"models": relay.jobs.models()})
        if method == "GET" and len(parts) in (3, 4) and parts[0] == "models":
            repo, name = "/".join(parts[1:-1]), parts[-1]
            return self._bytes(200, relay.hub.get(repo, name), "application/json")
        if parts[:1] == ["jobs"]:
            if method == "POST" and len(parts) == 1:
                job = relay.jobs.submit(self._body(), key)
                return self._json(202, {"id": job.id, "state": job.state, "model": job.model, "experiment": job.experiment})
            if method == "GET" and len(parts) == 2:
                return self._json(200, relay.jobs.refresh(parts[1], key).view())
            if method == "GET" and len(parts) == 3 and parts[2] == "result":
                return self._bytes(200, relay.jobs.result(parts[1], key), "application/octet-stream")
            if method == "DELETE" and len(parts) == 2:
                job = relay.jobs.cancel(parts[1], key)
                return self._json(200, {"id": job.id, "state": job.state})
        raise RelayError(404, f"no endpoint {method} /{'/'.join(parts)} (see relay/PROTOCOL.md)")

    # --- bodies and answers ----------------------------------------------------------------------------------------

    def _read(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            raise RelayError(400, "Content-Length is not a number") from None
        if length > MAX_BODY:
            self.close_connection = True
            raise RelayError(400, f"the body is {length} bytes; the relay takes at most {MAX_BODY}")
        return self.rfile.read(length) if length > 0 else b""

    def _body(self) -> Any:
        try:
            return json.loads(self._raw or b"null")
        except ValueError as error:
            raise RelayError(400, f"the body is not JSON: {error}") from None

    def _cors(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")

    def _json(self, status: int, body: dict) -> None:
        self._bytes(status, json.dumps(body).encode("utf-8"), "application/json")

    def _bytes(self, status: int, data: bytes, kind: str) -> None:
        self.send_response(status)
        self._cors()
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # The request line and the status only (BaseHTTPRequestHandler logs no headers; neither do we).
        self.relay.log.write(f"{self.address_string()} {format % args}\n")
        self.relay.log.flush()
