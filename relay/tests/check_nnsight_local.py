"""The relay's nnsight bodies (experiments.py), run for real with nnsight's local execution on stories260K, against
the workbench engine's own results for the same params (nnsight_expected.json, from make_nnsight_expected.ts).

Each experiment runs two ways, and both must agree with the workbench:

- "local": only the backend differs from a relay job. Where the relay passes runner.capture_backend (which builds
  NDIF's request and keeps it), this passes `LocalBackend`, nnsight's LocalSimulationBackend, which serializes the
  same request (RequestModel, as RemoteBackend.request does), deserializes it with the relay's modules hidden (as
  on NDIF), runs it on the local model, and keeps the saved values NDIF would have sent.
- "wire": the relay's own `NnsightRunner.build` makes the request bytes on its meta-device model (the body the relay
  POSTs to NDIF, zstd and all), and they are replayed here as NDIF's worker does: RequestModel.deserialize with the
  real model's modules as the persistent objects, then the restored tracer's execute.

Either way the saved dict goes through torch.save and the relay's own `NnsightRunner.decode`, so `shape` and
everything after it are the relay's. What stays unchecked is NDIF's side of HTTP (its queue, its result URLs) and
its GPUs' numerics.

    /path/to/venv/bin/python relay/tests/check_nnsight_local.py     # prints max differences; exit 1 on a mismatch

As a unittest (python3 -m unittest discover -s relay/tests) it skips, saying why, where nnsight or torch is missing.
"""

from __future__ import annotations

import io
import json
import math
import sys
import unittest
from pathlib import Path
from typing import Any, Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / "data" / "models" / "stories260K"
EXPECTED = Path(__file__).resolve().parent / "nnsight_expected.json"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# float32 tolerance: the two engines sum in different orders (onnxruntime's fused kernels, torch's), so the last
# bits differ; stories260K's values are O(1-10).
ATOL = 1e-4


def missing_requirements() -> str:
    """Why this check cannot run here, or ""."""
    try:
        import torch  # noqa: F401
        import nnsight  # noqa: F401
        from nnsight.intervention.backends.local_simulation import LocalSimulationBackend  # noqa: F401
    except ImportError as error:
        return f"nnsight and torch are needed to run the relay's bodies locally ({error})"
    if not (MODEL_DIR / "model.safetensors").exists():
        return f"{MODEL_DIR} has no model.safetensors"
    return ""


def local_backend(model: Any) -> Any:
    from nnsight.intervention.backends.local_simulation import LocalSimulationBackend

    class LocalBackend(LocalSimulationBackend):
        """Runs the request here, as NDIF would, and keeps what the body saved (NDIF's result dict)."""

        saved = None

        def __call__(self, tracer: Any) -> Any:
            self.saved = super().__call__(tracer)
            return self.saved

    return LocalBackend(model)


def replay(body: bytes, headers: Dict[str, str], model: Any) -> Any:
    """Run the relay's request bytes on `model`, as NDIF's worker does, and return the saved values."""
    from nnsight.schema.request import RequestModel

    request = RequestModel.deserialize(
        body, model._remoteable_persistent_objects(), compress=headers.get("nnsight-compress") == "True"
    )
    return request.tracer.execute(request.interventions)


def run_all(verbose: bool = True) -> Dict[str, Tuple[float, List[str]]]:
    """Each (experiment, route)'s max absolute difference from the workbench, and what disagreed beyond ATOL."""
    import torch
    from nnsight import LanguageModel
    from nnsight.modeling import huggingface

    from relay import experiments, params
    from relay.hooks import ModelInfo
    from relay.runner import NnsightRunner

    config = json.loads((MODEL_DIR / "config.json").read_text())
    info = ModelInfo.from_config(str(MODEL_DIR), config)
    model = LanguageModel(str(MODEL_DIR), dispatch=True, dtype=torch.float32)
    # The relay's runner loads the model by its id (here the directory) on the meta device, as for a Hub id. Its
    # model key asks the Hub for the repo's canonical id, which a directory has not: fill nnsight's cache of those
    # answers instead. The key is only the request's nnsight-model-key header.
    huggingface.ID_CACHE[str(MODEL_DIR)] = "local/stories260K"
    runner = NnsightRunner()
    cases = json.loads(EXPECTED.read_text())["cases"]
    report: Dict[str, Tuple[float, List[str]]] = {}
    for case_name, case in cases.items():
        experiment = case["experiment"]
        plan = params.plan(experiment, case["params"], info)
        backend = local_backend(model)
        experiments.run(experiment, model, plan, backend)
        body, headers = runner.build(info, experiment, plan)
        for route, saved in (("local", backend.saved), ("wire", replay(body, headers, model))):
            name = f"{case_name} ({route})"
            # The wire route's request says nnsight-compress: True, so its result comes zstd-compressed (nnsight's
            # client decompresses it as a stream): the relay's decode must read such a file too.
            report[name] = compare(experiment, plan, info, saved, case["expected"], runner, zstd=route == "wire")
            if verbose:
                worst, problems = report[name]
                print(f"{name}: max |nnsight - workbench| = {worst:.3g}" + "".join(f"\n  {p}" for p in problems))
    report.update(check_seeded_sampling(model, info, runner, verbose))
    return report


def check_seeded_sampling(model: Any, info: Any, runner: Any, verbose: bool) -> Dict[str, Tuple[float, List[str]]]:
    """generate with do_sample and a seed: the body seeds torch inside the trace, so both routes must draw what
    transformers' generate draws after torch.manual_seed(seed), whatever the process's RNG held before. (Not the
    workbench: its sampler has its own generator.)"""
    import torch

    from relay import experiments, params

    ids = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376]
    given = {"input_ids": ids, "max_new_tokens": 16, "do_sample": True, "temperature": 2.0, "seed": 7}
    plan = params.plan("generate", given, info)
    torch.manual_seed(given["seed"])
    want = model._model.generate(torch.tensor([ids]), do_sample=True, temperature=2.0, max_new_tokens=16)
    want = want[0, len(ids):].tolist()
    backend = local_backend(model)
    torch.manual_seed(1)  # another state: the body's own seed must decide
    experiments.run("generate", model, plan, backend)
    body, headers = runner.build(info, "generate", plan)
    torch.manual_seed(2)
    report = {}
    for route, saved in (("local", backend.saved), ("wire", replay(body, headers, model))):
        got = saved["output"][0, len(ids):].tolist()
        problems = [] if got == want else [f"sampled {got}, transformers with torch.manual_seed(7) {want}"]
        report[f"generate seeded sampling ({route})"] = (0.0, problems)
        if verbose:
            outcome = problems[0] if problems else "same ids as transformers"
            print(f"generate seeded sampling ({route}): {outcome}")
    return report


def compare(
    experiment: str, plan: dict, info: Any, saved: Any, expected: dict, runner: Any, zstd: bool = False
) -> Tuple[float, List[str]]:
    """The relay's result from NDIF-style saved values, against the workbench's: max difference, what disagreed."""
    import torch

    if not isinstance(saved, dict):
        return math.inf, [f"nnsight saved {type(saved).__name__}, not a dict of values"]
    buffer = io.BytesIO()
    torch.save(saved, buffer)  # what NDIF's result file holds
    payload = buffer.getvalue()
    if zstd:
        import zstandard

        compressed = io.BytesIO()
        # A streaming writer, as a server compressing on the fly would: the frame does not state its size.
        with zstandard.ZstdCompressor(level=6).stream_writer(compressed, closefd=False) as writer:
            writer.write(payload)
        payload = compressed.getvalue()
    arrays, header = runner.decode(info, experiment, plan, payload)
    worst, problems = 0.0, []
    for name, want in expected.items():
        if name not in arrays:
            problems.append(f"{name}: not in the relay's result ({', '.join(sorted(arrays))})")
            continue
        got = arrays[name]
        if len(got.data) != len(want):
            problems.append(f"{name}: {len(got.data)} values (shape {got.shape}), the workbench has {len(want)}")
            continue
        if got.dtype == "I32":
            wrong = [i for i, (a, b) in enumerate(zip(got.data, want)) if a != b]
            if wrong:
                problems.append(f"{name}: {len(wrong)} of {len(want)} ids differ, first at {wrong[0]}: "
                                f"{got.data[wrong[0]]} vs the workbench's {want[wrong[0]]}")
        else:
            diff = max((abs(a - b) for a, b in zip(got.data, want)), default=0.0)
            worst = max(worst, diff if not math.isnan(diff) else math.inf)
            if not diff <= ATOL:
                problems.append(f"{name}: max difference {diff:.3g} > {ATOL}")
    if experiment == "generate" and header["finish"] != "length":
        problems.append(f"finish: {header['finish']}, the workbench generated all {plan['max_new_tokens']}")
    return worst, problems


class NnsightLocalTest(unittest.TestCase):
    def test_bodies_match_the_workbench(self) -> None:
        why = missing_requirements()
        if why:
            print(f"\nskipped check_nnsight_local: {why}", file=sys.stderr)
            self.skipTest(why)
        report = run_all(verbose=False)
        cases = json.loads(EXPECTED.read_text())["cases"]
        named = {case["experiment"] for case in cases.values()}
        self.assertEqual(named, {"trace", "generate", "lens", "patching", "ablation"})
        self.assertEqual(len(report), 2 * len(cases) + 2)
        for experiment, (worst, problems) in report.items():
            self.assertEqual(problems, [], f"{experiment} (max difference {worst:.3g})")


if __name__ == "__main__":
    why = missing_requirements()
    if why:
        sys.exit(f"check_nnsight_local: {why}")
    import nnsight

    print(f"nnsight {nnsight.__version__}, model {MODEL_DIR}, tolerance {ATOL}")
    results = run_all()
    sys.exit(1 if any(problems for _, problems in results.values()) else 0)
