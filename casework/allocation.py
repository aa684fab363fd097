"""Moved to :mod:`casework.cases.allocation`; this name stays only while the doors move."""

from casework.cases.allocation import *  # noqa: F403
from casework.cases.allocation import (  # noqa: F401
    Candidate,
    Suggestion,
    allocate,
    check_override,
    matching_conflict,
    open_loads,
    suggest,
)
from casework.cases.errors import NotPermitted  # noqa: F401
