"""Browser-facing protections: CSRF on every form, security headers, cookie flags.

CSRF: every signed-in form carries the session's own random token (stored
server-side with the session), compared in constant time on every POST. The
sign-in form has no session yet, so it uses a double-submit cookie: a random
value set as a cookie and echoed in a hidden field; a cross-site page can make the
browser send the cookie but cannot read it to fill in the field.

Headers: a Content-Security-Policy with no inline scripts or styles (the GOV.UK
"js-enabled" snippet lives in a static file for this reason), framing denied twice
(``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``), no referrer leaking
case references to other sites, no MIME sniffing, and ``no-store`` on pages because
they carry children's data. Where the service is reached over https (production
always), ``Strict-Transport-Security`` tells browsers never to fall back to http.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import FormData
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from casework.config import Settings
from casework.models import User, UserSession
from casework.web.deps import PageUserDep

CSRF_FIELD = "csrf_token"
SIGN_IN_CSRF_COOKIE = "casework_signin_csrf"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "object-src 'none'",
    ]
)

# The interactive API docs page (owned by the API) loads its own scripts; it gets
# the other headers but not the page CSP.
_CSP_EXEMPT_PREFIXES = ("/api/docs", "/api/redoc")


class CsrfFailed(Exception):
    """A POST without the right token: answered with a 403 page that says what to do."""


# Two years, the preload list's minimum; sent only where people reach the service over
# https (browsers ignore it on plain http anyway).
STRICT_TRANSPORT_SECURITY = "max-age=63072000; includeSubDomains"


def cookie_secure(settings: Settings) -> bool:
    """Secure cookies in production and whenever the public URL is https (see
    ``Settings.tls_required``); plain http stays usable for a local first run."""
    return settings.tls_required


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def tokens_match(expected: str | None, given: object) -> bool:
    if not expected or not isinstance(given, str) or not given:
        return False
    return secrets.compare_digest(expected.encode(), given.encode())


async def signed_in_form(request: Request, signed_in: PageUserDep) -> FormData:
    """The POSTed form of a signed-in user, after checking its CSRF token.

    Starlette caches the parsed form on the request, so handlers read the same
    object through this dependency.
    """
    form = await request.form()
    _user, user_session = signed_in
    if not tokens_match(user_session.csrf_token, form.get(CSRF_FIELD)):
        raise CsrfFailed()
    return form


async def sign_in_form(request: Request) -> FormData:
    """The sign-in form, checked against the double-submit cookie."""
    form = await request.form()
    if not tokens_match(request.cookies.get(SIGN_IN_CSRF_COOKIE), form.get(CSRF_FIELD)):
        raise CsrfFailed()
    return form


CheckedForm = Annotated[FormData, Depends(signed_in_form)]
SignInForm = Annotated[FormData, Depends(sign_in_form)]
SignedIn = tuple[User, UserSession]


class SecurityHeadersMiddleware:
    """Adds the security headers to every HTTP response (pure ASGI: no per-request task)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        # Starlette puts the application in the scope; its settings say whether this
        # deployment is reached over https (production always is).
        app_settings: Settings | None = getattr(
            getattr(scope.get("app"), "state", None), "settings", None
        )
        hsts = app_settings is not None and app_settings.tls_required
        is_asset = path.startswith(("/assets/", "/static/"))
        with_csp = not path.startswith(_CSP_EXEMPT_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}

                def add(name: str, value: str) -> None:
                    key = name.lower().encode()
                    if key not in present:
                        headers.append((key, value.encode()))

                if with_csp:
                    add("Content-Security-Policy", CONTENT_SECURITY_POLICY)
                add("X-Frame-Options", "DENY")
                add("X-Content-Type-Options", "nosniff")
                add("Referrer-Policy", "same-origin")
                add("Cross-Origin-Opener-Policy", "same-origin")
                add("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
                if hsts:
                    add("Strict-Transport-Security", STRICT_TRANSPORT_SECURITY)
                if is_asset:
                    add("Cache-Control", "public, max-age=3600")
                else:
                    add("Cache-Control", "no-store")
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
