"""A job's life: checked, built by the runner, submitted to NDIF non-blocking, polled, its result fetched and packed.

The relay polls NDIF when the workbench asks for the job (`GET /jobs/<id>`), not in the background: a job nobody
asks about costs nothing. Each poll reads NDIF's latest response and maps it to the contract's states. A job whose
state (and queue position) has not moved for `stuck_after` seconds is submitted again once, with the same request;
if it sticks again the relay gives up with a 504.

The API key is never kept: each call uses the key of the request that makes it. A job remembers only a SHA-256 of
the key that created it, so another key cannot read it (it answers 404, as for a job that does not exist).
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from . import params as checks
from . import tensors
from .errors import RelayError
from .hooks import ModelInfo
from .ndif import NdifClient, deployments, last_line, queue_position, result_link
from .runner import Runner

TERMINAL = ("COMPLETED", "ERROR", "CANCELLED")
KEEP_JOBS_S = 3 * 3600  # NDIF keeps results 2 hours; the relay forgets jobs an hour after that
MODELS_TTL_S = 60.0


@dataclass
class Job:
    id: str
    model: str
    experiment: str
    plan: Dict[str, Any]
    info: ModelInfo
    owner: str  # SHA-256 of the key that made it
    body: bytes
    headers: Dict[str, str]
    ndif_id: str = ""
    state: str = "RECEIVED"
    position: Optional[int] = None
    message: Optional[str] = None
    since: float = 0.0  # when state/position last changed
    created: float = 0.0
    resubmitted: bool = False
    failure: Optional[RelayError] = None  # a 504 once the job stuck twice
    link: Optional[tuple] = None  # COMPLETED's (url, size)
    result: Optional[bytes] = None
    states: List[str] = field(default_factory=list)  # every state seen, for record.py
    lock: threading.Lock = field(default_factory=threading.Lock)

    def view(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"id": self.id, "model": self.model, "experiment": self.experiment, "state": self.state}
        if self.state == "QUEUED" and self.position is not None:
            out["position"] = self.position
        if self.message is not None:
            out["message"] = self.message
        return out


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class Jobs:
    def __init__(
        self,
        ndif: NdifClient,
        runner: Runner,
        config: Callable[[str], dict],
        stuck_after: float = 20 * 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ndif = ndif
        self.runner = runner
        self.config = config  # repo id → config.json (the Hub cache)
        self.stuck_after = stuck_after
        self.clock = clock
        self._jobs: Dict[str, Job] = {}
        self._lock = threading.Lock()
        self._models: Optional[tuple] = None  # (when, [{"id", "state"}])

    # --- models ------------------------------------------------------------------------------------------------------

    def models(self) -> List[Dict[str, str]]:
        """NDIF's deployments (cached a minute: every submission checks its model against them)."""
        now = self.clock()
        if self._models is None or now - self._models[0] > MODELS_TTL_S:
            self._models = (now, deployments(self.ndif.status()))
        return self._models[1]

    def info(self, model: str) -> ModelInfo:
        if model not in {m["id"] for m in self.models()}:
            raise RelayError(404, f"{model} is not deployed on NDIF (see GET /models)", model=model)
        try:
            return ModelInfo.from_config(model, self.config(model))
        except ValueError as error:
            raise RelayError(502, str(error), model=model) from None

    # --- the endpoints -------------------------------------------------------------------------------------------

    def submit(self, body: object, key: Optional[str]) -> Job:
        key = require_key(key)
        model, experiment, params = checks.check_body(body)
        info = self.info(model)
        plan = checks.plan(experiment, params, info)
        request_body, headers = self.runner.build(info, experiment, plan)
        now = self.clock()
        job = Job(uuid.uuid4().hex, model, str(experiment), plan, info, digest(key), request_body, headers)
        job.created = job.since = now
        first = self.ndif.submit(request_body, headers, key)
        with job.lock:
            job.ndif_id = first["id"]
            self._apply(job, first)
        if job.state == "ERROR":
            raise RelayError(502, f"NDIF refused the job: {job.message}", model=model, state="ERROR")
        with self._lock:
            self._forget_old(now)
            self._jobs[job.id] = job
        return job

    def refresh(self, job_id: str, key: Optional[str]) -> Job:
        """The job after one poll of NDIF (none once it is COMPLETED, ERROR or CANCELLED)."""
        job = self.get(job_id, key)
        with job.lock:
            if job.failure:
                raise job.failure
            if job.state in TERMINAL:
                return job
            answer = self.ndif.response(job.ndif_id, key)
            self._apply(job, answer)
            if job.state not in TERMINAL and self.clock() - job.since > self.stuck_after:
                self._stuck(job, key)
        return job

    def result(self, job_id: str, key: Optional[str]) -> bytes:
        job = self.refresh(job_id, key)
        with job.lock:
            if job.state == "ERROR":
                raise RelayError(502, f"NDIF answered ERROR: {job.message}", model=job.model, state="ERROR")
            if job.state != "COMPLETED":
                raise RelayError(
                    409, f"job {job.id} is {job.state}, not COMPLETED: no result yet", model=job.model, state=job.state
                )
            if job.result is None:
                url, size = job.link
                payload = self.ndif.download(url, size)
                try:
                    arrays, header = self.runner.decode(job.info, job.experiment, job.plan, payload)
                    job.result = tensors.pack(arrays, header)
                except ValueError as error:
                    raise RelayError(
                        502, f"NDIF's result for job {job.id} is malformed: {error}", model=job.model, state=job.state
                    ) from None
            return job.result

    def cancel(self, job_id: str, key: Optional[str]) -> Job:
        job = self.get(job_id, key)
        with job.lock:
            job.state, job.position, job.result, job.failure = "CANCELLED", None, None, None
            job.states.append("CANCELLED")
        return job

    def get(self, job_id: str, key: Optional[str]) -> Job:
        key = require_key(key)
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or job.owner != digest(key):
            raise RelayError(404, f"no job {job_id} (unknown, forgotten after 3 hours, or made with another key)")
        return job

    # --- inside ------------------------------------------------------------------------------------------------------

    def _apply(self, job: Job, answer: Dict[str, Any]) -> None:
        status = answer["status"]
        if status in ("LOG", "STREAM"):  # a print() inside the trace, or hybrid execution: not a state
            return
        position = queue_position(answer.get("description")) if status == "QUEUED" else None
        if (status, position) != (job.state, job.position) or not job.states:
            job.since = self.clock()
        if not job.states or job.states[-1] != status:
            job.states.append(status)
        job.state, job.position = status, position
        if status == "ERROR":
            job.message = last_line(answer.get("description"))
        elif status == "COMPLETED":
            job.link = result_link(answer, f"GET /response/{job.ndif_id}")

    def _stuck(self, job: Job, key: str) -> None:
        waited = self.clock() - job.since
        if job.resubmitted:
            job.failure = RelayError(
                504,
                f"job {job.id} stayed {job.state} on NDIF for {waited:.0f} s after being submitted again; "
                "NDIF may be overloaded: try later",
                model=job.model,
                state=job.state,
            )
            raise job.failure
        first = self.ndif.submit(job.body, job.headers, key)
        job.resubmitted = True
        job.ndif_id = first["id"]
        job.state = ""  # so that the answer below counts as a change
        self._apply(job, first)

    def _forget_old(self, now: float) -> None:
        for jid in [j for j, job in self._jobs.items() if now - job.created > KEEP_JOBS_S]:
            del self._jobs[jid]


def require_key(key: Optional[str]) -> str:
    if not key or not key.strip():
        raise RelayError(401, "no NDIF API key: send it in the X-NDIF-Api-Key header (get one at login.ndif.us)")
    return key.strip()


def run_to_end(
    jobs: Jobs,
    body: Dict[str, Any],
    key: str,
    on_state: Optional[Callable[[Job, float], None]] = None,
    interval: float = 0.5,
    longest_interval: float = 5.0,
) -> tuple:
    """Submit a job and poll it (backing off) until it ends; `(job, result safetensors bytes)`.

    The build-time loader and record.py use this: the same path a page's job takes through the relay, without HTTP.
    `on_state(job, seconds since submission)` is called for each new state or queue position.
    """
    start = time.monotonic()
    job = jobs.submit(body, key)
    seen = None
    while True:
        if (job.state, job.position) != seen:
            seen = (job.state, job.position)
            if on_state:
                on_state(job, time.monotonic() - start)
        if job.state in TERMINAL:
            break
        time.sleep(interval)
        interval = min(interval * 1.5, longest_interval)
        job = jobs.refresh(job.id, key)
    return job, jobs.result(job.id, key)
