"""Loopback stand-ins for the tests: NDIF's endpoints, the Hub's file URLs, and a runner without nnsight.

`StandIn` serves, on 127.0.0.1 and a free port:
- NDIF: `GET /status`, `POST /request`, `GET /response/{id}` (each poll answers the next response of the job's
  script, then repeats the last), `GET /results/{id}` (the result file, as a presigned link would);
- the Hub: `GET /hub/{repo}/resolve/main/{file}`.
Each test sets what it answers (`script`, `fail`, `expired`, ...) and reads what it was sent (`requests`).

`JsonRunner` stands in for nnsight: its request body is the plan as JSON, and the "result file" NDIF serves is JSON
of the saved values, which it decodes into Arrays and hands to the real `experiments.shape`.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: `relay` as a package

from relay import experiments  # noqa: E402
from relay.hooks import ModelInfo  # noqa: E402
from relay.tensors import Array  # noqa: E402

GOOD_KEY = "lmw-test-key-7f3a9c-DO-NOT-LEAK"
MODEL = "meta-llama/Llama-3.1-8B"
# A small Llama-shaped config: 2 layers, 4 heads of 2, vocabulary 16.
CONFIG = {
    "model_type": "llama",
    "hidden_size": 8,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 2,
    "intermediate_size": 12,
    "vocab_size": 16,
    "eos_token_id": 2,
}


class StandIn:
    def __init__(self) -> None:
        self.requests: List[Tuple[str, str, Dict[str, str], bytes]] = []  # method, path, headers, body
        self.scripts: List[List[dict]] = []  # one per job to be submitted, in order
        self.jobs: Dict[str, dict] = {}  # ndif id → {"script", "polls"}
        self.results: Dict[str, bytes] = {}  # ndif id → result file
        self.fail: Dict[str, int] = {}  # path prefix → how many 503s still to answer
        self.expired = False
        self.hub_files: Dict[str, bytes] = {}  # "org/name/file" → bytes
        self.hub_short: Optional[int] = None  # announce this many more bytes than sent
        self.hub_hits = 0
        self.status = {
            "deployments": {
                "a": {"repo_id": MODEL, "deployment_level": "HOT", "model_key": "x"},
                "b": {
                    "model_key": 'nnsight.modeling.language.LanguageModel:{"repo_id": "meta-llama/Llama-3.1-70B", '
                    '"revision": null}',
                    "deployment_level": "WARM",
                },
            }
        }
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                stand_in._handle(self, "GET")

            def do_POST(self) -> None:
                stand_in._handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- what the tests set up ---------------------------------------------------------------------------------------

    def add_job(self, script: List[dict], result: Optional[dict] = None) -> None:
        """The next submitted job answers these responses to its polls (status, description, ...); COMPLETED
        responses get `data` = [url, size] of `result` (JSON of saved values) unless they carry their own."""
        self.scripts.append([dict(r, _result=result) for r in script])

    def posts(self) -> List[Tuple[str, str, Dict[str, str], bytes]]:
        return [r for r in self.requests if r[0] == "POST"]

    # --- serving -----------------------------------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        self.requests.append((method, h.path, {k.lower(): v for k, v in h.headers.items()}, body))
        for prefix, count in self.fail.items():
            if h.path.startswith(prefix) and count > 0:
                self.fail[prefix] = count - 1
                return self._send(h, 503, {"detail": "Service Unavailable"})
        if h.path.startswith("/hub/"):
            return self._hub(h)
        if method == "GET" and h.path == "/status":
            return self._send(h, 200, self.status)
        if method == "POST" and h.path == "/request":
            if h.headers.get("ndif-api-key") != GOOD_KEY:
                return self._send(h, 401, {"detail": "Missing or invalid API key. Please visit https://login.ndif.us/"})
            ndif_id = f"ndif-{len(self.jobs) + 1}"
            script = self.scripts.pop(0) if self.scripts else [{"status": "RECEIVED"}]
            self.jobs[ndif_id] = {"script": script, "polls": 0}
            first = {"id": ndif_id, "status": "RECEIVED", "description": "Your job has been received."}
            return self._send(h, 200, first)
        if method == "GET" and h.path.startswith("/response/"):
            job = self.jobs.get(h.path.rsplit("/", 1)[1])
            if job is None:
                return self._send(h, 404, {"detail": "no such job"})
            if h.headers.get("ndif-api-key") != GOOD_KEY:
                return self._send(h, 401, {"detail": "Missing or invalid API key."})
            step = job["script"][min(job["polls"], len(job["script"]) - 1)]
            job["polls"] += 1
            if "_raw" in step:
                return self._raw(h, 200, step["_raw"])
            answer = {k: v for k, v in step.items() if not k.startswith("_")}
            answer.setdefault("id", h.path.rsplit("/", 1)[1])
            if answer.get("status") == "COMPLETED" and "data" not in answer:
                ndif_id = answer["id"]
                blob = json.dumps(step["_result"]).encode()
                self.results[ndif_id] = blob
                answer["data"] = [f"{self.url}/results/{ndif_id}", len(blob)]
            return self._send(h, 200, answer)
        if method == "GET" and h.path.startswith("/results/"):
            if self.expired:
                return self._raw(h, 403, b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>")
            return self._raw(h, 200, self.results[h.path.rsplit("/", 1)[1]])
        return self._send(h, 404, {"detail": "Not Found"})

    def _hub(self, h: BaseHTTPRequestHandler) -> None:
        self.hub_hits += 1
        path = h.path[len("/hub/") :].replace("/resolve/main/", "/")
        data = self.hub_files.get(path)
        if data is None:
            return self._raw(h, 404, b"Entry not found")
        if self.hub_short:
            h.send_response(200)
            h.send_header("Content-Length", str(len(data) + self.hub_short))
            h.end_headers()
            h.wfile.write(data)
            h.close_connection = True
            return
        return self._raw(h, 200, data)

    def _send(self, h: BaseHTTPRequestHandler, status: int, body: Any) -> None:
        self._raw(h, status, json.dumps(body).encode())

    def _raw(self, h: BaseHTTPRequestHandler, status: int, data: bytes) -> None:
        h.send_response(status)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)


class JsonRunner:
    """The runner without nnsight: a JSON request body; results as JSON `{name: {"dtype", "shape", "data"}}`."""

    def version(self) -> str:
        return "test"

    def build(self, info: ModelInfo, experiment: str, plan: Dict[str, Any]) -> Tuple[bytes, Dict[str, str]]:
        body = json.dumps({"experiment": experiment, "plan": plan}).encode()
        return body, {"nnsight-model-key": info.id, "nnsight-version": "test", "python-version": "3.12"}

    def decode(self, info: ModelInfo, experiment: str, plan: Dict[str, Any], payload: bytes):
        saved = json.loads(payload)

        def array(v: Any) -> Any:
            if isinstance(v, list):
                return [array(x) for x in v]
            return Array(v["dtype"], v["shape"], v["data"])

        return experiments.shape(experiment, plan, info, {k: array(v) for k, v in saved.items()})


def saved(dtype: str, shape: List[int], start: float = 0.0) -> dict:
    """A saved value for the stand-in's result JSON: 0, 1, 2, ... (or from `start`)."""
    n = 1
    for d in shape:
        n *= d
    data = [int(start) + i for i in range(n)] if dtype == "I32" else [start + i * 0.5 for i in range(n)]
    return {"dtype": dtype, "shape": shape, "data": data}
