"""Hugging Face module paths, as the workbench names hook points, mapped to nnsight's envoys: one table.

The workbench says `model.layers.3.output`; nnsight reaches the same value as `model.model.layers[3].output[0]`
(the LanguageModel wraps LlamaForCausalLM, whose attribute `model` is the LlamaModel; a decoder layer returns a
tuple in transformers 4, whose first element is the hidden state). The table below lists, in the order the
forward pass produces them, every path the relay can bring back or edit. The order matters: nnsight 0.5+ runs the
experiment's code beside the forward pass and a value asked for after its module has run never comes
(OutOfOrderError), so experiments.py visits hooks sorted by `Hook.order`.

The names are the Llama family's (Llama 3.x, Mistral, Qwen2: most of NDIF's models); a path outside the table is a
400 that names it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple, Union

from .errors import bad_param


@dataclass(frozen=True)
class ModelInfo:
    """What the relay checks parameters against, from the model's config.json."""

    id: str
    layers: int
    heads: int
    kv_heads: int
    hidden: int
    head_dim: int
    intermediate: int
    vocab: int
    eos: Tuple[int, ...]

    @classmethod
    def from_config(cls, model_id: str, config: dict) -> "ModelInfo":
        # Multimodal configs keep the language model's fields under text_config.
        c = config.get("text_config", config)
        try:
            hidden = int(c["hidden_size"])
            heads = int(c["num_attention_heads"])
            eos = c.get("eos_token_id", config.get("eos_token_id"))
            return cls(
                id=model_id,
                layers=int(c["num_hidden_layers"]),
                heads=heads,
                kv_heads=int(c.get("num_key_value_heads") or heads),
                hidden=hidden,
                head_dim=int(c.get("head_dim") or hidden // heads),
                intermediate=int(c["intermediate_size"]),
                vocab=int(c["vocab_size"]),
                eos=tuple(eos if isinstance(eos, list) else [] if eos is None else [eos]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"config.json of {model_id} lacks or misstates {error}") from None


@dataclass(frozen=True)
class Hook:
    """One hook point: where nnsight finds it and what comes back."""

    path: str  # the workbench's name, `model.layers.3.self_attn.o_proj.input`
    parts: Tuple[Union[str, int], ...]  # attribute names and indices from nnsight's root envoy
    attr: str  # "output" or "input"
    unwrap: bool  # the module returns a tuple (transformers 4): take element 0
    order: Tuple[int, int]  # forward order: (layer + 1, rank in the layer); embeddings first, lm_head last
    width: int  # size of the last axis: every hook is [batch, tokens, width]

    @property
    def envoy(self) -> str:
        """nnsight's expression for it, as a user would type it: `model.model.layers[3].output[0]`."""
        text = "model"
        for part in self.parts:
            text += f"[{part}]" if isinstance(part, int) else f".{part}"
        return f"{text}.{self.attr}" + ("[0]" if self.unwrap else "")


# A layer's hook points in forward order: (path after `model.layers.N.`, attr, unwrap, width).
_Width = Callable[[ModelInfo], int]
LAYER_TABLE: List[Tuple[str, str, bool, _Width]] = [
    ("input_layernorm", "output", False, lambda m: m.hidden),
    ("self_attn.q_proj", "output", False, lambda m: m.heads * m.head_dim),
    ("self_attn.k_proj", "output", False, lambda m: m.kv_heads * m.head_dim),
    ("self_attn.v_proj", "output", False, lambda m: m.kv_heads * m.head_dim),
    ("self_attn.o_proj", "input", False, lambda m: m.heads * m.head_dim),
    ("self_attn.o_proj", "output", False, lambda m: m.hidden),
    ("self_attn", "output", True, lambda m: m.hidden),
    ("post_attention_layernorm", "output", False, lambda m: m.hidden),
    ("mlp.gate_proj", "output", False, lambda m: m.intermediate),
    ("mlp.act_fn", "output", False, lambda m: m.intermediate),
    ("mlp.up_proj", "output", False, lambda m: m.intermediate),
    ("mlp.down_proj", "output", False, lambda m: m.hidden),
    ("mlp", "output", False, lambda m: m.hidden),
    ("", "output", True, lambda m: m.hidden),  # the layer itself: the residual stream after it
]
# Outside the layers: (path, attr, unwrap, width, before the layers?).
TOP_TABLE: List[Tuple[str, str, bool, _Width, bool]] = [
    ("model.embed_tokens", "output", False, lambda m: m.hidden, True),
    ("model.norm", "output", False, lambda m: m.hidden, False),
    ("lm_head", "output", False, lambda m: m.vocab, False),
]
# Paths users know from the in-tab engine that NDIF cannot give, with why.
REFUSED: Dict[str, str] = {
    "attn_weights": "attention weights are not a module's output: NDIF runs the models with SDPA attention, which "
    "never forms them",
}

_LAYER = re.compile(r"^model\.layers\.(\d+)(?:\.(.+))?\.(output|input)$")


def _parts(dotted: str) -> Tuple[Union[str, int], ...]:
    return tuple(int(p) if p.isdigit() else p for p in dotted.split(".") if p)


def resolve(path: object, info: ModelInfo, field: str) -> Hook:
    """The hook at `path` in this model, or a 400 naming the field, the path and what is wrong."""
    if not isinstance(path, str):
        raise bad_param(field, f"a hook point is a module path string, not {path!r}", info.id)
    m = _LAYER.match(path)
    if m:
        layer, inner, attr = int(m.group(1)), m.group(2) or "", m.group(3)
        if layer >= info.layers:
            raise bad_param(field, f"no hook point {path} in {info.id} ({info.layers} layers)", info.id)
        for rank, (name, a, unwrap, width) in enumerate(LAYER_TABLE):
            if name == inner and a == attr:
                parts = ("model", "layers", layer) + _parts(name)
                return Hook(path, parts, attr, unwrap, (layer + 1, rank), width(info))
    for rank, (name, a, unwrap, width, before) in enumerate(TOP_TABLE):
        if path == f"{name}.{a}":
            order = (0, rank) if before else (info.layers + 1, rank)
            return Hook(path, _parts(name), a, unwrap, order, width(info))
    for key, why in REFUSED.items():
        if key in path:
            raise bad_param(field, f"{path}: {why}", info.id)
    raise bad_param(field, f"no hook point {path} in {info.id}: {describe()}", info.id)


def describe() -> str:
    """The paths the relay maps, for error messages."""
    inner = sorted({f"{n}.{a}" if n else a for n, a, _, _ in LAYER_TABLE})
    top = [f"{n}.{a}" for n, a, _, _, _ in TOP_TABLE]
    return "the relay maps model.layers.N.{" + ", ".join(inner) + "} and " + ", ".join(top)


def layer_path(kind: str, layer: int) -> str:
    """The hook each analysis reads or patches at a layer (the workbench's `roles`, Llama names)."""
    return {
        "resid": f"model.layers.{layer}.output",
        "attn": f"model.layers.{layer}.self_attn.output",
        "mlp": f"model.layers.{layer}.mlp.output",
        "heads": f"model.layers.{layer}.self_attn.o_proj.input",
    }[kind]

