"""Checks of each experiment's `params` (PROTOCOL.md, Experiments) against the model, before anything goes to NDIF.

`plan(experiment, params, info)` returns the experiment's plan: plain lists, numbers and strings only (the nnsight
code in experiments.py is shipped to NDIF with the values it reads, so they stay simple). A wrong parameter is a 400
whose message starts with its JSON path (`params.hooks[2]: …`) and whose `field` is that path.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

from .errors import RelayError, bad_param
from .hooks import Hook, ModelInfo, layer_path, resolve

EXPERIMENTS = ("trace", "generate", "lens", "patching", "ablation")
PATCH_KINDS = ("resid", "attn", "mlp")
EDIT_OPS = ("set", "add", "scale")
# Bounds that keep one job a reasonable download and a reasonable time on NDIF's queue.
MAX_TOKENS = 2048
MAX_NEW_TOKENS = 1024
MAX_TOP = 100
DEFAULT_TOP = 5  # the workbench's PATCHING.top
DEFAULT_K = 5  # the workbench's LOGIT_LENS.k


def plan(experiment: object, params: object, info: ModelInfo) -> Dict[str, Any]:
    if experiment not in EXPERIMENTS:
        raise bad_param("experiment", f"unknown experiment {experiment!r}: use one of {', '.join(EXPERIMENTS)}")
    if not isinstance(params, dict):
        raise bad_param("params", "an object of the experiment's parameters is required")
    return {"trace": _trace, "generate": _generate, "lens": _lens, "patching": _patching, "ablation": _ablation}[
        experiment
    ](params, info)


# --- the experiments ---------------------------------------------------------------------------------------------


def _trace(p: dict, info: ModelInfo) -> Dict[str, Any]:
    ids = _ids(p, "input_ids", info)
    T = len(ids)
    hooks = p.get("hooks")
    if not isinstance(hooks, list) or not hooks:
        raise bad_param("params.hooks", "a non-empty list of hook points is required", info.id)
    positions = None
    if p.get("positions") is not None:
        positions = _positions(p["positions"], T, "params.positions", info)
    steps: List[Dict[str, Any]] = []
    for i, path in enumerate(hooks):
        hook = resolve(path, info, f"params.hooks[{i}]")
        steps.append(_step(hook, kind="read", index=i))
    seen = set()
    for i, path in enumerate(hooks):
        if path in seen:
            raise bad_param(f"params.hooks[{i}]", f"{path} is listed twice", info.id)
        seen.add(path)
    edits = p.get("edits") or []
    if not isinstance(edits, list):
        raise bad_param("params.edits", "a list of edits is expected", info.id)
    for i, edit in enumerate(edits):
        steps.append(_edit(edit, f"params.edits[{i}]", T, info, i))
    # Forward order; at one hook the edits (in the order given) come before the read, so a read sees the edit.
    steps.sort(key=lambda s: (s["order"], 0 if s["kind"] == "edit" else 1, s["index"]))
    return {"input_ids": ids, "hooks": list(hooks), "positions": positions, "steps": steps}


def _generate(p: dict, info: ModelInfo) -> Dict[str, Any]:
    ids = _ids(p, "input_ids", info)
    n = _int(p, "max_new_tokens", info, low=1, high=MAX_NEW_TOKENS)
    sample = p.get("do_sample", False)
    if not isinstance(sample, bool):
        raise bad_param("params.do_sample", f"true or false, not {sample!r}", info.id)
    out: Dict[str, Any] = {"input_ids": ids, "max_new_tokens": n, "do_sample": sample}
    if p.get("temperature") is not None:
        t = _number(p, "temperature", info)
        if sample and t <= 0:
            raise bad_param("params.temperature", f"sampling needs a temperature above 0, not {t}", info.id)
        out["temperature"] = t
    if p.get("top_k") is not None:
        out["top_k"] = _int(p, "top_k", info, low=0, high=info.vocab)
    if p.get("top_p") is not None:
        t = _number(p, "top_p", info)
        if not 0 < t <= 1:
            raise bad_param("params.top_p", f"a number in (0, 1], not {t}", info.id)
        out["top_p"] = t
    if p.get("seed") is not None:
        out["seed"] = _int(p, "seed", info, low=0, high=2**63 - 1)
    return out


def _lens(p: dict, info: ModelInfo) -> Dict[str, Any]:
    ids = _ids(p, "input_ids", info)
    k = _int(p, "k", info, low=1, high=min(info.vocab, MAX_TOP), default=DEFAULT_K)
    hooks = [layer_path("resid", l) for l in range(info.layers)]
    return {"input_ids": ids, "k": k, "hooks": hooks, "layers": _layers(hooks, info)}


def _patching(p: dict, info: ModelInfo) -> Dict[str, Any]:
    clean = _ids(p, "clean_ids", info)
    corrupt = _ids(p, "corrupt_ids", info)
    if len(clean) != len(corrupt):
        raise bad_param(
            "params.corrupt_ids",
            f"the clean and corrupt prompts must have as many tokens to patch position by position: clean has "
            f"{len(clean)}, corrupt {len(corrupt)}",
            info.id,
        )
    kind = p.get("kind", "resid")
    if kind not in PATCH_KINDS:
        raise bad_param("params.kind", f"unknown kind {kind!r}: use resid, attn or mlp", info.id)
    answers = _answers(p, info)
    top = _int(p, "top", info, low=1, high=min(info.vocab, MAX_TOP), default=DEFAULT_TOP)
    hooks = [layer_path(kind, l) for l in range(info.layers)]
    h = resolve(hooks[0], info, "params.kind")
    return {
        "clean_ids": clean,
        "corrupt_ids": corrupt,
        "kind": kind,
        "answers": answers,
        "top": top,
        "hooks": hooks,
        "layers": _layers(hooks, info),
        "attr": h.attr,
        "unwrap": h.unwrap,
    }


def _ablation(p: dict, info: ModelInfo) -> Dict[str, Any]:
    ids = _ids(p, "input_ids", info)
    answers = _answers(p, info)
    top = _int(p, "top", info, low=1, high=min(info.vocab, MAX_TOP), default=DEFAULT_TOP)
    hooks = [layer_path("heads", l) for l in range(info.layers)]
    return {
        "input_ids": ids,
        "answers": answers,
        "top": top,
        "hooks": hooks,
        "layers": _layers(hooks, info),
        "heads": info.heads,
        "head_dim": info.head_dim,
    }


# --- pieces ------------------------------------------------------------------------------------------------------


def _layers(hooks: List[str], info: ModelInfo) -> List[list]:
    """The envoy parts of each layer's hook (hooks.py's table), for the sweeps' bodies in experiments.py."""
    return [list(resolve(h, info, "hooks").parts) for h in hooks]


def _step(hook: Hook, kind: str, index: int) -> Dict[str, Any]:
    return {
        "kind": kind,
        "index": index,
        "path": hook.path,
        "parts": list(hook.parts),
        "attr": hook.attr,
        "unwrap": hook.unwrap,
        "order": list(hook.order),
        "width": hook.width,
    }


def _edit(edit: object, field: str, T: int, info: ModelInfo, index: int) -> Dict[str, Any]:
    if not isinstance(edit, dict):
        raise bad_param(field, "an edit is an object {hook, op, value, positions?, range?}", info.id)
    hook = resolve(edit.get("hook"), info, f"{field}.hook")
    step = _step(hook, kind="edit", index=index)
    op = edit.get("op")
    if op not in EDIT_OPS:
        raise bad_param(f"{field}.op", f"unknown op {op!r}: use set, add or scale", info.id)
    value = edit.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise bad_param(f"{field}.value", f"a finite number is required, not {value!r}", info.id)
    step.update(op=op, value=float(value), positions=None, range=None)
    if edit.get("positions") is not None:
        # An empty list selects no position (the workbench's sweeps write such edits): a no-op, allowed.
        step["positions"] = _positions(edit["positions"], T, f"{field}.positions", info, empty=True)
    if edit.get("range") is not None:
        r = edit["range"]
        if (
            not isinstance(r, list)
            or len(r) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in r)
            or not 0 <= r[0] < r[1] <= hook.width
        ):
            raise bad_param(
                f"{field}.range",
                f"[start, stop) with 0 <= start < stop <= {hook.width} (the last axis of {hook.path}), not {r!r}",
                info.id,
            )
        step["range"] = list(r)
    return step


def _ids(p: dict, name: str, info: ModelInfo) -> List[int]:
    ids = p.get(name)
    field = f"params.{name}"
    if not isinstance(ids, list) or not ids:
        raise bad_param(field, "a non-empty list of token ids is required", info.id)
    if len(ids) > MAX_TOKENS:
        raise bad_param(field, f"{len(ids)} tokens; the relay takes at most {MAX_TOKENS}", info.id)
    for i, t in enumerate(ids):
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < info.vocab:
            raise bad_param(
                f"{field}[{i}]", f"token id {t!r} is outside the vocabulary (0 to {info.vocab - 1})", info.id
            )
    return list(ids)


def _answers(p: dict, info: ModelInfo) -> List[int]:
    a = p.get("answers")
    if not isinstance(a, list) or len(a) != 2:
        raise bad_param("params.answers", f"two token ids [a, b] are required, not {a!r}", info.id)
    for i, t in enumerate(a):
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < info.vocab:
            raise bad_param(
                f"params.answers[{i}]", f"token id {t!r} is outside the vocabulary (0 to {info.vocab - 1})", info.id
            )
    return list(a)


def _positions(ps: object, T: int, field: str, info: ModelInfo, empty: bool = False) -> List[int]:
    if not isinstance(ps, list) or (not ps and not empty):
        raise bad_param(field, "a non-empty list of token positions is required", info.id)
    for i, t in enumerate(ps):
        if isinstance(t, bool) or not isinstance(t, int) or not -T <= t < T:
            raise bad_param(f"{field}[{i}]", f"position {t!r} is outside the {T} tokens (-{T} to {T - 1})", info.id)
    return list(ps)


def _int(p: dict, name: str, info: ModelInfo, low: int, high: int, default: Optional[int] = None) -> int:
    v = p.get(name, default)
    if v is None:
        raise bad_param(f"params.{name}", "is required", info.id)
    if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
        raise bad_param(f"params.{name}", f"an integer from {low} to {high} is required, not {v!r}", info.id)
    return v


def _number(p: dict, name: str, info: ModelInfo) -> float:
    v = p.get(name)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise bad_param(f"params.{name}", f"a finite number is required, not {v!r}", info.id)
    return float(v)


def check_body(body: object) -> tuple:
    """The `POST /jobs` body's model, experiment and params, or a 400 naming what is missing."""
    if not isinstance(body, dict):
        raise RelayError(400, 'the body must be a JSON object {"model", "experiment", "params"}')
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_param("model", "a Hub model id such as meta-llama/Llama-3.1-8B is required")
    return model, body.get("experiment"), body.get("params")
