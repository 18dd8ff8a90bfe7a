"""The REAL relay (server.py) wired to the loopback stand-in of NDIF and the Hub (standin.py), for the TypeScript
side's contract test (test/relay-contract.test.ts): the workbench's real client talks to the real relay, and only
NDIF (and nnsight, through `JsonRunner`) is stood in for. Tests only.

    python3 relay/tests/serve_standin.py

prints one JSON line, `{"relay": "http://127.0.0.1:<port>", "ndif": <the stand-in NDIF's host; its Hub is at
<ndif>/hub>, "key": <the key NDIF accepts>, "model", "vocab", "seeds"}`, then serves until its stdin closes (or it is killed). The relay's log (one line a request: method, path,
status) goes to stderr, where the test looks for the DELETE of a cancelled job.

Every job NDIF receives goes RECEIVED (the answer to the submission), then one poll each: QUEUED at position 2,
QUEUED at position 1, RUNNING, COMPLETED. Its saved values are what nnsight's body would save for that plan (the
shapes of experiments.py's `*_trace` bodies: the sweeps' rows flat, the first traced value without its batch axis as
NDIF sends it, nnsight #581), filled by a formula the test repeats to know every number it must receive:

    F32 value i of a tensor seeded s:  s + 0.25 * ((i * i + (s + 20) * i) % 17)    (exact in float32)
    I32 value i (a token id):          (s + 37 * i) % vocab

with the integer seeds below (the seed is in the step, so that two tensors' differences differ too; the trace's j-th saved value, in forward order, is seeded `seeds["values"] + j`).

Commands, one JSON line each on stdin, each answered by one JSON line on stdout:
    {"fail_next": "<NDIF's description>"}  the next job goes RUNNING, then ERROR with that description.
    {"last_request": true}                 the last request NDIF received: the experiment and the relay's plan
                                           (what nnsight's body would be built from), to check what the client sent.
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Dict, List

import standin
from standin import GOOD_KEY, MODEL, JsonRunner, StandIn, saved
from relay.server import Relay, make_server

FIXTURE = Path(__file__).resolve().parents[2] / "test" / "fixtures" / "stories260K"
VOCAB = len(json.loads((FIXTURE / "tokenizer.json").read_text())["model"]["vocab"])
# standin.py's small Llama (2 layers, 4 heads of 2) with the vocabulary of the tokenizer the workbench reads, and
# the fields every real Llama config.json has that the relay does not read but the workbench does.
CONFIG = {**standin.CONFIG, "vocab_size": VOCAB, "max_position_embeddings": 512, "rms_norm_eps": 1e-5}

QUEUE = [
    {"status": "QUEUED", "description": "Moved to position 2 in Queue."},
    {"status": "QUEUED", "description": "Moved to position 1 in Queue."},
    {"status": "RUNNING", "description": "Your job has started running."},
    {"status": "COMPLETED", "description": "Your job has been completed."},
]
SEEDS = {
    "values": -2,
    "top_ids": 5,
    "top_logprobs": -6,
    "clean": 1,
    "corrupt": -1,
    "logits": 2,
    "top_logits": 4,
    "base": 3,
    "output": 7,
}


def filled(dtype: str, shape: List[int], seed: int) -> dict:
    """A saved tensor (standin's JSON form) holding the formula's values, which differ cell by cell."""
    tensor = saved(dtype, shape)
    n = len(tensor["data"])
    if dtype == "I32":
        tensor["data"] = [(int(seed) + 37 * i) % VOCAB for i in range(n)]
    else:
        tensor["data"] = [seed + 0.25 * ((i * i + (seed + 20) * i) % 17) for i in range(n)]
    return tensor


def saved_values(experiment: str, plan: Dict[str, Any]) -> Dict[str, Any]:
    """What nnsight's body for `experiment` saves for this plan, in the shapes NDIF sends them."""
    if experiment == "trace":
        reads = [s for s in plan["steps"] if s["kind"] == "read"]
        T = len(plan["positions"]) if plan["positions"] is not None else len(plan["input_ids"])
        values = []
        for j, step in enumerate(reads):
            shape = [T, step["width"]] if j == 0 else [1, T, step["width"]]  # the first without batch (#581)
            values.append(filled("F32", shape, SEEDS["values"] + j))
        return {"values": values}
    if experiment == "lens":
        L, T, k = len(plan["hooks"]), len(plan["input_ids"]), plan["k"]
        return {"top_ids": filled("I32", [L, T, k], SEEDS["top_ids"]),
                "top_logprobs": filled("F32", [L, T, k], SEEDS["top_logprobs"])}
    if experiment in ("patching", "ablation"):
        L, top = len(plan["hooks"]), plan["top"]
        rows = L * (len(plan["clean_ids"]) if experiment == "patching" else plan["heads"])
        out = {"logits": filled("F32", [rows, 2], SEEDS["logits"]),
               "top_ids": filled("I32", [rows, top], SEEDS["top_ids"]),
               "top_logits": filled("F32", [rows, top], SEEDS["top_logits"])}
        for name in ("clean", "corrupt") if experiment == "patching" else ("base",):
            out[name] = filled("F32", [VOCAB], SEEDS[name])
        return out
    if experiment == "generate":  # the prompt, then max_new_tokens ids (the tracer's result: [1, tokens])
        new = filled("I32", [plan["max_new_tokens"]], SEEDS["output"])["data"]
        ids = plan["input_ids"] + new
        return {"output": {"dtype": "I32", "shape": [1, len(ids)], "data": ids}}
    raise ValueError(f"the contract stand-in scripts no {experiment} job")


class ContractNdif(StandIn):
    """standin's NDIF, scripting each job from the request JsonRunner built (its experiment and plan)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_next: List[str] = []
        self.last: Dict[str, Any] = {}  # the last request NDIF received: JsonRunner's {"experiment", "plan"}
        for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
            data = json.dumps(CONFIG).encode() if name == "config.json" else (FIXTURE / name).read_bytes()
            self.hub_files[f"{MODEL}/{name}"] = data

    def _handle(self, h: Any, method: str) -> None:
        if method == "POST" and h.path == "/request":
            body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
            h.rfile = io.BytesIO(body)  # standin reads it again
            request = json.loads(body)
            self.last = request
            # This request's script only: one NDIF refuses (a wrong key) must leave none behind for the next.
            self.scripts.clear()
            if self.fail_next and h.headers.get("ndif-api-key") == GOOD_KEY:
                self.add_job([QUEUE[2], {"status": "ERROR", "description": self.fail_next.pop(0)}])
            else:
                self.add_job(QUEUE, saved_values(request["experiment"], request["plan"]))
        super()._handle(h, method)


def main() -> None:
    ndif = ContractNdif()
    cache = tempfile.TemporaryDirectory(prefix="relay-contract-cache-")
    relay = Relay(ndif.url, Path(cache.name), runner=JsonRunner(), hub_endpoint=ndif.url + "/hub", log=sys.stderr)
    relay.hub.token = None  # the stand-in Hub needs none; never send the caller's
    server = make_server(relay, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    ready = {"relay": f"http://127.0.0.1:{server.server_address[1]}", "ndif": ndif.url, "key": GOOD_KEY, "model": MODEL,
             "vocab": VOCAB, "seeds": SEEDS}
    print(json.dumps(ready), flush=True)
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            command = json.loads(line)
            if "fail_next" in command:
                ndif.fail_next.append(str(command["fail_next"]))
                print(json.dumps({"ok": "fail_next"}), flush=True)
            elif "last_request" in command:
                print(json.dumps(ndif.last), flush=True)
            else:
                print(json.dumps({"error": f"unknown command {sorted(command)}"}), flush=True)
    finally:
        server.shutdown()
        server.server_close()
        ndif.close()
        cache.cleanup()


if __name__ == "__main__":
    main()
