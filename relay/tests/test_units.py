"""The relay's pure parts: safetensors packing, the hook table, parameter checks, result shaping."""

import json
import struct
import unittest

import standin  # noqa: F401 — puts the repository root on sys.path
from relay import experiments, params
from relay.errors import RelayError
from relay.hooks import ModelInfo, resolve
from relay.tensors import Array, pack, reshape, unpack, with_batch

INFO = ModelInfo.from_config(standin.MODEL, standin.CONFIG)
LLAMA_8B = ModelInfo.from_config(
    "meta-llama/Llama-3.1-8B",
    {
        "hidden_size": 4096,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "num_hidden_layers": 32,
        "intermediate_size": 14336,
        "vocab_size": 128256,
        "eos_token_id": [128001, 128008, 128009],
    },
)


class SafetensorsTest(unittest.TestCase):
    def test_round_trip_keeps_values_shapes_dtypes_and_header(self):
        tensors = {
            "top_ids": Array("I32", [2, 1, 3], [0, 5, -7, 128255, 2**31 - 1, -(2**31)]),
            "model.layers.3.output": Array("F32", [1, 2, 2], [0.5, -1.25, 2.0**-26, 65504.0]),  # exact in F32
        }
        header = {"input_ids": [128000, 791], "hooks": ["model.layers.0.output"], "finish": "eos"}
        blob = pack(tensors, header)
        back, meta = unpack(blob)
        self.assertEqual(meta, header)
        self.assertEqual(set(back), set(tensors))
        for name, t in tensors.items():
            self.assertEqual(back[name].dtype, t.dtype)
            self.assertEqual(back[name].shape, t.shape)
            self.assertEqual(back[name].data, t.data)

    def test_layout_is_safetensors(self):
        blob = pack({"a": Array("F32", [2], [1.0, 2.0])}, {"x": 1})
        (n,) = struct.unpack("<Q", blob[:8])
        self.assertEqual((8 + n) % 8, 0, "the data starts 8-byte aligned")
        head = json.loads(blob[8 : 8 + n])
        self.assertEqual(head["a"], {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]})
        self.assertEqual(json.loads(head["__metadata__"]["lmw"]), {"x": 1})
        self.assertEqual(struct.unpack("<2f", blob[8 + n :]), (1.0, 2.0))

    def test_bad_arrays_are_refused(self):
        with self.assertRaisesRegex(ValueError, "holds 6 values, not 5"):
            Array("F32", [2, 3], [0.0] * 5)
        with self.assertRaisesRegex(ValueError, "only F32 and I32"):
            Array("F16", [1], [0.0])

    def test_batch_axis_put_back_and_shapes_checked(self):
        a = with_batch(Array("F32", [3, 4], [0.0] * 12), 3, "model.layers.0.output")
        self.assertEqual(a.shape, [1, 3, 4])
        with self.assertRaisesRegex(ValueError, r"model.layers.0.output: NDIF sent shape \[12\], expected 3 axes"):
            with_batch(Array("F32", [12], [0.0] * 12), 3, "model.layers.0.output")
        with self.assertRaisesRegex(ValueError, "logits: NDIF sent 6 values"):
            reshape(Array("F32", [6], [0.0] * 6), [2, 2, 2], "logits")


class HookTableTest(unittest.TestCase):
    def test_paths_map_to_nnsight_envoys(self):
        cases = {
            "model.layers.3.output": "model.model.layers[3].output[0]",
            "model.layers.3.self_attn.output": "model.model.layers[3].self_attn.output[0]",
            "model.layers.3.mlp.output": "model.model.layers[3].mlp.output",
            "model.layers.3.self_attn.o_proj.input": "model.model.layers[3].self_attn.o_proj.input",
            "model.layers.31.mlp.act_fn.output": "model.model.layers[31].mlp.act_fn.output",
            "model.embed_tokens.output": "model.model.embed_tokens.output",
            "model.norm.output": "model.model.norm.output",
            "lm_head.output": "model.lm_head.output",
        }
        for path, envoy in cases.items():
            self.assertEqual(resolve(path, LLAMA_8B, "hook").envoy, envoy, path)

    def test_widths_follow_the_config(self):
        self.assertEqual(resolve("model.layers.0.self_attn.k_proj.output", LLAMA_8B, "h").width, 8 * 128)
        self.assertEqual(resolve("model.layers.0.mlp.up_proj.output", LLAMA_8B, "h").width, 14336)
        self.assertEqual(resolve("lm_head.output", LLAMA_8B, "h").width, 128256)

    def test_forward_order(self):
        paths = [
            "lm_head.output",
            "model.layers.1.output",
            "model.layers.1.mlp.output",
            "model.layers.1.self_attn.o_proj.input",
            "model.layers.0.output",
            "model.norm.output",
            "model.embed_tokens.output",
            "model.layers.10.input_layernorm.output",
        ]
        ordered = sorted(paths, key=lambda p: resolve(p, LLAMA_8B, "h").order)
        self.assertEqual(
            ordered,
            [
                "model.embed_tokens.output",
                "model.layers.0.output",
                "model.layers.1.self_attn.o_proj.input",
                "model.layers.1.mlp.output",
                "model.layers.1.output",
                "model.layers.10.input_layernorm.output",
                "model.norm.output",
                "lm_head.output",
            ],
        )

    def test_unmappable_paths_are_400s_naming_them(self):
        with self.assertRaises(RelayError) as e:
            resolve("model.layers.99.output", LLAMA_8B, "params.hooks[2]")
        self.assertEqual(e.exception.status, 400)
        self.assertEqual(e.exception.field, "params.hooks[2]")
        self.assertEqual(
            e.exception.message,
            "params.hooks[2]: no hook point model.layers.99.output in meta-llama/Llama-3.1-8B (32 layers)",
        )
        for path in ("transformer.h.3.output", "model.layers.3.feed_forward.output", "model.layers.3", "lm_head"):
            with self.assertRaises(RelayError) as e:
                resolve(path, LLAMA_8B, "params.hooks[0]")
            self.assertEqual(e.exception.status, 400)
            self.assertIn(path, e.exception.message)
            self.assertIn("the relay maps model.layers.N.{", e.exception.message)
        with self.assertRaisesRegex(RelayError, "SDPA"):
            resolve("model.layers.3.self_attn.attn_weights", LLAMA_8B, "params.hooks[0]")


class ParamsTest(unittest.TestCase):
    def bad(self, experiment, p, field, text):
        with self.assertRaises(RelayError) as e:
            params.plan(experiment, p, INFO)
        self.assertEqual(e.exception.status, 400)
        self.assertEqual(e.exception.field, field)
        self.assertIn(text, e.exception.message)
        self.assertTrue(e.exception.message.startswith(field + ":"), e.exception.message)

    def test_each_bad_field_is_named(self):
        self.bad("lens", {"input_ids": []}, "params.input_ids", "non-empty")
        self.bad("lens", {"input_ids": [1, 16]}, "params.input_ids[1]", "outside the vocabulary (0 to 15)")
        self.bad("lens", {"input_ids": [1, True]}, "params.input_ids[1]", "outside the vocabulary")
        self.bad("lens", {"input_ids": [1], "k": 0}, "params.k", "an integer from 1 to 16")
        self.bad("trace", {"input_ids": [1], "hooks": []}, "params.hooks", "non-empty")
        self.bad("trace", {"input_ids": [1], "hooks": ["model.layers.5.output"]}, "params.hooks[0]", "(2 layers)")
        self.bad("trace", {"input_ids": [1, 2], "hooks": ["lm_head.output"], "positions": [2]}, "params.positions[0]",
                 "outside the 2 tokens")
        edit = {"hook": "model.layers.1.mlp.output", "op": "mul", "value": 0}
        self.bad("trace", {"input_ids": [1], "hooks": ["lm_head.output"], "edits": [edit]}, "params.edits[0].op",
                 "use set, add or scale")
        edit = {"hook": "model.layers.1.mlp.output", "op": "set", "value": 0, "range": [4, 13]}
        self.bad("trace", {"input_ids": [1], "hooks": ["lm_head.output"], "edits": [edit]}, "params.edits[0].range",
                 "stop <= 8")
        edit = {"hook": "model.layers.1.mlp.output", "op": "set", "value": "x"}
        self.bad("trace", {"input_ids": [1], "hooks": ["lm_head.output"], "edits": [edit]}, "params.edits[0].value",
                 "finite number")
        self.bad("patching", {"clean_ids": [1, 2], "corrupt_ids": [1], "answers": [1, 2]}, "params.corrupt_ids",
                 "as many tokens")
        self.bad("patching", {"clean_ids": [1], "corrupt_ids": [2], "kind": "heads", "answers": [1, 2]},
                 "params.kind", "use resid, attn or mlp")
        self.bad("ablation", {"input_ids": [1], "answers": [1]}, "params.answers", "two token ids")
        self.bad("generate", {"input_ids": [1], "max_new_tokens": 0}, "params.max_new_tokens", "from 1 to")
        self.bad("generate", {"input_ids": [1], "max_new_tokens": 3, "do_sample": True, "temperature": 0},
                 "params.temperature", "above 0")
        self.bad("steer", {}, "experiment", "unknown experiment 'steer'")

    def test_trace_steps_in_forward_order_edits_before_reads(self):
        plan = params.plan(
            "trace",
            {
                "input_ids": [1, 2, 3],
                "hooks": ["lm_head.output", "model.layers.1.mlp.output", "model.layers.0.output"],
                "positions": [-1],
                "edits": [
                    {"hook": "model.layers.1.mlp.output", "op": "set", "value": 0, "positions": [2]},
                    {"hook": "model.layers.0.self_attn.o_proj.input", "op": "scale", "value": 0, "range": [2, 4]},
                    {"hook": "model.layers.1.mlp.output", "op": "add", "value": 1},
                ],
            },
            INFO,
        )
        self.assertEqual(
            [(s["kind"], s["path"]) for s in plan["steps"]],
            [
                ("edit", "model.layers.0.self_attn.o_proj.input"),
                ("read", "model.layers.0.output"),
                ("edit", "model.layers.1.mlp.output"),
                ("edit", "model.layers.1.mlp.output"),
                ("read", "model.layers.1.mlp.output"),
                ("read", "lm_head.output"),
            ],
        )
        self.assertEqual([s.get("op") for s in plan["steps"][2:4]], ["set", "add"])
        self.assertEqual(plan["steps"][0]["parts"], ["model", "layers", 0, "self_attn", "o_proj"])
        json.dumps(plan)  # plain values only: the plan travels inside nnsight's request

    def test_sweeps_name_their_hooks_and_envoys(self):
        plan = params.plan("patching", {"clean_ids": [1, 2], "corrupt_ids": [1, 3], "kind": "attn",
                                        "answers": [4, 5]}, INFO)
        self.assertEqual(plan["hooks"], ["model.layers.0.self_attn.output", "model.layers.1.self_attn.output"])
        self.assertEqual(plan["layers"][1], ["model", "layers", 1, "self_attn"])
        self.assertEqual((plan["attr"], plan["unwrap"], plan["top"]), ("output", True, 5))
        plan = params.plan("ablation", {"input_ids": [1, 2], "answers": [4, 5], "top": 3}, INFO)
        self.assertEqual(plan["hooks"][0], "model.layers.0.self_attn.o_proj.input")
        self.assertEqual((plan["heads"], plan["head_dim"]), (4, 2))


class ShapeTest(unittest.TestCase):
    def test_trace_puts_the_batch_axis_back_and_checks_widths(self):
        plan = params.plan("trace", {"input_ids": [1, 2, 3], "hooks": ["model.layers.0.output", "lm_head.output"],
                                     "positions": [-1, 0]}, INFO)
        values = [Array("F32", [2, 8], [0.0] * 16), Array("F32", [1, 2, 16], [1.0] * 32)]  # the first lacks batch
        tensors, header = experiments.shape("trace", plan, INFO, {"values": values})
        self.assertEqual(tensors["model.layers.0.output"].shape, [1, 2, 8])
        self.assertEqual(tensors["lm_head.output"].shape, [1, 2, 16])
        self.assertEqual(header, {"input_ids": [1, 2, 3]})
        values[1] = Array("F32", [1, 3, 16], [1.0] * 48)
        with self.assertRaisesRegex(ValueError, r"lm_head.output: NDIF sent shape \[1, 3, 16\], expected \[1, 2, 16\]"):
            experiments.shape("trace", plan, INFO, {"values": values})
        with self.assertRaisesRegex(ValueError, "expected 2 saved tensors"):
            experiments.shape("trace", plan, INFO, {"values": values[:1]})

    def test_lens_patching_ablation_shapes(self):
        lens = params.plan("lens", {"input_ids": [1, 2, 3], "k": 2}, INFO)
        t, h = experiments.shape("lens", lens, INFO, {
            "top_ids": Array("I32", [2, 3, 2], list(range(12))),
            "top_logprobs": Array("F32", [2, 1, 3, 2], [-0.5] * 12),
        })
        self.assertEqual((t["top_ids"].shape, t["top_logprobs"].shape), ([2, 3, 2], [2, 3, 2]))
        self.assertEqual(h, {"input_ids": [1, 2, 3], "hooks": ["model.layers.0.output", "model.layers.1.output"]})

        patch = params.plan("patching", {"clean_ids": [1, 2, 3], "corrupt_ids": [1, 4, 3], "answers": [5, 6],
                                         "top": 2}, INFO)
        saved = {
            "clean": Array("F32", [16], [0.0] * 16),
            "corrupt": Array("F32", [1, 16], [0.0] * 16),
            "logits": Array("F32", [6, 2], [0.0] * 12),
            "top_ids": Array("I32", [6, 2], [0] * 12),
            "top_logits": Array("F32", [6, 2], [0.0] * 12),
        }
        t, h = experiments.shape("patching", patch, INFO, saved)
        self.assertEqual({k: v.shape for k, v in t.items()},
                         {"clean": [16], "corrupt": [16], "logits": [2, 3, 2], "top_ids": [2, 3, 2],
                          "top_logits": [2, 3, 2]})
        self.assertEqual(h, {"kind": "resid", "clean_ids": [1, 2, 3], "corrupt_ids": [1, 4, 3],
                             "hooks": ["model.layers.0.output", "model.layers.1.output"], "ids": [5, 6]})
        del saved["top_logits"]
        with self.assertRaisesRegex(ValueError, "the patching result lacks top_logits"):
            experiments.shape("patching", patch, INFO, saved)

        abl = params.plan("ablation", {"input_ids": [1, 2], "answers": [5, 6], "top": 1}, INFO)
        saved = {
            "base": Array("F32", [16], [0.0] * 16),
            "logits": Array("F32", [8, 2], [0.0] * 16),
            "top_ids": Array("F32", [8, 1], [0.0] * 8),  # floats where ids belong
            "top_logits": Array("F32", [8, 1], [0.0] * 8),
        }
        with self.assertRaisesRegex(ValueError, "top_ids: expected integer token ids"):
            experiments.shape("ablation", abl, INFO, saved)
        saved["top_ids"] = Array("I32", [8, 1], [0] * 8)
        t, h = experiments.shape("ablation", abl, INFO, saved)
        self.assertEqual(t["logits"].shape, [2, 4, 2])
        self.assertEqual(h["ids"], [5, 6])

    def test_generate_keeps_new_tokens_and_says_why_it_stopped(self):
        plan = params.plan("generate", {"input_ids": [1, 5], "max_new_tokens": 3}, INFO)
        t, h = experiments.shape("generate", plan, INFO, {"output": Array("I32", [1, 5], [1, 5, 7, 8, 9])})
        self.assertEqual((t["ids"].data, h["finish"]), ([7, 8, 9], "length"))
        t, h = experiments.shape("generate", plan, INFO, {"output": Array("I32", [1, 4], [1, 5, 7, 2])})
        self.assertEqual((t["ids"].data, h["finish"]), ([7, 2], "eos"))
        with self.assertRaisesRegex(ValueError, "does not start with the prompt"):
            experiments.shape("generate", plan, INFO, {"output": Array("I32", [1, 3], [4, 5, 7])})


class ModelKeyTest(unittest.TestCase):
    """nnsight's to_model_key asks the Hub (HfApi.model_info): a failure is a 502 naming the lookup, not a bare 500."""

    def test_a_failed_hub_lookup_is_named(self):
        from relay.runner import model_key

        class Model:  # nnsight's LanguageModel, as far as model_key uses it
            def to_model_key(self):
                raise ConnectionError("huggingface.co unreachable")

        with self.assertRaises(RelayError) as caught:
            model_key(Model(), LLAMA_8B)
        self.assertEqual(caught.exception.status, 502)
        message = str(caught.exception)
        for part in ("meta-llama/Llama-3.1-8B", "HfApi.model_info", "ConnectionError", "huggingface.co unreachable"):
            self.assertIn(part, message)


if __name__ == "__main__":
    unittest.main()


class HubRedirectTest(unittest.TestCase):
    """The Hub's large files redirect to its CDN: the token follows a redirect on the Hub's origin, not to another."""

    def test_the_token_stays_on_the_hubs_origin(self):
        import tempfile
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from pathlib import Path

        from relay.hub import HubFiles

        seen = []  # (server, path, Authorization header)

        def server(name, answer):
            class Handler(BaseHTTPRequestHandler):
                def do_GET(self):
                    seen.append((name, self.path, self.headers.get("Authorization")))
                    answer(self)

                def log_message(self, *args):
                    pass

            httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            threading.Thread(target=httpd.serve_forever, daemon=True).start()
            self.addCleanup(httpd.server_close)
            self.addCleanup(httpd.shutdown)
            return f"http://127.0.0.1:{httpd.server_address[1]}"

        def cdn_answer(handler):
            body = b'{"vocab_size": 8}'
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)

        cdn = server("cdn", cdn_answer)

        def hub_answer(handler):
            handler.send_response(302)
            # config.json: first a redirect on the Hub itself, then one to the CDN.
            target = "/org/model/resolve/main/moved.json" if "config.json" in handler.path else f"{cdn}/signed"
            handler.send_header("Location", target)
            handler.send_header("Content-Length", "0")
            handler.end_headers()

        hub = server("hub", hub_answer)
        with tempfile.TemporaryDirectory() as cache:
            files = HubFiles(Path(cache), endpoint=hub, token="hf_secret")
            self.assertEqual(files.config("org/model"), {"vocab_size": 8})
        self.assertEqual(
            seen,
            [
                ("hub", "/org/model/resolve/main/config.json", "Bearer hf_secret"),
                ("hub", "/org/model/resolve/main/moved.json", "Bearer hf_secret"),
                ("cdn", "/signed", None),
            ],
        )
