"""The adviser's pages, sign-in and sign-out, and the manager's page.

Server-rendered GOV.UK Design System pages that work without JavaScript, one module
per screen: :mod:`.sign_in` (with the two-factor code step), :mod:`.account` (setting
up two-factor sign-in), :mod:`.admin` (the administrator's users, sessions and API
tokens), :mod:`.dashboard`, :mod:`.intake`, :mod:`.case` and :mod:`.manager`, over
:mod:`.common` (rendering, errors, forms), :mod:`.labels` (the
words people read) and :mod:`.case_view` (the case as a page shows it, which the
provider portal reuses). Refusals from the services (``CaseworkError``) come back as
the same page with the message beside the field or in a banner, never as a 500.

Reach: advisers, managers and admins use these pages; provider staff are sent to
the portal (:mod:`casework.web.portal`, added by the app beside these pages) and get
404 on any case URL here, so a reference they were not given is not confirmed to exist.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from casework import cases
from casework.config import Settings
from casework.web import assets
from casework.web.deps import ENROL_URL, SESSION_COOKIE, MustEnrol, NotSignedIn
from casework.web.errors import http_status
from casework.web.pages import (
    account,
    admin,
    case,
    common,
    dashboard,
    family,
    intake,
    letters,
    manager,
    privacy,
    sign_in,
    verify,
)
from casework.web.pages.common import PageError, redirect, render
from casework.web.security import CsrfFailed, SecurityHeadersMiddleware

# Order matters: /cases/new (intake) must be matched before /cases/{reference}.
router = APIRouter(include_in_schema=False)
for _screen in (
    sign_in,
    account,
    admin,
    dashboard,
    intake,
    privacy,
    case,
    manager,
    letters,
    verify,
    family,
):
    router.include_router(_screen.router)


# Words for the errors the web server itself gives.
_HTTP_WORDS: dict[int, tuple[str, str]] = {
    404: (
        "Page not found",
        "If you typed the address, check it is correct. If you followed a link, the page"
        " may have moved: go to your cases and find it from there.",
    ),
    405: (
        "That cannot be done from this address",
        "This address answers a form. Go back to the page with the form and send it again.",
    ),
}
# A case's form addresses, and the case page they belong to.
_FORM_OWNER = re.compile(
    r"^(/(?:portal/)?cases/[A-Za-z0-9-]+)/(?:events|allocate|facts|agreements)"
)


class OptionalStaticFiles(StaticFiles):
    """Static files whose folder may not exist yet (assets not installed): 404, not 500."""

    async def check_config(self) -> None:
        if self.directory is not None and not Path(self.directory).is_dir():
            return
        await super().check_config()


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def install(app: FastAPI) -> None:
    """Add the pages, the assets, the error pages and the security headers."""
    settings: Settings = app.state.settings
    # Templates change on disk only while developing; elsewhere skip the per-render check.
    common.templates_reload(settings.environment == "development")
    if settings.environment != "test":
        warning = assets.ensure_assets(quiet=True)
        if warning:
            import logging

            logging.getLogger(__name__).warning(warning)
            print(f"warning: {warning}")

    app.include_router(router)
    # /assets/govuk/... is the package's dist (CSS, JS); /assets/... its fonts and images,
    # which is where the compiled CSS looks for them.
    app.mount(
        "/assets/govuk",
        OptionalStaticFiles(directory=assets.GOVUK_DIST, check_dir=False),
        name="govuk",
    )
    app.mount(
        "/assets",
        OptionalStaticFiles(directory=assets.GOVUK_DIST / "assets", check_dir=False),
        name="assets",
    )
    app.mount("/static", StaticFiles(directory=assets.STATIC_DIR), name="static")

    @app.exception_handler(NotSignedIn)
    async def _not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        target = request.url.path
        if request.url.query and request.method == "GET":
            target += "?" + request.url.query
        params = {"next": target}
        if request.cookies.get(SESSION_COOKIE):
            params["expired"] = "1"
        response = redirect("/sign-in?" + urlencode(params))
        if request.cookies.get(SESSION_COOKIE):
            response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.exception_handler(MustEnrol)
    async def _must_enrol(request: Request, exc: MustEnrol) -> Response:
        return redirect(ENROL_URL)

    @app.exception_handler(CsrfFailed)
    async def _csrf_failed(request: Request, exc: CsrfFailed) -> Response:
        return render(
            request,
            "error.html",
            {
                "page_title": "This form could not be sent",
                "message": (
                    "The form was out of date or did not come from this service, so nothing"
                    " was changed. Go back, reload the page and try again."
                ),
            },
            status_code=403,
        )

    @app.exception_handler(PageError)
    async def _page_error(request: Request, exc: PageError) -> Response:
        return render(
            request,
            "error.html",
            {"page_title": exc.title, "message": exc.message},
            status_code=exc.status_code,
        )

    @app.exception_handler(cases.CaseworkError)
    async def _casework_error(request: Request, exc: cases.CaseworkError) -> Response:
        # Pages handle refusals where they happen; this is the safety net so a refusal
        # is never a 500. API paths get JSON with the same message.
        if _wants_json(request):
            return JSONResponse({"detail": str(exc)}, status_code=http_status(exc))
        return render(
            request,
            "error.html",
            {"page_title": "That cannot be done", "message": str(exc)},
            status_code=http_status(exc),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """Unknown addresses and wrong methods get a page a person can act on.

        The API and the webhooks keep their JSON. A form's address opened as a page
        (a sign-in that returned to it after a session ended mid-form) goes back to
        the case the form belongs to.
        """
        if _wants_json(request) or request.url.path.startswith(("/api/", "/webhooks/")):
            return JSONResponse(
                {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
            )
        if exc.status_code == 405 and request.method == "GET":
            owner = _FORM_OWNER.match(request.url.path)
            if owner:
                return redirect(owner.group(1))
        title, message = _HTTP_WORDS.get(
            exc.status_code,
            ("Sorry, that did not work", "Go back and try again, or go to your cases."),
        )
        return render(
            request,
            "error.html",
            {"page_title": title, "message": message},
            status_code=exc.status_code,
        )

    app.add_middleware(SecurityHeadersMiddleware)


__all__ = ["install", "router"]
