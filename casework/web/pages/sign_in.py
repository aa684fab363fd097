"""Signing in and out, the two-factor code step, and choosing a password from a link.

Signing in with two-factor sign-in on is two steps. A right password earns a signed,
5-minute proof (a cookie scoped to /sign-in, bound to the user's session epoch), not
a session; only a right code (or an unused recovery code) then starts the session.
So no page, and no form, can be reached with the password alone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session
from starlette.datastructures import FormData

from casework import auth, cases
from casework.cases import mfa
from casework.config import Settings
from casework.models import Role, User
from casework.web.deps import ENROL_URL, SESSION_COOKIE, NowDep, SessionDep
from casework.web.pages.common import (
    PageError,
    form_text,
    home_for,
    redirect,
    render,
    safe_next,
)
from casework.web.pages.labels import DONE_MESSAGES
from casework.web.security import (
    CSRF_FIELD,
    SIGN_IN_CSRF_COOKIE,
    CheckedForm,
    CsrfFailed,
    SignInForm,
    cookie_secure,
    new_csrf_token,
    tokens_match,
)

router = APIRouter(include_in_schema=False)

MFA_PENDING_COOKIE = "casework_mfa_pending"


def _signed_in_user(request: Request, session: Session, now: dt.datetime) -> User | None:
    resolved = auth.resolve_session(session, request.cookies.get(SESSION_COOKIE), now=now)
    return resolved[0] if resolved else None


def _sign_in_page(
    request: Request,
    *,
    email: str = "",
    next_url: str | None = None,
    errors: dict[str, str] | None = None,
    message: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    token = request.cookies.get(SIGN_IN_CSRF_COOKIE) or new_csrf_token()
    response = render(
        request,
        "sign_in.html",
        {
            "page_title": "Sign in",
            "email": email,
            "next": next_url or "",
            "errors": errors or {},
            "message": message,
            "signin_csrf": token,
        },
        status_code=status_code,
    )
    settings: Settings = request.app.state.settings
    response.set_cookie(
        SIGN_IN_CSRF_COOKIE,
        token,
        httponly=True,
        secure=cookie_secure(settings),
        samesite="strict",
        path="/sign-in",
    )
    return response


@router.get("/sign-in")
def sign_in_get(
    request: Request,
    session: SessionDep,
    now: NowDep,
    next: str | None = None,
    expired: int = 0,
    signed_out: int = 0,
    done: str | None = None,
) -> Response:
    user = _signed_in_user(request, session, now)
    if user is not None:
        return redirect(safe_next(next) or home_for(user))
    message = ""
    if expired:
        message = "Your session has ended. Sign in again to carry on."
    elif signed_out:
        message = "You have signed out."
    elif done in DONE_MESSAGES:
        message = DONE_MESSAGES[done]
    return _sign_in_page(request, next_url=safe_next(next), message=message)


@router.post("/sign-in")
def sign_in_post(request: Request, session: SessionDep, now: NowDep, form: SignInForm) -> Response:
    email = form_text(form, "email")
    password = form.get("password")
    password = password if isinstance(password, str) else ""
    next_url = safe_next(form_text(form, "next"))
    errors: dict[str, str] = {}
    if not email:
        errors["email"] = "Enter your email address"
    if not password:
        errors["password"] = "Enter your password"
    if errors:
        return _sign_in_page(
            request, email=email, next_url=next_url, errors=errors, status_code=422
        )
    try:
        user = auth.authenticate(session, email, password, now=now)
    except auth.SignInFailed as exc:
        return _sign_in_page(
            request,
            email=email,
            next_url=next_url,
            errors={"email": str(exc)},
            status_code=401,
        )
    settings: Settings = request.app.state.settings
    if user.mfa_on:
        target = "/sign-in/code" + (f"?{urlencode({'next': next_url})}" if next_url else "")
        response = redirect(target)
        response.set_cookie(
            MFA_PENDING_COOKIE,
            auth.mfa_pending_token(settings, user),
            max_age=int(auth.MFA_PENDING_MAX_AGE.total_seconds()),
            httponly=True,
            secure=cookie_secure(settings),
            samesite="strict",
            path="/sign-in",
        )
        return response
    return _signed_in(request, session, now, user, next_url)


def _signed_in(
    request: Request, session: Session, now: dt.datetime, user: User, next_url: str | None
) -> Response:
    """Start the session (both factors, where required, are done) and go on."""
    settings: Settings = request.app.state.settings
    auth.end_session(session, request.cookies.get(SESSION_COOKIE), now=now)
    handle = auth.start_session(
        session, user, now=now, user_agent=request.headers.get("user-agent", "")
    )
    if next_url and user.role == Role.provider and not next_url.startswith("/portal"):
        next_url = None
    if mfa.must_enrol(user, settings):
        next_url = ENROL_URL
    response = redirect(next_url or home_for(user))
    response.set_cookie(
        SESSION_COOKIE,
        handle.token,
        httponly=True,
        secure=cookie_secure(settings),
        samesite="lax",
        path="/",
    )
    response.delete_cookie(SIGN_IN_CSRF_COOKIE, path="/sign-in")
    response.delete_cookie(MFA_PENDING_COOKIE, path="/sign-in")
    return response


def _code_page(
    request: Request,
    *,
    next_url: str | None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    token = request.cookies.get(SIGN_IN_CSRF_COOKIE) or new_csrf_token()
    response = render(
        request,
        "sign_in_code.html",
        {
            "page_title": "Enter your sign-in code",
            "next": next_url or "",
            "errors": errors or {},
            "signin_csrf": token,
        },
        status_code=status_code,
    )
    settings: Settings = request.app.state.settings
    response.set_cookie(
        SIGN_IN_CSRF_COOKIE,
        token,
        httponly=True,
        secure=cookie_secure(settings),
        samesite="strict",
        path="/sign-in",
    )
    return response


def _pending(request: Request, session: Session) -> User | None:
    settings: Settings = request.app.state.settings
    return auth.mfa_pending_user(session, settings, request.cookies.get(MFA_PENDING_COOKIE))


def _start_again(next_url: str | None) -> Response:
    params = {"expired": "1", **({"next": next_url} if next_url else {})}
    response = redirect("/sign-in?" + urlencode(params))
    response.delete_cookie(MFA_PENDING_COOKIE, path="/sign-in")
    return response


@router.get("/sign-in/code")
def sign_in_code_get(request: Request, session: SessionDep, next: str | None = None) -> Response:
    if _pending(request, session) is None:
        return _start_again(safe_next(next))
    return _code_page(request, next_url=safe_next(next))


@router.post("/sign-in/code")
def sign_in_code_post(
    request: Request, session: SessionDep, now: NowDep, form: SignInForm
) -> Response:
    next_url = safe_next(form_text(form, "next"))
    user = _pending(request, session)
    if user is None:
        return _start_again(next_url)
    code = form_text(form, "code")
    if not code:
        return _code_page(
            request,
            next_url=next_url,
            errors={"code": "Enter the 6-digit code from your authenticator app"},
            status_code=422,
        )
    settings: Settings = request.app.state.settings
    try:
        accepted = mfa.sign_in_with_code(session, settings, user, code, now=now)
    except auth.SignInFailed as exc:
        return _code_page(request, next_url=next_url, errors={"code": str(exc)}, status_code=401)
    if accepted.recovery_code_used:
        next_url = f"{ENROL_URL}?codes_left={accepted.recovery_codes_left}"
    return _signed_in(request, session, now, accepted.user, next_url)


@router.post("/sign-out")
def sign_out(request: Request, session: SessionDep, now: NowDep, form: CheckedForm) -> Response:
    auth.end_session(session, request.cookies.get(SESSION_COOKIE), now=now)
    response = redirect("/sign-in?signed_out=1")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _set_password_csrf(settings: Settings, token: str) -> str:
    """A CSRF value bound to the one-time token: the page has no session yet."""
    return hmac.new(
        settings.secret_key.encode(), f"set-password:{token}".encode(), hashlib.sha256
    ).hexdigest()


async def _set_password_form(request: Request, token: str) -> FormData:
    form = await request.form()
    settings: Settings = request.app.state.settings
    if not tokens_match(_set_password_csrf(settings, token), form.get(CSRF_FIELD)):
        raise CsrfFailed()
    return form


def _set_password_user(session: Session, settings: Settings, token: str) -> User:
    user = auth.user_for_set_password_token(session, settings, token)
    if user is None:
        raise PageError(
            404,
            "This link has expired",
            "This link has been used or has expired. Ask an administrator for a new one.",
        )
    return user


@router.get("/set-password/{token}")
def set_password_get(request: Request, session: SessionDep, token: str) -> Response:
    settings: Settings = request.app.state.settings
    user = _set_password_user(session, settings, token)
    request.state.csrf_token = _set_password_csrf(settings, token)
    return render(
        request,
        "set_password.html",
        {"page_title": "Set your password", "email": user.email, "token": token},
    )


@router.post("/set-password/{token}")
def set_password_post(
    request: Request,
    session: SessionDep,
    now: NowDep,
    token: str,
    form: Annotated[FormData, Depends(_set_password_form)],
) -> Response:
    settings: Settings = request.app.state.settings
    user = _set_password_user(session, settings, token)
    password = form_text(form, "password")
    errors: dict[str, str] = {}
    if password != form_text(form, "confirm"):
        errors["confirm"] = "The passwords do not match: type the same password twice"
    else:
        try:
            auth.set_password(session, user, password, now=now)
        except cases.ValidationFailed as exc:
            errors["password"] = str(exc).removeprefix("password: ").capitalize()
    if errors:
        session.rollback()
        request.state.csrf_token = _set_password_csrf(settings, token)
        return render(
            request,
            "set_password.html",
            {
                "page_title": "Set your password",
                "email": user.email,
                "token": token,
                "errors": errors,
            },
            status_code=422,
        )
    return redirect("/sign-in?done=password")
