"""The relay's one error type: an HTTP status and a message that names what was wrong (PROTOCOL.md, Errors)."""

from __future__ import annotations

from typing import Optional


class RelayError(Exception):
    """Answered as `{"error": {"message", "model"?, "state"?, "field"?}}` with `status`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        model: Optional[str] = None,
        state: Optional[str] = None,
        field: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.model = model
        self.state = state
        self.field = field

    def body(self) -> dict:
        error = {"message": self.message}
        for name in ("model", "state", "field"):
            value = getattr(self, name)
            if value is not None:
                error[name] = value
        return {"error": error}


def bad_param(field: str, message: str, model: Optional[str] = None) -> RelayError:
    """A 400 whose message starts with the field's JSON path, as `params.hooks[2]: …`."""
    return RelayError(400, f"{field}: {message}", field=field, model=model)
