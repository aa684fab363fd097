"""The public certificate check: ``/verify``, no sign-in, number and code in, genuine or not out.

The form changes nothing (it only reads), so it carries no CSRF token: there is no
session to ride on. It is a POST so the code is not left in addresses, histories
and server logs. Checks are limited per client address by the use case's
:class:`~casework.cases.certificates.GuessLimiter`, one per web process.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from casework.cases.certificates import GuessLimiter, TooManyChecks, check_certificate
from casework.cases.errors import ValidationFailed
from casework.web.deps import NowDep, SessionDep
from casework.web.pages.common import form_text, render

router = APIRouter(include_in_schema=False)


def _limiter(request: Request) -> GuessLimiter:
    limiter = getattr(request.app.state, "verify_limiter", None)
    if limiter is None:
        limiter = request.app.state.verify_limiter = GuessLimiter()
    return limiter


def _page(request: Request, **context: object) -> HTMLResponse:
    status = int(context.pop("status_code", 200))  # type: ignore[call-overload]
    base: dict[str, object] = {
        "page_title": "Check a mediation certificate",
        "number": "",
        "code": "",
        "result": None,
        "errors": {},
    }
    return render(request, "verify.html", base | context, status_code=status)


@router.get("/verify")
def verify_get(request: Request) -> HTMLResponse:
    return _page(request)


@router.post("/verify")
async def verify_post(request: Request, session: SessionDep, now: NowDep) -> HTMLResponse:
    form = await request.form()
    number, code = form_text(form, "number"), form_text(form, "code")
    client = request.client.host if request.client is not None else "unknown"
    try:
        result = check_certificate(
            session, number, code, client=client, now=now, limiter=_limiter(request)
        )
    except ValidationFailed as exc:
        status = 429 if isinstance(exc, TooManyChecks) else 400
        return _page(
            request,
            number=number,
            code=code,
            errors={exc.field or "number": str(exc)},
            status_code=status,
        )
    return _page(request, number=number, code=code, result=result)
