"""The family's own page: ``/family/<token>``, opened with a one-time code.

A door like the others: it parses the form, calls one use case of
:mod:`casework.cases.family` and renders the result. The family's sign-in is a
signed cookie scoped to this link's path, so the browser sends it nowhere else and
nothing else reads it; a staff or provider session cookie (path ``/``) is ignored
here, so an adviser or a mediator who opens the link sees only the code form.
The token is the only thing in any address: no reference, no name.

Forms before sign-in carry a double-submit token (a random cookie, also scoped to the
link, echoed in a hidden field), as the staff sign-in form does; forms after sign-in
carry the token inside the signed cookie.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlmodel import Session

from casework import cases
from casework.cases import family as fam
from casework.config import Settings
from casework.web.deps import NowDep, SessionDep
from casework.web.pages.common import form_text, redirect, render
from casework.web.security import CSRF_FIELD, CsrfFailed, cookie_secure, tokens_match

router = APIRouter(prefix="/family", include_in_schema=False)

FAMILY_COOKIE = "casework_family"
CODE_CSRF_COOKIE = "casework_family_csrf"
_SALT = "casework-family-page"
DONE: dict[str, str] = {
    "channels": "We have saved how you want to hear from us.",
    "call-back": "We have asked your adviser to call you back.",
}


def _path(token: str) -> str:
    return f"/family/{token}"


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key, salt=_SALT)


def _family_cookie(request: Request, settings: Settings) -> dict[str, Any] | None:
    raw = request.cookies.get(FAMILY_COOKIE)
    if not raw:
        return None
    try:
        data = _serializer(settings).loads(raw, max_age=settings.family_session_minutes * 60)
    except BadSignature:
        return None
    return data if isinstance(data, dict) else None


def _signed_in(
    request: Request, session: Session, token: str, now: dt.datetime
) -> tuple[fam.OpenLink, str] | None:
    """The open link and the form token of the family signed in here, or None."""
    settings: Settings = request.app.state.settings
    data = _family_cookie(request, settings)
    if data is None or not isinstance(data.get("l"), int):
        return None
    try:
        opened = fam.signed_in_link(session, token, data["l"], now=now, settings=settings)
    except cases.NotFound:
        # A sign-in for another link (or a replaced one): ask for a code, as if none.
        fam.open_link(session, token, now=now, settings=settings)
        return None
    return opened, str(data.get("c", ""))


def _page(
    request: Request,
    token: str,
    template: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
) -> HTMLResponse:
    values = {"home_url": _path(token), "family_path": _path(token), **context}
    return render(request, template, values, status_code=status_code)


def _code_form(
    request: Request,
    token: str,
    opened: fam.OpenLink,
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The page a link opens before sign-in: where to send a code, and nothing of the case."""
    settings: Settings = request.app.state.settings
    csrf = request.cookies.get(CODE_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = _page(
        request,
        token,
        "family/request_code.html",
        {
            "page_title": "Your case page",
            "options": [(c.channel, c.words) for c in fam.code_channels(opened.family)],
            "minutes": settings.family_code_minutes,
            "form_csrf": csrf,
            "errors": errors or {},
        },
        status_code=status_code,
    )
    _set_code_csrf(response, token, csrf, settings)
    return response


def _set_code_csrf(response: Response, token: str, value: str, settings: Settings) -> None:
    response.set_cookie(
        CODE_CSRF_COOKIE,
        value,
        httponly=True,
        secure=cookie_secure(settings),
        samesite="strict",
        path=_path(token),
    )


async def _code_form_data(request: Request) -> Any:
    form = await request.form()
    if not tokens_match(request.cookies.get(CODE_CSRF_COOKIE), form.get(CSRF_FIELD)):
        raise CsrfFailed()
    return form


@router.get("/{token}")
def family_page(
    request: Request, token: str, session: SessionDep, now: NowDep, done: str = ""
) -> Response:
    settings: Settings = request.app.state.settings
    signed = _signed_in(request, session, token, now)
    if signed is None:
        opened = fam.open_link(session, token, now=now, settings=settings)
        return _code_form(request, token, opened)
    opened, csrf = signed
    view = fam.family_view(session, opened, now=now, settings=settings)
    return _page(
        request,
        token,
        "family/page.html",
        {
            "page_title": "Your case",
            "view": view,
            "message": DONE.get(done, ""),
            "family_csrf": csrf,
            "chosen": [c for c in ("sms", "email") if getattr(view.channels, c)],
        },
    )


@router.post("/{token}/code")
async def send_code(request: Request, token: str, session: SessionDep, now: NowDep) -> Response:
    settings: Settings = request.app.state.settings
    form = await _code_form_data(request)
    opened = fam.open_link(session, token, now=now, settings=settings)
    try:
        sent = fam.request_code(
            session, token, channel=form_text(form, "channel"), now=now, settings=settings
        )
    except (cases.ValidationFailed, cases.NotPermitted) as exc:
        field = getattr(exc, "field", None) or "channel"
        return _code_form(request, token, opened, errors={field: str(exc)}, status_code=422)
    # Post/redirect/get: reloading the code page must not send another code.
    return redirect(f"{_path(token)}/code?by={sent.channel.channel}")


@router.get("/{token}/code")
def code_page(
    request: Request, token: str, session: SessionDep, now: NowDep, by: str = ""
) -> Response:
    settings: Settings = request.app.state.settings
    opened = fam.open_link(session, token, now=now, settings=settings)
    return _enter_code(request, token, opened, by)


def _enter_code(
    request: Request,
    token: str,
    opened: fam.OpenLink,
    by: str,
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    sent_to = next(
        (c.words for c in fam.code_channels(opened.family) if c.channel == by),
        "The way you chose",
    )
    csrf = request.cookies.get(CODE_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = _page(
        request,
        token,
        "family/enter_code.html",
        {
            "page_title": "Enter your code",
            "sent_to": sent_to,
            "by": by,
            "minutes": settings.family_code_minutes,
            "tries": settings.family_code_tries,
            "form_csrf": csrf,
            "errors": errors or {},
        },
        status_code=status_code,
    )
    _set_code_csrf(response, token, csrf, settings)
    return response


@router.post("/{token}/sign-in")
async def sign_in(request: Request, token: str, session: SessionDep, now: NowDep) -> Response:
    settings: Settings = request.app.state.settings
    form = await _code_form_data(request)
    opened = fam.open_link(session, token, now=now, settings=settings)
    try:
        signed = fam.check_code(session, token, form_text(form, "code"), now=now, settings=settings)
    except (cases.ValidationFailed, cases.NotPermitted) as exc:
        return _enter_code(
            request,
            token,
            opened,
            form_text(form, "by"),
            errors={"code": str(exc)},
            status_code=422,
        )
    response = redirect(_path(token))
    value = _serializer(settings).dumps({"l": signed.link_id, "c": secrets.token_urlsafe(32)})
    response.set_cookie(
        FAMILY_COOKIE,
        value,
        max_age=settings.family_session_minutes * 60,
        httponly=True,
        secure=cookie_secure(settings),
        samesite="lax",
        path=_path(token),
    )
    response.delete_cookie(CODE_CSRF_COOKIE, path=_path(token))
    return response


async def _signed_in_form(
    request: Request, session: Session, token: str, now: dt.datetime
) -> tuple[fam.OpenLink, Any] | None:
    signed = _signed_in(request, session, token, now)
    if signed is None:
        return None
    form = await request.form()
    if not tokens_match(signed[1], form.get(CSRF_FIELD)):
        raise CsrfFailed()
    return signed[0], form


@router.post("/{token}/channels")
async def change_channels(
    request: Request, token: str, session: SessionDep, now: NowDep
) -> Response:
    signed = await _signed_in_form(request, session, token, now)
    if signed is None:
        return redirect(_path(token))
    opened, form = signed
    chosen = [str(v) for v in form.getlist("channels")]
    try:
        fam.change_channels(session, opened, channels=chosen, now=now)
    except (cases.ValidationFailed, cases.NotPermitted) as exc:
        return _page_with_error(request, session, token, opened, now, "channels", str(exc))
    return redirect(f"{_path(token)}?done=channels#contact")


@router.post("/{token}/call-back")
async def call_back(request: Request, token: str, session: SessionDep, now: NowDep) -> Response:
    settings: Settings = request.app.state.settings
    signed = await _signed_in_form(request, session, token, now)
    if signed is None:
        return redirect(_path(token))
    opened, form = signed
    try:
        fam.request_call_back(
            session, opened, when=form_text(form, "when"), now=now, settings=settings
        )
    except cases.ValidationFailed as exc:
        return _page_with_error(request, session, token, opened, now, "when", str(exc))
    return redirect(f"{_path(token)}?done=call-back")


def _page_with_error(
    request: Request,
    session: Session,
    token: str,
    opened: fam.OpenLink,
    now: dt.datetime,
    field: str,
    message: str,
) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    signed = _signed_in(request, session, token, now)
    view = fam.family_view(session, opened, now=now, settings=settings)
    return _page(
        request,
        token,
        "family/page.html",
        {
            "page_title": "Your case",
            "view": view,
            "errors": {field: message},
            "family_csrf": signed[1] if signed else "",
            "chosen": [c for c in ("sms", "email") if getattr(view.channels, c)],
        },
        status_code=422,
    )


@router.get("/{token}/documents/{document_id}")
def download(
    request: Request, token: str, document_id: int, session: SessionDep, now: NowDep
) -> Response:
    signed = _signed_in(request, session, token, now)
    if signed is None:
        return redirect(_path(token))
    document = fam.family_document(session, signed[0], document_id, now=now)
    return Response(
        document.content,
        media_type=document.media_type,
        headers={"Content-Disposition": f'attachment; filename="{document.file_name}"'},
    )


@router.post("/{token}/sign-out")
async def sign_out(request: Request, token: str, session: SessionDep, now: NowDep) -> Response:
    await _signed_in_form(request, session, token, now)
    response = redirect(_path(token))
    response.delete_cookie(FAMILY_COOKIE, path=_path(token))
    return response
