"""NDIF's HTTP API, as nnsight's RemoteBackend speaks it (nnsight 0.7, `intervention/backends/remote.py`).

- `POST {host}/request`: the body is nnsight's serialized request (zstd), `Content-Type: application/octet-stream`,
  headers `ndif-api-key`, `nnsight-model-key`, `nnsight-version`, `python-version`, `nnsight-compress`, ... . A
  refusal is a non-200 with JSON `{"detail": "..."}` (401 for the key; 400 when nnsight or Python differ from the
  server's). The answer is the job's first response, JSON `{"id", "status", "description", "data"?}`.
- `GET {host}/response/{id}`: the job's latest response. `status` is RECEIVED, QUEUED ("Moved to position N in
  Queue."), DISPATCHED, RUNNING, LOG, COMPLETED or ERROR (`description` the traceback); COMPLETED's `data` is the
  result's URL, or `[url, size]`: a `torch.save` file of the saved values, zstd-compressed when the request was.
- `GET {host}/status`: `{"deployments": {key: {"repo_id", "deployment_level": HOT|WARM|COLD, ...}}}`.

NDIF has no cancel endpoint; a job the relay cancels is left to finish and its result is never fetched.

503s and dropped connections are tried again (3 tries in all, with backoff); what still fails is a RelayError 503.
The API key travels in the `ndif-api-key` header only, and is never part of a message.
"""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, Optional, Tuple

from .errors import RelayError

STATES = ("RECEIVED", "QUEUED", "DISPATCHED", "RUNNING", "COMPLETED", "ERROR")
_POSITION = re.compile(r"position\s+(\d+)", re.IGNORECASE)
RETRIED = (502, 503, 504)


class NdifClient:
    def __init__(
        self,
        host: str,
        tries: int = 3,
        backoff: float = 1.0,
        timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not host.startswith(("http://", "https://")):
            raise ValueError(f"NDIF host {host!r}: must start with http:// or https://")
        self.host = host.rstrip("/")
        self.tries = tries
        self.backoff = backoff
        self.timeout = timeout
        self.sleep = sleep

    # --- the endpoints ---------------------------------------------------------------------------------------------

    def submit(self, body: bytes, headers: Dict[str, str], key: str) -> Dict[str, Any]:
        """POST /request; NDIF's first response for the job."""
        h = {**headers, "ndif-api-key": key, "Content-Type": "application/octet-stream"}
        answer = self._json("POST", "/request", h, body, "POST /request")
        return check_response(answer, "POST /request")

    def response(self, job_id: str, key: str) -> Dict[str, Any]:
        """GET /response/{id}; the job's latest response."""
        answer = self._json("GET", f"/response/{job_id}", {"ndif-api-key": key}, None, f"GET /response/{job_id}")
        return check_response(answer, f"GET /response/{job_id}")

    def status(self) -> Dict[str, Any]:
        answer = self._json("GET", "/status", {}, None, "GET /status")
        if not isinstance(answer, dict) or not isinstance(answer.get("deployments"), dict):
            raise RelayError(502, f"NDIF's GET /status is malformed: no \"deployments\" object in {_short(answer)}")
        return answer

    def env(self) -> Dict[str, Any]:
        """GET /env: the server's Python and package versions (nnsight's `compare()` reads it)."""
        return self._json("GET", "/env", {}, None, "GET /env")

    def download(self, url: str, size: Optional[int]) -> bytes:
        """The result file at `url` (a presigned link, no key), checked against `size`; 410 once it has expired."""
        status, _, data = self._call("GET", url, {}, None, "the result download", absolute=True)
        if status in (403, 404, 410):
            raise RelayError(410, "NDIF's result has expired (results are kept 2 hours): run the job again")
        if status != 200:
            raise RelayError(502, f"the result download answered {status}: {_short(data)}")
        if size is not None and len(data) != size:
            raise RelayError(502, f"the result download was cut short: {len(data)} of {size} bytes")
        return data

    # --- HTTP with retries -------------------------------------------------------------------------------------------

    def _json(self, method: str, path: str, headers: Dict[str, str], body: Optional[bytes], what: str) -> Any:
        status, _, data = self._call(method, path, headers, body, what)
        if status == 401 or status == 403:
            raise RelayError(401, f"NDIF refused the API key ({what}): {_detail(data)}")
        if status == 404:
            raise RelayError(404, f"NDIF has no such thing ({what}): {_detail(data)}")
        if status != 200:
            raise RelayError(502, f"NDIF answered {status} to {what}: {_detail(data)}")
        try:
            return json.loads(data)
        except ValueError:
            raise RelayError(502, f"NDIF's answer to {what} is not JSON: {_short(data)}") from None

    def _call(
        self,
        method: str,
        path: str,
        headers: Dict[str, str],
        body: Optional[bytes],
        what: str,
        absolute: bool = False,
    ) -> Tuple[int, Dict[str, str], bytes]:
        url = path if absolute else self.host + path
        last = ""
        for attempt in range(self.tries):
            if attempt:
                self.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(url, data=body, method=method, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                    return answer.status, dict(answer.headers), answer.read()
            except urllib.error.HTTPError as error:
                data = error.read()
                if error.code not in RETRIED:
                    return error.code, dict(error.headers or {}), data
                last = f"{error.code} {_detail(data)}"
            except (urllib.error.URLError, OSError, http.client.HTTPException) as error:  # refused, reset, cut short
                last = str(getattr(error, "reason", error))
        raise RelayError(503, f"NDIF is unreachable ({what} at {self.host}, {self.tries} tries): {last}")


def check_response(answer: Any, what: str) -> Dict[str, Any]:
    """NDIF's response object, checked: an id, a known status, and for COMPLETED a result link. 502 names a flaw."""
    if not isinstance(answer, dict):
        raise RelayError(502, f"NDIF's answer to {what} is malformed: not an object but {_short(answer)}")
    if not isinstance(answer.get("id"), str) or not answer["id"]:
        raise RelayError(502, f"NDIF's answer to {what} is malformed: no job \"id\" in {_short(answer)}")
    status = answer.get("status")
    if status not in STATES and status not in ("LOG", "STREAM"):
        raise RelayError(502, f"NDIF's answer to {what} is malformed: unknown \"status\" {status!r}")
    if status == "COMPLETED":
        result_link(answer, what)
    return answer


def result_link(answer: Dict[str, Any], what: str) -> Tuple[str, Optional[int]]:
    """COMPLETED's `data`: a URL, or `[url, size]`."""
    data = answer.get("data")
    if isinstance(data, str) and data.startswith(("http://", "https://")):
        return data, None
    if (
        isinstance(data, list)
        and len(data) == 2
        and isinstance(data[0], str)
        and data[0].startswith(("http://", "https://"))
        and isinstance(data[1], (int, float))
        and not isinstance(data[1], bool)
    ):
        return data[0], int(data[1])
    raise RelayError(502, f"NDIF's answer to {what} is malformed: COMPLETED without a result [url, size] in \"data\"")


def queue_position(description: object) -> Optional[int]:
    """N from NDIF's "Moved to position N in Queue."."""
    m = _POSITION.search(description) if isinstance(description, str) else None
    return int(m.group(1)) if m else None


def last_line(description: object) -> str:
    """An ERROR's message: a traceback's last line, or the whole description when it is one line."""
    lines = [l.strip() for l in str(description or "").strip().splitlines() if l.strip()]
    return lines[-1] if lines else "NDIF gave no description"


def deployments(status: Dict[str, Any]) -> list:
    """`/status` as the relay's `/models`: one entry per deployed repo, HOT before WARM before COLD."""
    rank = {"HOT": 0, "WARM": 1, "COLD": 2}
    models: Dict[str, str] = {}
    for value in status["deployments"].values():
        if not isinstance(value, dict):
            continue
        repo = value.get("repo_id")
        if repo is None and isinstance(value.get("model_key"), str):
            try:  # "nnsight.modeling.language.LanguageModel:{\"repo_id\": ...}"
                repo = json.loads(value["model_key"].split(":", 1)[1]).get("repo_id")
            except (ValueError, IndexError, AttributeError):
                repo = None
        state = value.get("deployment_level", "COLD")
        if isinstance(repo, str) and (repo not in models or rank.get(state, 3) < rank.get(models[repo], 3)):
            models[repo] = state
    return [{"id": r, "state": s} for r, s in sorted(models.items(), key=lambda x: (rank.get(x[1], 3), x[0]))]


def _detail(data: bytes) -> str:
    try:
        detail = json.loads(data).get("detail")
        if detail:
            return str(detail)
    except (ValueError, AttributeError):
        pass
    return _short(data)


def _short(value: Any) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else json.dumps(value, default=str)
    return text if len(text) <= 200 else text[:200] + "…"
