"""Build-time loader: a logit lens and a patching sweep of Llama-3.1-8B, run on NDIF, for the "Big models" page.

Opt-in: it runs only where NDIF_API_KEY is set and nnsight is installed (`pip install -r relay/requirements.txt`;
Llama is gated, so HF_TOKEN too). Otherwise it prints, at once and importing nothing heavy,
`{"model", "snapshot": null, "reason"}` and exits 0: the site builds offline, and the page says how to make one.

The runs take the relay's own path (relay/jobs.py: checked, built by nnsight, submitted, polled, resubmitted if
stuck, decoded, packed), so a snapshot holds exactly what a live run through the relay returns:

    {"model", "made", "nnsight", "protocol": 1, "results": {"lens": R, "patching": R}}
    R = {"experiment", "params", "header", "tensors": {name: {"dtype", "shape", "data"}}, "pieces": {id: piece}}

`pieces` gives each token id in the params and tensors its display text (the tokenizer's token with Ġ/▁ shown as
a space), so the page needs no tokenizer.
"""

import json
import os
import sys
from datetime import datetime, timezone
from importlib.util import find_spec
from pathlib import Path

MODEL = "meta-llama/Llama-3.1-8B"
LENS_PROMPT = "The Eiffel Tower is in the city of"
CLEAN = "When Mary and John went to the store, John gave a drink to"
CORRUPT = "When Mary and John went to the store, Mary gave a drink to"
ANSWERS = (" Mary", " John")  # the clean run's answer, then the corrupt run's
LENS_K = 5
PATCH_TOP = 5
ROOT = Path(__file__).resolve().parents[2]


def no_snapshot(reason: str) -> None:
    print(json.dumps({"model": MODEL, "snapshot": None, "reason": reason}))


def main() -> None:
    key = os.environ.get("NDIF_API_KEY", "").strip()
    if not key:
        return no_snapshot("NDIF_API_KEY not set: set it (and HF_TOKEN) and build again to run on NDIF")
    if find_spec("nnsight") is None:
        return no_snapshot("nnsight not installed: pip install -r relay/requirements.txt, then build again")
    try:
        snapshot(key)
    except Exception as error:  # the site still builds; the page shows why there is no snapshot
        print(f"ndif-snapshot: the NDIF run failed: {error}", file=sys.stderr)
        no_snapshot(f"the NDIF run failed: {error}")


def snapshot(key: str) -> None:
    sys.path.insert(0, str(ROOT))
    from transformers import AutoTokenizer

    from relay import DEFAULT_NDIF, PROTOCOL
    from relay.hub import HubFiles
    from relay.jobs import Jobs, run_to_end
    from relay.ndif import NdifClient
    from relay.runner import NnsightRunner
    from relay.tensors import unpack

    token = os.environ.get("HF_TOKEN") or None
    tokenizer = AutoTokenizer.from_pretrained(MODEL, token=token)
    hub = HubFiles(ROOT / "data" / "relay-cache", token=token)
    runner = NnsightRunner()
    jobs = Jobs(NdifClient(os.environ.get("LMW_NDIF_HOST", DEFAULT_NDIF)), runner, hub.config)

    def answer_id(text: str) -> int:
        ids = tokenizer.encode(text, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(f"{text!r} is {len(ids)} tokens in {MODEL}'s tokenizer; the sweep tracks one token")
        return ids[0]

    clean, corrupt = tokenizer.encode(CLEAN), tokenizer.encode(CORRUPT)
    bodies = {
        "lens": {"input_ids": tokenizer.encode(LENS_PROMPT), "k": LENS_K},
        "patching": {
            "clean_ids": clean,
            "corrupt_ids": corrupt,
            "kind": "resid",
            "answers": [answer_id(a) for a in ANSWERS],
            "top": PATCH_TOP,
        },
    }
    results = {}
    for experiment, params in bodies.items():
        progress = lambda job, t: print(f"{experiment}: {job.state} {job.position or ''} ({t:.0f} s)", file=sys.stderr)
        _, blob = run_to_end(jobs, {"model": MODEL, "experiment": experiment, "params": params}, key, progress)
        tensors, header = unpack(blob)
        ids = set()
        for value in list(params.values()) + list(header.values()):
            if isinstance(value, list) and all(isinstance(x, int) for x in value):
                ids.update(value)
        for t in tensors.values():
            if t.dtype == "I32":
                ids.update(t.data)
        results[experiment] = {
            "experiment": experiment,
            "params": params,
            "header": header,
            "tensors": {n: {"dtype": t.dtype, "shape": t.shape, "data": t.data} for n, t in tensors.items()},
            "pieces": {str(i): tokenizer.convert_tokens_to_string([tokenizer.convert_ids_to_tokens(i)])
                       for i in sorted(ids)},
        }
    print(json.dumps({
        "model": MODEL,
        "made": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "nnsight": runner.version(),
        "protocol": PROTOCOL,
        "results": results,
    }))


if __name__ == "__main__":
    main()
