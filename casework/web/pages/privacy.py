"""The manager's data-protection pages for a case: who has seen it, legal hold, requests
to correct or erase, and the subject access export.

Each handler parses, calls one use case in :mod:`casework.cases` and renders; the rules
(who may, what is recorded) live in the use cases.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from casework import auth
from casework.cases.errors import NotFound
from casework.cases.seen_by import who_has_seen
from casework.web.deps import PageUserDep, SessionDep
from casework.web.pages.common import not_found, render
from casework.web.pages.manager import require_manager

router = APIRouter(include_in_schema=False)


@router.get("/cases/{reference}/seen-by")
def seen_by_get(
    request: Request, session: SessionDep, signed_in: PageUserDep, reference: str
) -> Response:
    user = require_manager(signed_in)
    try:
        seen = who_has_seen(session, reference, actor=auth.actor_for(user, "web"))
    except NotFound:
        raise not_found() from None
    return render(
        request, "seen_by.html", {"page_title": f"Who has seen {seen.reference}", "seen": seen}
    )
