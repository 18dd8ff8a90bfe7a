"""The two nnsight-specific steps of a job, behind one small interface.

A `Runner` turns an experiment's plan into NDIF's request body and headers (`build`), and NDIF's downloaded result
into the relay's tensors and header (`decode`). Everything else — the HTTP server, the job's life on NDIF, retries,
result packing — only calls these two, so the tests run it all with a stand-in runner and no nnsight.

`NnsightRunner` is the real one. It imports nnsight when first used, so the relay starts (and `/health`, `/models`
and the Hub files work) without it; a job then fails with an error naming the package and the requirements file.
"""

from __future__ import annotations

import io
import threading
from typing import Any, Dict, Protocol, Tuple

from .errors import RelayError
from .hooks import ModelInfo
from .tensors import Array

REQUIREMENTS = "relay/requirements.txt"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class Runner(Protocol):
    def version(self) -> str:
        """The nnsight version requests are made with (sent to NDIF as `nnsight-version`)."""
        ...

    def build(self, info: ModelInfo, experiment: str, plan: Dict[str, Any]) -> Tuple[bytes, Dict[str, str]]:
        """NDIF's request body and headers (without the API key) for this experiment."""
        ...

    def decode(
        self, info: ModelInfo, experiment: str, plan: Dict[str, Any], payload: bytes
    ) -> Tuple[Dict[str, Array], dict]:
        """The result's tensors and header from the downloaded file. ValueError names what was malformed."""
        ...


def installed_nnsight() -> str:
    """nnsight's installed version, or "" (without importing it: importing nnsight imports torch)."""
    from importlib import metadata

    try:
        return metadata.version("nnsight")
    except metadata.PackageNotFoundError:
        return ""


def require_nnsight() -> Any:
    try:
        import nnsight
    except ImportError as error:
        raise RelayError(
            500,
            f"the relay cannot make NDIF requests: the Python package nnsight is not installed ({error}). "
            f"Install it with: pip install -r {REQUIREMENTS}",
        ) from None
    return nnsight


class NnsightRunner:
    """Builds requests with nnsight's own RemoteBackend (so the wire is nnsight's) and reads results with torch."""

    def __init__(self) -> None:
        self._models: Dict[str, Any] = {}
        self._lock = threading.Lock()

    def version(self) -> str:
        return installed_nnsight() or "not installed"

    def model(self, info: ModelInfo) -> Any:
        """nnsight's LanguageModel for the repo, on the meta device (no weights: only its module tree)."""
        nnsight = require_nnsight()
        with self._lock:
            if info.id not in self._models:
                try:
                    # LanguageModel wraps AutoModelForCausalLM; later releases also name it TransformersModel.
                    wrapper = getattr(nnsight, "LanguageModel", None) or getattr(nnsight, "TransformersModel")
                    self._models[info.id] = wrapper(info.id)
                except Exception as error:  # transformers raises OSError, ValueError, HTTP errors, ...
                    raise RelayError(
                        502,
                        f"nnsight could not load {info.id}'s config and tokenizer from the Hub ({type(error).__name__}: "
                        f"{error}); for a gated model, start the relay with HF_TOKEN set",
                        model=info.id,
                    ) from None
            return self._models[info.id]

    def build(self, info: ModelInfo, experiment: str, plan: Dict[str, Any]) -> Tuple[bytes, Dict[str, str]]:
        from . import experiments

        model = self.model(info)
        backend = capture_backend(model_key(model, info))
        with self._lock:  # nnsight's tracing state is process-global: one trace at a time
            try:
                experiments.run(experiment, model, plan, backend)
            except RelayError:
                raise
            except Exception as error:
                raise RelayError(
                    500,
                    f"nnsight {self.version()} could not build the {experiment} request for {info.id}: "
                    f"{type(error).__name__}: {error}",
                    model=info.id,
                ) from None
        if backend.captured is None:
            raise RelayError(500, f"nnsight made no request for the {experiment} experiment", model=info.id)
        body, headers = backend.captured
        headers = {k: str(v) for k, v in headers.items() if k.lower() != "ndif-api-key"}
        return body, headers

    def decode(
        self, info: ModelInfo, experiment: str, plan: Dict[str, Any], payload: bytes
    ) -> Tuple[Dict[str, Array], dict]:
        from . import experiments

        require_nnsight()
        import torch

        if payload[:4] == ZSTD_MAGIC:
            import zstandard

            payload = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(payload)).read()
        try:
            saved = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)
        except Exception as error:  # torch raises many kinds for a file that is not its own
            raise ValueError(f"the result file does not load with torch.load ({type(error).__name__}: {error})")
        if not isinstance(saved, dict):
            raise ValueError(f"the result file holds a {type(saved).__name__}, not nnsight's dict of saved values")
        arrays = {name: to_array(value, name) for name, value in saved.items() if name in experiments.SAVED[experiment]}
        return experiments.shape(experiment, plan, info, arrays)


def to_array(value: Any, name: str) -> Any:
    """A saved value as an Array (a list of them for a saved list); ints stay I32, floats become F32."""
    import torch

    if isinstance(value, (list, tuple)):
        return [to_array(v, f"{name}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"saved value {name} is a {type(value).__name__}, not a tensor")
    t = value.detach().to("cpu")
    if t.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool):
        return Array("I32", list(t.shape), t.to(torch.int64).flatten().tolist())
    return Array("F32", list(t.shape), t.to(torch.float32).flatten().tolist())


def model_key(model: Any, info: ModelInfo) -> str:
    """NDIF's name for the model (`nnsight-model-key`), from nnsight's `to_model_key`.

    nnsight does not build the key from the id alone: the first time, it asks the Hub for the repo's canonical id
    (huggingface_hub's `HfApi().model_info`, with HF_TOKEN from the environment), a network call the relay's own
    Hub files do not make. Run locally on a model directory it fails the same way (a path is no repo id), so the
    failure is named here rather than escaping as an unexplained 500.
    """
    try:
        return model.to_model_key()
    except Exception as error:  # huggingface_hub raises HTTP, validation and connection errors
        raise RelayError(
            502,
            f"nnsight could not make NDIF's model key for {info.id}: it looks the repo up on the Hub "
            f"(huggingface_hub's HfApi.model_info), which failed ({type(error).__name__}: {error}); the relay needs "
            f"huggingface.co reachable, and HF_TOKEN set for a gated model",
            model=info.id,
        ) from None


def capture_backend(model_key: str) -> Any:
    """A RemoteBackend that makes nnsight's request (body and headers) and keeps it instead of sending it.

    The relay sends it itself: non-blocking, with its own retries, polling and resubmission.
    """
    from nnsight.intervention.backends.remote import RemoteBackend

    class CaptureBackend(RemoteBackend):
        captured = None

        def __call__(self, tracer: Any = None) -> None:
            if not hasattr(self, "request"):
                raise RelayError(500, f"this nnsight ({installed_nnsight()}) has no RemoteBackend.request: pin "
                                 f"the version in {REQUIREMENTS}")
            self.captured = self.request(tracer)

    return CaptureBackend(model_key, blocking=False, api_key="-")
