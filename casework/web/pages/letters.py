"""The "Letters to post" page: letters waiting, print them all, mark the ones posted.

Parses the form, calls one use case (:mod:`casework.cases.letters_to_post`), renders.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from casework import cases
from casework.auth import actor_for
from casework.cases.letters_to_post import (
    PRINT_FILE_NAME,
    letters_waiting,
    mark_posted,
    print_all,
)
from casework.models import User
from casework.web.deps import NowDep, PageUserDep, SessionDep
from casework.web.pages.common import (
    date_from_parts,
    date_parts,
    redirect,
    render,
    require_staff,
)
from casework.web.pages.labels import DONE_MESSAGES
from casework.web.security import CheckedForm

router = APIRouter(include_in_schema=False)
POSTED_ON_LABEL = "The day they were posted"


def _page(
    request: Request,
    session: SessionDep,
    user: User,
    *,
    done: str = "",
    errors: dict[str, str] | None = None,
    chosen: tuple[str, ...] = (),
    parts: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    actor = actor_for(user, "web")
    rows = letters_waiting(session, actor)
    return render(
        request,
        "letters.html",
        {
            "page_title": "Letters to post",
            "letters": rows,
            "options": [
                (
                    str(r.number),
                    f"{r.reference}: {r.about}, to {r.addressed_to}, {r.postcode}"
                    f" (printed {r.printed_on})",
                )
                for r in rows
            ],
            "chosen": chosen,
            "parts": parts or {},
            "errors": errors or {},
            "done_message": DONE_MESSAGES.get(done, ""),
            "posted_on_label": POSTED_ON_LABEL,
        },
        status_code=status_code,
    )


@router.get("/letters")
def letters_get(
    request: Request, session: SessionDep, signed_in: PageUserDep, done: str = ""
) -> Response:
    user = require_staff(signed_in)
    return _page(request, session, user, done=done)


@router.post("/letters/print")
def letters_print(
    request: Request, session: SessionDep, now: NowDep, signed_in: PageUserDep, form: CheckedForm
) -> Response:
    user = require_staff(signed_in)
    try:
        pdf, _count = print_all(session, actor_for(user, "web"), now=now)
    except cases.CaseworkError as exc:
        return _page(request, session, user, errors={"_form": str(exc)}, status_code=409)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{PRINT_FILE_NAME}"'},
    )


@router.post("/letters/posted")
def letters_posted(
    request: Request, session: SessionDep, now: NowDep, signed_in: PageUserDep, form: CheckedForm
) -> Response:
    user = require_staff(signed_in)
    chosen = tuple(str(v) for v in form.getlist("letters"))
    parts = date_parts(form, "posted_on")
    try:
        numbers = [int(v) for v in chosen]
        day = date_from_parts(parts, "posted_on", POSTED_ON_LABEL)
        mark_posted(session, numbers, actor_for(user, "web"), now=now, posted_on=day)
    except ValueError:
        errors = {"letters": "Choose the letters that were posted."}
        return _page(
            request, session, user, errors=errors, chosen=chosen, parts=parts, status_code=400
        )
    except cases.CaseworkError as exc:
        field = getattr(exc, "field", None) or "letters"
        return _page(
            request,
            session,
            user,
            errors={field: str(exc)},
            chosen=chosen,
            parts=parts,
            status_code=400,
        )
    return redirect("/letters?done=posted")
