"""The relay over HTTP against a loopback stand-in of NDIF and the Hub (standin.py): PROTOCOL.md end to end."""

import io
import json
import shutil
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

import standin
from standin import GOOD_KEY, MODEL, JsonRunner, StandIn, saved
from relay.hub import check_repo_id
from relay.errors import RelayError
from relay.server import Relay, make_server
from relay.tensors import unpack

QUEUE = [
    {"status": "QUEUED", "description": "Moved to position 3 in Queue."},
    {"status": "QUEUED", "description": "Moved to position 1 in Queue."},
    {"status": "DISPATCHED", "description": "Your job has been dispatched."},
    {"status": "RUNNING", "description": "Your job has started running."},
    {"status": "COMPLETED", "description": "Your job has been completed."},
]
LENS = {"model": MODEL, "experiment": "lens", "params": {"input_ids": [1, 2, 3], "k": 2}}
LENS_RESULT = {"top_ids": saved("I32", [2, 3, 2]), "top_logprobs": saved("F32", [2, 1, 3, 2], -4.0)}


class RelayTestCase(unittest.TestCase):
    stuck_after = 60.0

    def setUp(self):
        self.ndif = StandIn()
        self.ndif.hub_files[f"{MODEL}/config.json"] = json.dumps(standin.CONFIG).encode()
        # The cache inside a folder of its own: a path that escaped it would land beside it, where the tests look,
        # and a stray file of the same name in the system's temp folder cannot be mistaken for one.
        self.cache = Path(tempfile.mkdtemp(prefix="relay-cache-")) / "cache"
        self.cache.mkdir()
        self.log = io.StringIO()
        self.relay = Relay(
            self.ndif.url,
            self.cache,
            runner=JsonRunner(),
            stuck_after=self.stuck_after,
            backoff=0.01,
            hub_endpoint=self.ndif.url + "/hub",
            log=self.log,
        )
        self.relay.hub.token = None
        self.server = make_server(self.relay, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        self.answers = []  # every answer's headers and body, for the key-leak check

    def tearDown(self):
        self.server.shutdown()
        self.server.server_close()
        self.ndif.close()
        shutil.rmtree(self.cache.parent, ignore_errors=True)

    def call(self, method, path, body=None, key=GOOD_KEY, raw=False):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data else {}
        if key is not None:
            headers["X-NDIF-Api-Key"] = key
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                status, head, content = answer.status, dict(answer.headers), answer.read()
        except urllib.error.HTTPError as error:
            status, head, content = error.code, dict(error.headers), error.read()
        self.answers.append((head, content))
        self.assertEqual(head.get("Access-Control-Allow-Origin"), "*", f"{method} {path} without CORS")
        if raw:
            return status, head, content
        return status, json.loads(content)

    def error(self, status, body, expected, *texts):
        self.assertEqual(status, expected, body)
        self.assertIn("error", body)
        for text in texts:
            self.assertIn(text, body["error"]["message"])
        return body["error"]

    def submit(self, body=LENS, key=GOOD_KEY):
        status, job = self.call("POST", "/jobs", body, key=key)
        self.assertEqual(status, 202, job)
        return job


class EndpointsTest(RelayTestCase):
    def test_health(self):
        status, body = self.call("GET", "/health", key=None)
        self.assertEqual((status, body), (200, {"relay": "lm-workbench-ndif", "protocol": 1, "nnsight": "test",
                                                "ndif": self.ndif.url}))

    def test_models_from_ndif_status(self):
        status, body = self.call("GET", "/models", key=None)
        self.assertEqual(status, 200)
        self.assertEqual(body["models"], [{"id": MODEL, "state": "HOT"},
                                          {"id": "meta-llama/Llama-3.1-70B", "state": "WARM"}])

    def test_preflight(self):
        request = urllib.request.Request(self.url + "/jobs", method="OPTIONS")
        with urllib.request.urlopen(request, timeout=10) as answer:
            self.assertEqual(answer.status, 204)
            self.assertEqual(answer.headers["Access-Control-Allow-Origin"], "*")
            self.assertIn("X-NDIF-Api-Key", answer.headers["Access-Control-Allow-Headers"])
            self.assertIn("DELETE", answer.headers["Access-Control-Allow-Methods"])

    def test_unknown_endpoint_job_and_model(self):
        self.error(*self.call("GET", "/nothing"), 404, "no endpoint GET /nothing")
        self.error(*self.call("GET", "/jobs/abc"), 404, "no job abc")
        body = {**LENS, "model": "someone/not-deployed"}
        err = self.error(*self.call("POST", "/jobs", body), 404, "someone/not-deployed is not deployed on NDIF")
        self.assertEqual(err["model"], "someone/not-deployed")


class LifecycleTest(RelayTestCase):
    def test_queue_positions_then_result(self):
        self.ndif.add_job(QUEUE, LENS_RESULT)
        job = self.submit()
        self.assertEqual({k: job[k] for k in ("state", "model", "experiment")},
                         {"state": "RECEIVED", "model": MODEL, "experiment": "lens"})
        seen = []
        for _ in QUEUE:
            status, view = self.call("GET", f"/jobs/{job['id']}")
            self.assertEqual(status, 200, view)
            seen.append((view["state"], view.get("position")))
        self.assertEqual(seen, [("QUEUED", 3), ("QUEUED", 1), ("DISPATCHED", None), ("RUNNING", None),
                                ("COMPLETED", None)])
        status, head, blob = self.call("GET", f"/jobs/{job['id']}/result", raw=True)
        self.assertEqual(status, 200)
        self.assertEqual(head["Content-Type"], "application/octet-stream")
        tensors, header = unpack(blob)
        self.assertEqual(header, {"input_ids": [1, 2, 3], "hooks": ["model.layers.0.output",
                                                                    "model.layers.1.output"]})
        self.assertEqual(tensors["top_ids"].shape, [2, 3, 2])
        self.assertEqual(tensors["top_ids"].dtype, "I32")
        self.assertEqual(tensors["top_logprobs"].shape, [2, 3, 2])  # NDIF's extra axis folded away
        self.assertEqual(tensors["top_logprobs"].data[:2], [-4.0, -3.5])
        # What went to NDIF: nnsight's body and headers, the key as ndif-api-key, polls of NDIF's id.
        method, path, headers, body = self.ndif.posts()[0]
        self.assertEqual(path, "/request")
        self.assertEqual(headers["ndif-api-key"], GOOD_KEY)
        self.assertEqual(headers["content-type"], "application/octet-stream")
        self.assertEqual(headers["nnsight-model-key"], MODEL)
        self.assertEqual(json.loads(body)["experiment"], "lens")
        polls = [r for r in self.ndif.requests if r[1].startswith("/response/")]
        self.assertEqual({r[1] for r in polls}, {"/response/ndif-1"})

    def test_result_before_completion_is_409(self):
        self.ndif.add_job(QUEUE, LENS_RESULT)
        job = self.submit()
        err = self.error(*self.call("GET", f"/jobs/{job['id']}/result"), 409, "QUEUED, not COMPLETED")
        self.assertEqual(err["state"], "QUEUED")

    def test_error_with_traceback_is_502_with_ndif_message(self):
        traceback = ('Traceback (most recent call last):\n  File "<nnsight>", line 3, in <module>\n'
                     "IndexError: index 40 is out of bounds for dimension 0 with size 32\n")
        self.ndif.add_job([{"status": "RUNNING"}, {"status": "ERROR", "description": traceback}])
        job = self.submit()
        self.call("GET", f"/jobs/{job['id']}")
        status, view = self.call("GET", f"/jobs/{job['id']}")
        self.assertEqual((status, view["state"]), (200, "ERROR"))
        self.assertEqual(view["message"], "IndexError: index 40 is out of bounds for dimension 0 with size 32")
        err = self.error(*self.call("GET", f"/jobs/{job['id']}/result"), 502, "NDIF answered ERROR: IndexError")
        self.assertEqual((err["state"], err["model"]), ("ERROR", MODEL))

    def test_cancel(self):
        self.ndif.add_job(QUEUE, LENS_RESULT)
        job = self.submit()
        self.call("GET", f"/jobs/{job['id']}")
        status, body = self.call("DELETE", f"/jobs/{job['id']}")
        self.assertEqual((status, body), (200, {"id": job["id"], "state": "CANCELLED"}))
        polls = len([r for r in self.ndif.requests if r[1].startswith("/response/")])
        status, view = self.call("GET", f"/jobs/{job['id']}")
        self.assertEqual(view["state"], "CANCELLED")
        self.assertEqual(polls, len([r for r in self.ndif.requests if r[1].startswith("/response/")]),
                         "a cancelled job is not polled again")
        self.error(*self.call("GET", f"/jobs/{job['id']}/result"), 409, "CANCELLED")

    def test_expired_result_is_410(self):
        self.ndif.add_job([QUEUE[-1]], LENS_RESULT)
        job = self.submit()
        self.ndif.expired = True
        self.error(*self.call("GET", f"/jobs/{job['id']}/result"), 410, "expired")

    def test_hung_job_is_resubmitted_once_then_504(self):
        self.relay.jobs.stuck_after = 0.2
        self.ndif.add_job([{"status": "QUEUED", "description": "Moved to position 2 in Queue."}])
        self.ndif.add_job([{"status": "QUEUED", "description": "Moved to position 5 in Queue."}])
        job = self.submit()
        self.assertEqual(self.call("GET", f"/jobs/{job['id']}")[1]["position"], 2)
        time.sleep(0.3)
        status, view = self.call("GET", f"/jobs/{job['id']}")  # stuck: submitted again
        self.assertEqual((status, view["state"]), (200, "RECEIVED"))
        self.assertEqual(len(self.ndif.posts()), 2)
        self.assertEqual(self.ndif.posts()[0][3], self.ndif.posts()[1][3], "the same request, sent again")
        self.assertEqual(self.call("GET", f"/jobs/{job['id']}")[1]["position"], 5)  # the new NDIF job's queue
        time.sleep(0.3)
        err = self.error(*self.call("GET", f"/jobs/{job['id']}"), 504, "stayed QUEUED", "after being submitted again")
        self.assertEqual(err["state"], "QUEUED")
        self.assertEqual(len(self.ndif.posts()), 2, "resubmitted once only")
        self.error(*self.call("GET", f"/jobs/{job['id']}"), 504)

    def test_trace_experiment_end_to_end(self):
        body = {"model": MODEL, "experiment": "trace",
                "params": {"input_ids": [1, 2, 3], "hooks": ["model.layers.1.output", "lm_head.output"],
                           "positions": [-1],
                           "edits": [{"hook": "model.layers.0.mlp.output", "op": "set", "value": 0}]}}
        result = {"values": [saved("F32", [1, 8]), saved("F32", [1, 1, 16])]}  # the first without batch (#581)
        self.ndif.add_job([QUEUE[-1]], result)
        job = self.submit(body)
        status, _, blob = self.call("GET", f"/jobs/{job['id']}/result", raw=True)
        self.assertEqual(status, 200)
        tensors, header = unpack(blob)
        self.assertEqual({k: v.shape for k, v in tensors.items()},
                         {"model.layers.1.output": [1, 1, 8], "lm_head.output": [1, 1, 16]})
        self.assertEqual(header, {"input_ids": [1, 2, 3]})


class FailuresTest(RelayTestCase):
    def test_no_key_is_401(self):
        self.error(*self.call("POST", "/jobs", LENS, key=None), 401, "X-NDIF-Api-Key")
        self.error(*self.call("GET", "/jobs/abc", key=None), 401, "X-NDIF-Api-Key")
        self.assertEqual(self.ndif.posts(), [], "nothing went to NDIF")

    def test_refused_key_is_401_with_ndif_message(self):
        self.error(*self.call("POST", "/jobs", LENS, key="wrong-key"), 401, "NDIF refused the API key",
                   "Missing or invalid API key")

    def test_another_keys_job_is_not_found(self):
        self.ndif.add_job(QUEUE, LENS_RESULT)
        job = self.submit()
        self.error(*self.call("GET", f"/jobs/{job['id']}", key="someone-else"), 404, "no job")

    def test_503_is_retried_then_succeeds(self):
        self.ndif.add_job(QUEUE, LENS_RESULT)
        job = self.submit()
        self.ndif.fail["/response/"] = 2
        status, view = self.call("GET", f"/jobs/{job['id']}")
        self.assertEqual((status, view["state"], view["position"]), (200, "QUEUED", 3))
        self.assertEqual(len([r for r in self.ndif.requests if r[1].startswith("/response/")]), 3)

    def test_persistent_503_is_503(self):
        self.ndif.add_job(QUEUE, LENS_RESULT)
        job = self.submit()
        self.ndif.fail["/response/"] = 10
        self.error(*self.call("GET", f"/jobs/{job['id']}"), 503, "NDIF is unreachable", "3 tries")
        self.ndif.fail["/request"] = 10
        self.error(*self.call("POST", "/jobs", LENS), 503, "POST /request")

    def test_unreachable_ndif_is_503(self):
        self.relay.ndif.host = "http://127.0.0.1:9"  # discard port: nothing listens
        self.error(*self.call("GET", "/models", key=None), 503, "NDIF is unreachable")

    def test_malformed_answers_are_502_naming_the_flaw(self):
        cases = [
            ({"status": "WAITING"}, 'unknown "status" \'WAITING\''),
            ({"_raw": b"<html>Bad gateway</html>"}, "is not JSON"),
            ({"status": "COMPLETED", "data": {"url": 3}}, 'COMPLETED without a result [url, size] in "data"'),
        ]
        for step, text in cases:
            with self.subTest(text=text):
                self.ndif.add_job([step], LENS_RESULT)
                job = self.submit()
                self.error(*self.call("GET", f"/jobs/{job['id']}"), 502, "NDIF's answer to GET /response/", text)
        self.ndif.add_job([{"status": "COMPLETED"}], {"top_ids": saved("I32", [2, 3, 2])})
        job = self.submit()
        self.error(*self.call("GET", f"/jobs/{job['id']}/result"), 502, "malformed", "lacks top_logprobs")
        self.ndif.add_job([{"status": "COMPLETED"}], {"top_ids": saved("I32", [2, 3, 3]),
                                                     "top_logprobs": saved("F32", [2, 3, 2])})
        job = self.submit()
        self.error(*self.call("GET", f"/jobs/{job['id']}/result"), 502, "top_ids: NDIF sent 18 values")

    def test_cut_short_download_is_502(self):
        self.ndif.add_job([{"status": "COMPLETED", "data": [f"{self.ndif.url}/results/x", 999]}])
        self.ndif.results["x"] = b"{}"
        job = self.submit()
        self.error(*self.call("GET", f"/jobs/{job['id']}/result"), 502, "cut short: 2 of 999 bytes")

    def test_bad_params_are_400_naming_the_field(self):
        body = {"model": MODEL, "experiment": "trace",
                "params": {"input_ids": [1, 2], "hooks": ["lm_head.output", "model.layers.1.output",
                                                          "model.layers.99.output"]}}
        err = self.error(*self.call("POST", "/jobs", body), 400,
                         f"params.hooks[2]: no hook point model.layers.99.output in {MODEL} (2 layers)")
        self.assertEqual(err["field"], "params.hooks[2]")
        err = self.error(*self.call("POST", "/jobs", {"experiment": "lens"}), 400, "model:")
        self.assertEqual(err["field"], "model")
        status, _, _ = self.call("POST", "/jobs", raw=True)
        self.assertEqual(status, 400)
        self.assertEqual(self.ndif.posts(), [], "nothing went to NDIF")

    def test_a_body_that_is_not_json_is_400(self):
        for data, text in ((b"{model: x", "the body is not JSON"), (b"[1, 2]", "the body must be a JSON object")):
            request = urllib.request.Request(self.url + "/jobs", data=data, method="POST",
                                             headers={"X-NDIF-Api-Key": GOOD_KEY})
            with self.assertRaises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(request, timeout=10)
            self.assertEqual(e.exception.code, 400)
            self.assertIn(text, json.loads(e.exception.read())["error"]["message"])

    def test_key_never_leaks(self):
        self.ndif.add_job(QUEUE, LENS_RESULT)
        job = self.submit()
        for _ in QUEUE:
            self.call("GET", f"/jobs/{job['id']}")
        self.call("GET", f"/jobs/{job['id']}/result", raw=True)
        self.call("DELETE", f"/jobs/{job['id']}")
        self.call("POST", "/jobs", {**LENS, "params": {}})  # an error answer
        self.call("GET", f"/models/{MODEL}/config.json")
        self.ndif.fail["/request"] = 10
        self.call("POST", "/jobs", LENS)  # a 503 answer
        self.call("POST", "/jobs", LENS, key="wrong-key")
        self.assertIn("POST /jobs", self.log.getvalue(), "the log is written")
        self.assertNotIn(GOOD_KEY, self.log.getvalue())
        for head, content in self.answers:
            self.assertNotIn(GOOD_KEY.encode(), content)
            self.assertNotIn(GOOD_KEY, json.dumps(head))
        for path in self.cache.rglob("*"):
            if path.is_file():
                self.assertNotIn(GOOD_KEY.encode(), path.read_bytes(), path)
        self.assertTrue(all(GOOD_KEY not in repr(vars(j)) for j in self.relay.jobs._jobs.values()),
                        "jobs keep a digest of the key, not the key")


class HubFilesTest(RelayTestCase):
    def test_files_are_fetched_once_and_cached_whole(self):
        status, body = self.call("GET", f"/models/{MODEL}/config.json", key=None)
        self.assertEqual((status, body), (200, standin.CONFIG))
        self.call("GET", f"/models/{MODEL}/config.json", key=None)
        self.assertEqual(self.ndif.hub_hits, 1, "the second answer came from the cache")
        self.assertEqual(json.loads((self.cache / MODEL / "config.json").read_bytes()), standin.CONFIG)
        self.assertEqual([p.name for p in self.cache.rglob("*.partial")], [])

    def test_cut_short_download_leaves_nothing(self):
        self.ndif.hub_files[f"{MODEL}/tokenizer.json"] = b'{"model": {"vocab": {}}}'
        self.ndif.hub_short = 100
        status, body = self.call("GET", f"/models/{MODEL}/tokenizer.json", key=None)
        self.assertEqual(status, 502, body)
        self.assertIn("tokenizer.json of meta-llama/Llama-3.1-8B arrived cut short", body["error"]["message"])
        self.assertEqual([p for p in self.cache.rglob("*") if p.is_file()], [], "no half-written file")
        self.ndif.hub_short = None
        status, _ = self.call("GET", f"/models/{MODEL}/tokenizer.json", key=None)
        self.assertEqual(status, 200)

    def test_missing_file_and_other_names(self):
        self.error(*self.call("GET", f"/models/{MODEL}/tokenizer_config.json", key=None), 404,
                   f"the Hub has no tokenizer_config.json for {MODEL}")
        self.error(*self.call("GET", f"/models/{MODEL}/model.safetensors", key=None), 404,
                   "serves config.json, tokenizer.json, tokenizer_config.json only")

    def test_bad_repo_ids_are_refused(self):
        for path in ("/models/../x/config.json", "/models/..%2F..%2Fetc/config.json", "/models/a/..x/config.json",
                     "/models/-a/config.json"):
            with self.subTest(path=path):
                status, body = self.call("GET", path, key=None)
                self.assertEqual(status, 400, body)
                self.assertIn("is not a Hub model id", body["error"]["message"])
        for repo in ("../x", "a/b/c", "a/../b", "", "x/.hidden", "a--b/c"):
            with self.subTest(repo=repo):
                with self.assertRaises(RelayError):
                    check_repo_id(repo)
        self.assertEqual(self.ndif.hub_hits, 0, "nothing was asked of the Hub")
        self.assertEqual(list(self.cache.parent.glob("x")), [])


if __name__ == "__main__":
    unittest.main()
