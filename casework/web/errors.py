"""How the web doors answer a use case's refusal: one status per kind of refusal."""

from __future__ import annotations

from casework.cases import (
    CaseworkError,
    Conflict,
    NotFound,
    NotPermitted,
    TransitionRefused,
    ValidationFailed,
)

_STATUS: tuple[tuple[type[CaseworkError], int], ...] = (
    (NotFound, 404),
    (ValidationFailed, 422),
    (NotPermitted, 403),
    (Conflict, 409),
    (TransitionRefused, 409),
)


def http_status(exc: CaseworkError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 400
