"""Build-time loader: a logit lens and a patching sweep of Llama-3.1-8B, run on NDIF, for the "Big models" page.

Opt-in: it runs only where NDIF_API_KEY is set and nnsight is installed (`pip install -r relay/requirements.txt`;
Llama is gated, so HF_TOKEN too). Otherwise it prints, at once and importing nothing heavy,
`{"model", "snapshot": null, "reason"}` and exits 0: the site builds offline, and the page says how to make one.

The runs take the relay's own path (relay/jobs.py: checked, built by nnsight, submitted, polled, resubmitted if
stuck, decoded, packed), so a snapshot holds exactly what a live run through the relay returns:

    {"model", "made", "nnsight", "protocol": 1, "results": {"lens": R, "patching": R}}
    R = {"experiment", "params", "header", "tensors": {name: {"dtype", "shape", "data"}}, "pieces": {id: piece}}

`pieces` gives each token id in the params and tensors its display text (the tokenizer's token with Ġ/▁ shown as
a space), so the page needs no tokenizer. `params` is what the relay was sent plus the texts the ids were encoded
from (`prompt`; `clean`, `corrupt`), which src/remote/snapshot.ts shows as a live run shows the text typed.

Tests only: with LMW_SNAPSHOT_TEST set (test/ndif-snapshot.test.ts sets it), the same path runs against the
relay's loopback stand-ins instead of NDIF and the Hub: see `standin_parts`. Its value is JSON of the prompts
(`{"lens", "clean", "corrupt", "answers"}`) in place of Llama's, which the test tokenizer's 512 pieces cannot
spell in the shape the sweep needs (one-token answers, equally long clean and corrupt runs).
"""

import json
import os
import sys
import tempfile
from datetime import datetime, timezone
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Callable, Optional

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
    test = os.environ.get("LMW_SNAPSHOT_TEST", "").strip()
    key = os.environ.get("NDIF_API_KEY", "").strip()
    if not key:
        return no_snapshot("NDIF_API_KEY not set: set it (and HF_TOKEN) and build again to run on NDIF")
    if not test and find_spec("nnsight") is None:
        return no_snapshot("nnsight not installed: pip install -r relay/requirements.txt, then build again")
    try:
        snapshot(key, json.loads(test) if test else None)
    except Exception as error:  # the site still builds; the page shows why there is no snapshot
        print(f"ndif-snapshot: the NDIF run failed: {error}", file=sys.stderr)
        no_snapshot(f"the NDIF run failed: {error}")


def snapshot(key: str, test: Optional[dict] = None) -> None:
    sys.path.insert(0, str(ROOT))
    from relay import DEFAULT_NDIF, PROTOCOL
    from relay.hub import HubFiles
    from relay.jobs import Jobs, run_to_end
    from relay.ndif import NdifClient
    from relay.tensors import unpack

    prompts = {"lens": LENS_PROMPT, "clean": CLEAN, "corrupt": CORRUPT, "answers": ANSWERS}
    if test is None:
        from transformers import AutoTokenizer

        from relay.runner import NnsightRunner

        token = os.environ.get("HF_TOKEN") or None
        tokenizer = AutoTokenizer.from_pretrained(MODEL, token=token)
        encode = lambda text, special=True: tokenizer.encode(text, add_special_tokens=special)
        backend = tokenizer.backend_tokenizer  # the `tokenizers` Tokenizer under the fast tokenizer
        hub = HubFiles(ROOT / "data" / "relay-cache", token=token)
        runner = NnsightRunner()
    else:
        encode, backend, hub, runner = standin_parts()
        prompts.update(test)
    jobs = Jobs(NdifClient(os.environ.get("LMW_NDIF_HOST", DEFAULT_NDIF)), runner, hub.config)

    def answer_id(text: str) -> int:
        ids = encode(text, False)
        if len(ids) != 1:
            raise ValueError(f"{text!r} is {len(ids)} tokens in {MODEL}'s tokenizer; the sweep tracks one token")
        return ids[0]

    clean, corrupt = encode(prompts["clean"]), encode(prompts["corrupt"])
    bodies = {
        "lens": {"input_ids": encode(prompts["lens"]), "k": LENS_K},
        "patching": {
            "clean_ids": clean,
            "corrupt_ids": corrupt,
            "kind": "resid",
            "answers": [answer_id(a) for a in prompts["answers"]],
            "top": PATCH_TOP,
        },
    }
    texts = {"lens": {"prompt": prompts["lens"]}, "patching": {"clean": prompts["clean"], "corrupt": prompts["corrupt"]}}
    piece = display_pieces(backend)
    results = {}
    for experiment, params in bodies.items():
        progress = lambda job, t: print(f"{experiment}: {job.state} {job.position or ''} ({t:.0f} s)", file=sys.stderr)
        body = {"model": MODEL, "experiment": experiment, "params": params}
        # The stand-in NDIF moves a job one state a poll: the test need not wait NDIF's half second between them.
        _, blob = run_to_end(jobs, body, key, progress, interval=0.5 if test is None else 0.01)
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
            "params": {**params, **texts[experiment]},
            "header": header,
            "tensors": {n: {"dtype": t.dtype, "shape": t.shape, "data": t.data} for n, t in tensors.items()},
            "pieces": {str(i): piece(i) for i in sorted(ids)},
        }
    print(json.dumps({
        "model": MODEL,
        "made": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "nnsight": runner.version(),
        "protocol": PROTOCOL,
        "results": results,
    }))


def display_pieces(backend: Any) -> Callable[[int], str]:
    """id → the token as the workbench's pages show it (src/tokenizer.ts `idToPiece`), from a `tokenizers` Tokenizer.

    The tokenizer's own decoder, less the steps that exist to strip the space a "▁" tokenizer puts before the first
    word (a `Strip` step; `Metaspace`, which drops the first token's leading space): applied to a token shown alone,
    they would show "▁Tower" as "Tower", where GPT-2's "ĠTower" shows as " Tower". Added tokens ("<s>",
    "<|begin_of_text|>") are literal text, shown as they are.
    """
    from tokenizers import Tokenizer

    def shown(step: dict) -> Optional[dict]:
        if step.get("type") == "Strip":
            return None
        if step.get("type") == "Metaspace":
            return {"type": "Replace", "pattern": {"String": step.get("replacement", "\u2581")}, "content": " "}
        if step.get("type") == "Sequence":
            return {**step, "decoders": [d for d in map(shown, step.get("decoders", [])) if d is not None]}
        return step

    config = json.loads(backend.to_str())
    config["decoder"] = shown(config["decoder"]) if config.get("decoder") else None
    decoder = Tokenizer.from_str(json.dumps(config)).decoder
    added = {t.content for t in backend.get_added_tokens_decoder().values()}

    def piece(token_id: int) -> str:
        token = backend.id_to_token(token_id)
        if token is None:
            raise ValueError(f"token id {token_id} is not in {MODEL}'s vocabulary")
        return token if token in added or decoder is None else decoder.decode([token])

    return piece


_KEEP: list = []  # the tests' throwaway Hub cache, kept until the process ends


def standin_parts() -> tuple:
    """Tests only (LMW_SNAPSHOT_TEST): the loader's tokenizer, Hub files and runner, from the relay's stand-ins.

    The relay's own tests inject these the same way (relay/tests/serve_standin.py: `Relay(runner=JsonRunner(), ...)`),
    but Framework runs this file as a script, so the test chooses them through the environment: NDIF's host is
    LMW_NDIF_HOST and the Hub's HF_ENDPOINT (both read by production code too), and here `JsonRunner` stands in for
    nnsight (none is installed where tests run). The tokenizer is the stand-in Hub's tokenizer.json read by
    `tokenizers`, the library that transformers' fast tokenizers (production's AutoTokenizer) run on. Files go to a
    throwaway folder, never data/relay-cache, so a stand-in's files can never reach a real build.
    """
    sys.path.insert(0, str(ROOT / "relay" / "tests"))
    from standin import JsonRunner
    from tokenizers import Tokenizer

    from relay.hub import HubFiles

    cache = tempfile.TemporaryDirectory(prefix="ndif-snapshot-test-")  # removed when the process exits
    _KEEP.append(cache)
    hub = HubFiles(Path(cache.name), token="")  # the endpoint: HF_ENDPOINT, the stand-in Hub; no token sent
    backend = Tokenizer.from_str(hub.get(MODEL, "tokenizer.json").decode("utf-8"))
    encode = lambda text, special=True: backend.encode(text, add_special_tokens=special).ids
    return encode, backend, hub, JsonRunner()


if __name__ == "__main__":
    main()
