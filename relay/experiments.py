"""The experiments, as nnsight traces (this must stay a real .py file: nnsight reads a trace's body with `inspect`).

Each `*_trace` function runs one `with model.trace(...)` (or `model.generate`) on nnsight's meta-device model with
the relay's capturing backend: nnsight compiles the body into NDIF's request and the relay sends it. On NDIF the
body runs beside the real forward pass (nnsight 0.5+: the body's code executes for real, a value at a time), so
plain Python works in it — loops, `isinstance`, torch calls — under two rules:

- A module's value is asked for once, and in forward order (a later ask for an earlier module never comes:
  OutOfOrderError). params.py sorts the trace experiment's steps by hooks.py's forward order; the sweeps walk the
  layers upward.
- Only `.save()`d values come back, and downloads are the cost: everything is sliced or reduced on NDIF first
  (positions before saving; the sweeps keep the last position's logits of two answers and a top-k, not [V] rows).
  torch.save writes a view's whole storage, so a row kept from a bigger tensor is cloned before it is saved.

The bodies use only plain values from the plan (lists, ints, strings) and torch, and call no function of this
package, so nothing of the relay has to exist on NDIF. A decoder layer's and self_attn's outputs are tuples in
transformers 4 and tensors in 5: the bodies check at run time. A value that comes without its batch axis (nnsight
#581) gets it back, in the body where the code indexes it and in `shape` below for what is saved.

`shape(experiment, plan, info, saved)` turns what NDIF saved (as Arrays) into the result PROTOCOL.md lists. It is
plain Python, tested without nnsight.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

from .hooks import ModelInfo
from .tensors import Array, reshape, with_batch

try:  # the bodies below need torch where they run; this module must import without it (the tests, the server)
    import torch
except ImportError:  # pragma: no cover - the real runner refuses earlier, naming the requirements file
    torch = None

# The names each experiment saves (the keys of NDIF's result dict).
SAVED = {
    "trace": {"values"},
    "generate": {"output"},
    "lens": {"top_ids", "top_logprobs"},
    "patching": {"clean", "corrupt", "logits", "top_ids", "top_logits"},
    "ablation": {"base", "logits", "top_ids", "top_logits"},
}


def run(experiment: str, model: Any, plan: Dict[str, Any], backend: Any) -> None:
    {
        "trace": trace_trace,
        "generate": generate_trace,
        "lens": lens_trace,
        "patching": patching_trace,
        "ablation": ablation_trace,
    }[experiment](model, plan, backend)


# --- the nnsight bodies (they run on NDIF) -----------------------------------------------------------------------


def trace_trace(model: Any, plan: Dict[str, Any], backend: Any) -> None:
    """Read hook points (sliced to `positions`), after the edits at or before them, in one forward pass."""
    input_ids = torch.tensor([plan["input_ids"]])
    positions = plan["positions"]
    # One group per hook point, in forward order: its edits (in the order given), then whether it is read.
    groups = []
    for step in plan["steps"]:
        if not groups or groups[-1]["path"] != step["path"]:
            groups.append({"path": step["path"], "parts": step["parts"], "attr": step["attr"],
                           "unwrap": step["unwrap"], "edits": [], "read": False})
        if step["kind"] == "edit":
            groups[-1]["edits"].append([step["op"], step["value"], step["positions"], step["range"]])
        else:
            groups[-1]["read"] = True
    with model.trace(input_ids, backend=backend):
        values = list().save()
        for group in groups:
            module = model
            for part in group["parts"]:
                module = module[part] if isinstance(part, int) else getattr(module, part)
            value = module.output if group["attr"] == "output" else module.input
            if group["unwrap"] and isinstance(value, tuple):
                value = value[0]
            if value.ndim == 2:
                value = value.unsqueeze(0)
            for op, number, where, columns in group["edits"]:
                rows = slice(None) if where is None else where
                cols = slice(None) if columns is None else slice(columns[0], columns[1])
                if op == "set":
                    value[:, rows, cols] = number
                elif op == "add":
                    value[:, rows, cols] += number
                else:
                    value[:, rows, cols] *= number
            if group["read"]:
                # A copy: self_attn's output is o_proj's tensor and mlp's is down_proj's, so an edit further on
                # could otherwise change what was read here.
                values.append(value[:, positions] if positions is not None else value.clone())


def generate_trace(model: Any, plan: Dict[str, Any], backend: Any) -> None:
    """Generate up to max_new_tokens after input_ids (greedy unless do_sample)."""
    input_ids = torch.tensor([plan["input_ids"]])
    options = {"max_new_tokens": plan["max_new_tokens"], "do_sample": plan["do_sample"]}
    for name in ("temperature", "top_k", "top_p"):
        if name in plan:
            options[name] = plan[name]
    seed = plan.get("seed")
    with model.generate(input_ids, backend=backend, **options) as tracer:
        if seed is not None:
            torch.manual_seed(seed)
        output = tracer.result.save()


def lens_trace(model: Any, plan: Dict[str, Any], backend: Any) -> None:
    """Each layer's residual stream through the final norm and lm_head; log-softmax; top k, for every position."""
    input_ids = torch.tensor([plan["input_ids"]])
    k = plan["k"]
    layers = plan["layers"]  # the envoy parts of model.layers.{l}.output, from hooks.py
    with model.trace(input_ids, backend=backend):
        ids_per_layer = []
        logprobs_per_layer = []
        for parts in layers:
            module = model
            for part in parts:
                module = module[part] if isinstance(part, int) else getattr(module, part)
            hidden = module.output
            if isinstance(hidden, tuple):
                hidden = hidden[0]
            if hidden.ndim == 2:
                hidden = hidden.unsqueeze(0)
            # Calling modules runs their forward directly (no hooks fire): the lens, the model's own norm and head.
            logits = model.lm_head(model.model.norm(hidden))
            top = torch.log_softmax(logits[0].float(), dim=-1).topk(k, dim=-1)
            ids_per_layer.append(top.indices)
            logprobs_per_layer.append(top.values)
        top_ids = torch.stack(ids_per_layer).save()
        top_logprobs = torch.stack(logprobs_per_layer).save()


def patching_trace(model: Any, plan: Dict[str, Any], backend: Any) -> None:
    """Every (layer, position) of the corrupt run with the clean run's value of the `kind` block written in.

    One forward pass over a batch: row 0 the clean prompt, row 1 the corrupt one unpatched, then for each layer l
    T copies of the corrupt prompt, copy t patched at position t with row 0's value there. Rows do not see each
    other (the batch axis), so all L·T patched runs share one pass and one read of the weights.
    """
    clean, corrupt = plan["clean_ids"], plan["corrupt_ids"]
    T = len(clean)
    layers = plan["layers"]  # the envoy parts of the patched module in each layer, from hooks.py
    L = len(layers)
    attr, unwrap = plan["attr"], plan["unwrap"]
    answers, top = plan["answers"], plan["top"]
    input_ids = torch.tensor([clean, corrupt] + [corrupt] * (L * T))
    with model.trace(input_ids, backend=backend):
        for l, parts in enumerate(layers):
            module = model
            for part in parts:
                module = module[part] if isinstance(part, int) else getattr(module, part)
            value = module.output if attr == "output" else module.input
            if unwrap and isinstance(value, tuple):
                value = value[0]
            t = torch.arange(T, device=value.device)
            value[2 + l * T + t, t] = value[0, t]
        last = model.lm_head.output[:, -1, :].float()
        clean = last[0].clone().save()  # a view saves its whole storage ([rows, V]): clone the row
        corrupt = last[1].clone().save()
        patched = last[2:]
        logits = patched[:, answers].save()
        best = patched.topk(top, dim=-1)
        top_ids = best.indices.save()
        top_logits = best.values.save()


def ablation_trace(model: Any, plan: Dict[str, Any], backend: Any) -> None:
    """Every attention head knocked out in turn: its columns of o_proj's input zeroed, at every position.

    One forward pass over a batch: row 0 unablated, then for each layer l H copies, copy h with head h zeroed.
    """
    ids = plan["input_ids"]
    layers = plan["layers"]  # the envoy parts of self_attn.o_proj in each layer, from hooks.py
    L, H, D = len(layers), plan["heads"], plan["head_dim"]
    answers, top = plan["answers"], plan["top"]
    input_ids = torch.tensor([ids] * (1 + L * H))
    with model.trace(input_ids, backend=backend):
        for l, parts in enumerate(layers):
            module = model
            for part in parts:
                module = module[part] if isinstance(part, int) else getattr(module, part)
            heads_in = module.input  # [1 + L·H, T, H·D]
            keep = 1 - torch.eye(H, dtype=heads_in.dtype, device=heads_in.device).repeat_interleave(D, dim=1)
            rows = slice(1 + l * H, 1 + (l + 1) * H)
            heads_in[rows] = heads_in[rows] * keep[:, None, :]
        last = model.lm_head.output[:, -1, :].float()
        base = last[0].clone().save()  # a view saves its whole storage ([rows, V]): clone the row
        ablated = last[1:]
        logits = ablated[:, answers].save()
        best = ablated.topk(top, dim=-1)
        top_ids = best.indices.save()
        top_logits = best.values.save()


# --- what NDIF saved → the result (plain Python) -----------------------------------------------------------------


def shape(experiment: str, plan: Dict[str, Any], info: ModelInfo, saved: Dict[str, Any]) -> Tuple[Dict[str, Array], dict]:
    """The result's tensors and header (PROTOCOL.md) from the saved values; ValueError names what is off."""
    missing = sorted(SAVED[experiment] - set(saved))
    if missing:
        raise ValueError(f"the {experiment} result lacks {', '.join(missing)} (it has {', '.join(sorted(saved)) or 'nothing'})")
    return {"trace": _trace, "generate": _generate, "lens": _lens, "patching": _patching, "ablation": _ablation}[
        experiment
    ](plan, info, saved)


def _trace(plan, info, saved):
    reads = [s for s in plan["steps"] if s["kind"] == "read"]
    values = saved["values"]
    if not isinstance(values, list) or len(values) != len(reads):
        raise ValueError(f"values: expected {len(reads)} saved tensors, one per hook, got {_count(values)}")
    T = len(plan["positions"]) if plan["positions"] is not None else len(plan["input_ids"])
    out = {}
    for step, value in zip(reads, values):
        array = with_batch(_float(value, step["path"]), 3, step["path"])
        if array.shape[0] != 1 or array.shape[1] != T or array.shape[2] != step["width"]:
            raise ValueError(f"{step['path']}: NDIF sent shape {array.shape}, expected [1, {T}, {step['width']}]")
        out[step["path"]] = array
    return out, {"input_ids": plan["input_ids"]}


def _generate(plan, info, saved):
    output = saved["output"]
    if not isinstance(output, Array) or output.dtype != "I32":
        raise ValueError("output: expected the generated token ids")
    ids = output.data
    prompt = plan["input_ids"]
    if len(output.shape) == 2 and output.shape[0] == 1:
        ids = ids[: output.shape[1]]
    elif len(output.shape) != 1:
        raise ValueError(f"output: NDIF sent shape {output.shape}, expected [1, tokens]")
    if ids[: len(prompt)] != prompt:
        raise ValueError("output: the generated sequence does not start with the prompt's ids")
    new = [int(t) for t in ids[len(prompt) :]]
    if len(new) > plan["max_new_tokens"]:
        raise ValueError(f"output: {len(new)} new tokens, more than max_new_tokens {plan['max_new_tokens']}")
    # transformers stops before max_new_tokens only at an end-of-sequence token.
    ended = (new and new[-1] in info.eos) or len(new) < plan["max_new_tokens"]
    finish = "eos" if ended else "length"
    return {"ids": Array("I32", [len(new)], new)}, {"input_ids": prompt, "finish": finish}


def _lens(plan, info, saved):
    L, T, k = len(plan["hooks"]), len(plan["input_ids"]), plan["k"]
    top_ids = reshape(_int(saved["top_ids"], "top_ids"), [L, T, k], "top_ids")
    top_logprobs = reshape(_float(saved["top_logprobs"], "top_logprobs"), [L, T, k], "top_logprobs")
    return {"top_ids": top_ids, "top_logprobs": top_logprobs}, {"input_ids": plan["input_ids"], "hooks": plan["hooks"]}


def _patching(plan, info, saved):
    L, T, top = len(plan["hooks"]), len(plan["clean_ids"]), plan["top"]
    tensors = {
        "clean": reshape(_float(saved["clean"], "clean"), [info.vocab], "clean"),
        "corrupt": reshape(_float(saved["corrupt"], "corrupt"), [info.vocab], "corrupt"),
        "logits": reshape(_float(saved["logits"], "logits"), [L, T, 2], "logits"),
        "top_ids": reshape(_int(saved["top_ids"], "top_ids"), [L, T, top], "top_ids"),
        "top_logits": reshape(_float(saved["top_logits"], "top_logits"), [L, T, top], "top_logits"),
    }
    header = {
        "kind": plan["kind"],
        "clean_ids": plan["clean_ids"],
        "corrupt_ids": plan["corrupt_ids"],
        "hooks": plan["hooks"],
        "ids": plan["answers"],
    }
    return tensors, header


def _ablation(plan, info, saved):
    L, H, top = len(plan["hooks"]), plan["heads"], plan["top"]
    tensors = {
        "base": reshape(_float(saved["base"], "base"), [info.vocab], "base"),
        "logits": reshape(_float(saved["logits"], "logits"), [L, H, 2], "logits"),
        "top_ids": reshape(_int(saved["top_ids"], "top_ids"), [L, H, top], "top_ids"),
        "top_logits": reshape(_float(saved["top_logits"], "top_logits"), [L, H, top], "top_logits"),
    }
    return tensors, {"input_ids": plan["input_ids"], "hooks": plan["hooks"], "ids": plan["answers"]}


def _float(value: Any, name: str) -> Array:
    if not isinstance(value, Array):
        raise ValueError(f"{name}: expected a tensor, got {_count(value)}")
    return value if value.dtype == "F32" else Array("F32", value.shape, [float(x) for x in value.data])


def _int(value: Any, name: str) -> Array:
    if not isinstance(value, Array) or value.dtype != "I32":
        raise ValueError(f"{name}: expected integer token ids, got {_count(value) if not isinstance(value, Array) else 'floats'}")
    return value


def _count(value: Any) -> str:
    return f"a list of {len(value)}" if isinstance(value, list) else type(value).__name__
