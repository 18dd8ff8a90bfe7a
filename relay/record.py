"""Record a real exchange with NDIF: what the relay's tests stand in for, as NDIF actually answers.

    NDIF_API_KEY=... HF_TOKEN=... python3 relay/record.py [--model meta-llama/Llama-3.1-8B] [--out FILE]

For each experiment (default: trace, lens, patching, ablation, generate, on short prompts of token ids) it goes the
relay's own way (relay/jobs.py: checked, built by nnsight, submitted, polled, resubmitted if stuck, decoded,
packed) and writes to FILE (default relay/recorded-<date>.json), without the key:

- NDIF's host, its /env (the server's Python and nnsight, torch, transformers versions) beside yours, /models;
- per experiment: the params, every state seen with its queue position and the seconds since submission, the
  request's size, the result's size (NDIF's file and the relay's safetensors), each tensor's shape and dtype, the
  header, and the error if it failed.

Needs nnsight (`pip install -r relay/requirements.txt`) and Python 3.12 (NDIF compares Python versions).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from relay import DEFAULT_NDIF, PROTOCOL  # noqa: E402
from relay.errors import RelayError  # noqa: E402
from relay.hub import HubFiles  # noqa: E402
from relay.jobs import Jobs, run_to_end  # noqa: E402
from relay.ndif import NdifClient  # noqa: E402
from relay.runner import REQUIREMENTS, NnsightRunner, installed_nnsight  # noqa: E402
from relay.tensors import unpack  # noqa: E402

EXPERIMENTS = ("trace", "lens", "patching", "ablation", "generate")


def bodies(tokenizer, model: str) -> dict:
    ids = tokenizer.encode("The Eiffel Tower is in the city of")
    clean = tokenizer.encode("When Mary and John went to the store, John gave a drink to")
    corrupt = tokenizer.encode("When Mary and John went to the store, Mary gave a drink to")
    answers = [tokenizer.encode(a, add_special_tokens=False)[0] for a in (" Mary", " John")]
    return {
        "trace": {"input_ids": ids, "hooks": ["model.layers.3.output", "lm_head.output"], "positions": [-1],
                  "edits": [{"hook": "model.layers.1.mlp.output", "op": "scale", "value": 0.5}]},
        "lens": {"input_ids": ids, "k": 5},
        "patching": {"clean_ids": clean, "corrupt_ids": corrupt, "kind": "resid", "answers": answers, "top": 5},
        "ablation": {"input_ids": clean, "answers": answers, "top": 5},
        "generate": {"input_ids": ids, "max_new_tokens": 8},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="meta-llama/Llama-3.1-8B")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--only", default=",".join(EXPERIMENTS), help="experiments, comma-separated")
    parser.add_argument("--ndif", default=os.environ.get("LMW_NDIF_HOST", DEFAULT_NDIF))
    args = parser.parse_args()
    key = os.environ.get("NDIF_API_KEY", "").strip()
    if not key:
        parser.error("set NDIF_API_KEY (and HF_TOKEN for gated models such as Llama)")
    if not installed_nnsight():
        parser.error(f"nnsight is not installed: pip install -r {REQUIREMENTS}")
    from transformers import AutoTokenizer

    root = Path(__file__).resolve().parents[1]
    out = args.out or root / "relay" / f"recorded-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}.json"
    ndif = NdifClient(args.ndif)
    runner = NnsightRunner()
    hub = HubFiles(root / "data" / "relay-cache")
    jobs = Jobs(ndif, runner, hub.config)
    record = {
        "made": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "protocol": PROTOCOL,
        "ndif": ndif.host,
        "local": {"python": sys.version.split()[0], "nnsight": runner.version()},
        "model": args.model,
        "runs": [],
    }
    try:
        env = ndif.env()
        packages = env.get("packages", {})
        record["ndif_env"] = {"python": str(env.get("python_version", "")).split()[0],
                              **{p: packages.get(p) for p in ("nnsight", "torch", "transformers")}}
    except RelayError as error:
        record["ndif_env"] = {"error": error.message}
    print(f"NDIF {record['ndif_env']} · local {record['local']}", file=sys.stderr)
    record["models"] = jobs.models()
    tokenizer = AutoTokenizer.from_pretrained(args.model, token=os.environ.get("HF_TOKEN") or None)
    for experiment in [e for e in args.only.split(",") if e]:
        params = bodies(tokenizer, args.model)[experiment]
        run = {"experiment": experiment, "params": params, "states": []}

        def seen(job, t, run=run):
            run["states"].append({"state": job.state, "position": job.position, "at_s": round(t, 2)})
            print(f"{experiment}: {job.state} {job.position or ''} at {t:.1f} s", file=sys.stderr)

        start = time.monotonic()
        try:
            job, blob = run_to_end(jobs, {"model": args.model, "experiment": experiment, "params": params}, key, seen)
            tensors, header = unpack(blob)
            run.update(
                total_s=round(time.monotonic() - start, 2),
                request_bytes=len(job.body),
                resubmitted=job.resubmitted,
                result_bytes={"ndif": job.link[1] if job.link else None, "safetensors": len(blob)},
                shapes={n: {"dtype": t.dtype, "shape": t.shape} for n, t in tensors.items()},
                header=header,
            )
        except RelayError as error:
            run.update(total_s=round(time.monotonic() - start, 2), error=error.body()["error"], status=error.status)
        record["runs"].append(run)
    text = json.dumps(record, indent=1)
    if key in text:  # never: nothing above holds it; this guards the file against a future change
        raise SystemExit("refusing to write a record that contains the API key")
    out.write_text(text + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
