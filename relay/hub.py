"""The model files the workbench needs to tokenize for a remote model, fetched from the Hugging Face Hub and cached.

Only `config.json`, `tokenizer.json` and `tokenizer_config.json` are served (PROTOCOL.md). The relay fetches them
with its own `HF_TOKEN` (Llama is gated), so the browser never needs a Hub token for a model NDIF runs. Each file is
cached whole: it is written to `<file>.partial` and renamed only once it arrived complete and parses as JSON, so a
dropped connection never leaves a half file that a later request would serve. Repository ids are checked with the
Hub's own rules before they touch a URL or a folder, so no id (`../x`, `a/b/c`) names a path outside the cache.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Optional

from .errors import RelayError

FILES = ("config.json", "tokenizer.json", "tokenizer_config.json")
_PART = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?$")


def check_repo_id(repo_id: str) -> str:
    """`repo_id` when it is a Hub id (`name` or `org/name`, letters, digits, `-`, `_`, `.`, no `..`); a 400 if not."""
    shown = json.dumps(repo_id[:120])
    parts = repo_id.split("/") if isinstance(repo_id, str) else []
    if not 1 <= len(parts) <= 2 or any(
        not _PART.match(p) or ".." in p or "--" in p for p in parts
    ):
        raise RelayError(
            400,
            f"{shown} is not a Hub model id: ids are name or org/name, letters, digits, '-', '_' and '.', no '..'",
            field="model",
        )
    return repo_id


class HubFiles:
    """Fetches and caches the three files per model under `cache_dir/<org>/<name>/`."""

    def __init__(self, cache_dir: Path, endpoint: Optional[str] = None, token: Optional[str] = None) -> None:
        self.cache_dir = Path(cache_dir).resolve()
        self.endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
        self.token = token if token is not None else os.environ.get("HF_TOKEN")
        self._lock = threading.Lock()

    def path(self, repo_id: str, name: str) -> Path:
        check_repo_id(repo_id)
        if name not in FILES:
            raise RelayError(404, f"the relay serves {', '.join(FILES)} only, not {name!r}", model=repo_id)
        target = (self.cache_dir / repo_id / name).resolve()
        # The id check already rules this out; this keeps it true whatever the check lets through.
        if self.cache_dir not in target.parents:
            raise RelayError(400, f"{repo_id}/{name} would leave the cache folder", field="model")
        return target

    def get(self, repo_id: str, name: str) -> bytes:
        """The file's bytes, from the cache or else from the Hub (then cached whole)."""
        target = self.path(repo_id, name)
        if target.is_file():
            return target.read_bytes()
        with self._lock:  # one download per file at a time; a second request then reads the cache
            if target.is_file():
                return target.read_bytes()
            data = self._download(repo_id, name)
            try:
                json.loads(data)
            except ValueError as error:
                raise RelayError(502, f"{name} of {repo_id} from the Hub is not JSON ({error})", model=repo_id)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            partial.write_bytes(data)
            os.replace(partial, target)
            return data

    def config(self, repo_id: str) -> dict:
        return json.loads(self.get(repo_id, "config.json"))

    def _download(self, repo_id: str, name: str) -> bytes:
        # The standard library only, whether or not huggingface_hub is installed (nnsight brings it): one path,
        # the one the tests run, and the stand-in Hub (HF_ENDPOINT) is reached the same way as the real one.
        url = f"{self.endpoint}/{repo_id}/resolve/main/{urllib.parse.quote(name)}"
        request = urllib.request.Request(url)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with _HUB_OPENER.open(request, timeout=60) as answer:
                expected = answer.headers.get("Content-Length")
                data = answer.read()
        except urllib.error.HTTPError as error:
            if error.code == 404:
                raise RelayError(404, f"the Hub has no {name} for {repo_id}", model=repo_id) from None
            if error.code in (401, 403):
                raise RelayError(502, _gated(repo_id), model=repo_id) from None
            raise RelayError(502, f"the Hub answered {error.code} for {name} of {repo_id}", model=repo_id) from None
        except http.client.IncompleteRead as error:
            raise RelayError(
                502, f"{name} of {repo_id} arrived cut short: {len(error.partial)} bytes, then the connection closed",
                model=repo_id,
            ) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            raise RelayError(503, f"the Hub is unreachable for {name} of {repo_id}: {error}", model=repo_id) from None
        if expected is not None and int(expected) != len(data):
            raise RelayError(
                502, f"{name} of {repo_id} arrived cut short: {len(data)} of {expected} bytes", model=repo_id
            )
        return data


class _TokenStaysHome(urllib.request.HTTPRedirectHandler):
    """Follows the Hub's redirects (large files go to its CDN) without sending the token to another origin."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        origin = lambda url: urllib.parse.urlsplit(url)[:2]  # noqa: E731 — (scheme, host:port)
        if new is not None and origin(newurl) != origin(req.full_url):
            new.remove_header("Authorization")
        return new


_HUB_OPENER = urllib.request.build_opener(_TokenStaysHome)


def _gated(repo_id: str) -> str:
    return (
        f"the Hub refused {repo_id}'s files: it is gated or private. Accept its license on the Hub and start the "
        "relay with HF_TOKEN set to a token of that account"
    )
