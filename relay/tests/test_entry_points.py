"""The ways in: `python3 -m relay`, the build-time loader without a key, run_to_end, the missing-nnsight error."""

import json
import os
import subprocess
import sys
import tempfile
import unittest
import urllib.request
from pathlib import Path

import standin
from standin import GOOD_KEY, MODEL, JsonRunner, StandIn, saved
from relay.jobs import Jobs, run_to_end
from relay.ndif import NdifClient
from relay.runner import installed_nnsight
from relay.tensors import unpack

ROOT = Path(__file__).resolve().parents[2]
LOADER = ROOT / "docs" / "data" / "ndif-snapshot.json.py"
HEAVY = ("torch", "transformers", "nnsight", "relay")


def env(**extra):
    e = {k: v for k, v in os.environ.items() if k not in ("NDIF_API_KEY", "HF_TOKEN")}
    e.update(extra)
    return e


class LoaderTest(unittest.TestCase):
    def load(self, **extra):
        # Run the loader as Observable Framework does (python3 FILE), and list the heavy modules it imported.
        probe = (
            "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__'); "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})), file=sys.stderr)"
        )
        run = subprocess.run([sys.executable, "-c", probe, str(LOADER)], capture_output=True, text=True,
                             timeout=60, env=env(**extra), cwd=ROOT)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(run.stderr.strip().splitlines()[-1], "[]", "imported nothing heavy")
        return json.loads(run.stdout)

    def test_without_a_key_no_snapshot_and_why(self):
        out = self.load()
        self.assertEqual(out, {"model": MODEL, "snapshot": None,
                               "reason": "NDIF_API_KEY not set: set it (and HF_TOKEN) and build again to run on NDIF"})

    @unittest.skipIf(installed_nnsight(), "nnsight is installed here")
    def test_with_a_key_but_no_nnsight(self):
        out = self.load(NDIF_API_KEY="some-key")
        self.assertIsNone(out["snapshot"])
        self.assertTrue(out["reason"].startswith("nnsight not installed: pip install -r relay/requirements.txt"))


class CommandTest(unittest.TestCase):
    def test_python_m_relay_serves(self):
        ndif = StandIn()
        self.addCleanup(ndif.close)
        cache = tempfile.TemporaryDirectory(prefix="relay-cache-")
        self.addCleanup(cache.cleanup)
        relay = subprocess.Popen([sys.executable, "-m", "relay", "--port", "0", "--ndif", ndif.url, "--cache",
                                  cache.name], cwd=ROOT, env=env(), stderr=subprocess.PIPE, text=True)
        self.addCleanup(relay.stderr.close)
        self.addCleanup(relay.wait, 10)
        self.addCleanup(relay.terminate)
        line = ""
        while "relay on http://" not in line:
            line = relay.stderr.readline()
            self.assertTrue(line, "the relay exited before listening")
        url = line.split("relay on ")[1].split()[0]
        with urllib.request.urlopen(url + "/health", timeout=10) as answer:
            health = json.load(answer)
        self.assertEqual((health["relay"], health["protocol"], health["ndif"]), ("lm-workbench-ndif", 1, ndif.url))
        self.assertEqual(health["nnsight"], installed_nnsight() or "not installed")
        with urllib.request.urlopen(url + "/models", timeout=10) as answer:
            self.assertEqual(json.load(answer)["models"][0], {"id": MODEL, "state": "HOT"})

    @unittest.skipIf(installed_nnsight(), "nnsight is installed here")
    def test_jobs_without_nnsight_name_the_package_and_the_requirements(self):
        from relay.runner import NnsightRunner
        from relay.errors import RelayError

        ndif = StandIn()
        self.addCleanup(ndif.close)
        jobs = Jobs(NdifClient(ndif.url), NnsightRunner(), lambda model: standin.CONFIG)
        with self.assertRaises(RelayError) as e:
            jobs.submit({"model": MODEL, "experiment": "lens", "params": {"input_ids": [1]}}, GOOD_KEY)
        self.assertIn("nnsight is not installed", e.exception.message)
        self.assertIn("pip install -r relay/requirements.txt", e.exception.message)


class RunToEndTest(unittest.TestCase):
    def test_states_in_order_then_the_result(self):
        ndif = StandIn()
        self.addCleanup(ndif.close)
        ndif.add_job(
            [{"status": "QUEUED", "description": "Moved to position 2 in Queue."}, {"status": "LOG"},
             {"status": "RUNNING"}, {"status": "COMPLETED"}],
            {"top_ids": saved("I32", [2, 1, 2]), "top_logprobs": saved("F32", [2, 1, 2])},
        )
        jobs = Jobs(NdifClient(ndif.url, backoff=0.01), JsonRunner(), lambda model: standin.CONFIG)
        seen = []
        job, blob = run_to_end(jobs, {"model": MODEL, "experiment": "lens", "params": {"input_ids": [7], "k": 2}},
                               GOOD_KEY, lambda j, t: seen.append((j.state, j.position)), interval=0.01)
        self.assertEqual(seen, [("RECEIVED", None), ("QUEUED", 2), ("RUNNING", None), ("COMPLETED", None)])
        self.assertEqual(job.states, ["RECEIVED", "QUEUED", "RUNNING", "COMPLETED"])
        tensors, header = unpack(blob)
        self.assertEqual(tensors["top_ids"].shape, [2, 1, 2])
        self.assertEqual(header["input_ids"], [7])


if __name__ == "__main__":
    unittest.main()
