"""Your own two-factor sign-in: enrol (QR code and the secret to type), recovery codes.

The QR code is drawn as inline SVG (segno) so the secret never leaves the page for
an image service, and the page's Content-Security-Policy needs no exception.
"""

from __future__ import annotations

import segno
from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup

from casework import auth, cases
from casework.cases import mfa
from casework.config import Settings
from casework.web.deps import ENROL_URL, NowDep, PageUserDep, SessionDep
from casework.web.pages.common import form_text, home_for, render
from casework.web.security import CheckedForm

router = APIRouter(include_in_schema=False)


def _qr_svg(uri: str) -> Markup:
    """The otpauth address as an accessible inline SVG QR code."""
    svg = segno.make(uri, error="m").svg_inline(
        scale=4, light="#fff", svgclass="casework-qr", omitsize=True
    )
    # segno writes no attributes from its input, only the drawing: safe to inline.
    return Markup(
        svg.replace("<svg ", '<svg role="img" aria-label="QR code for your authenticator app" ', 1)
    )


def _enrol_page(
    request: Request,
    enrolment: mfa.Enrolment,
    *,
    required: bool,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "two_factor.html",
        {
            "page_title": "Set up two-factor sign-in",
            "qr": _qr_svg(enrolment.uri),
            "secret_groups": enrolment.grouped,
            "required": required,
            "errors": errors or {},
        },
        status_code=status_code,
    )


@router.get(ENROL_URL)
def two_factor_get(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    codes_left: int | None = None,
) -> Response:
    user = signed_in[0]
    settings: Settings = request.app.state.settings
    if user.mfa_on:
        return render(
            request,
            "two_factor_on.html",
            {
                "page_title": "Two-factor sign-in",
                "codes_left": auth.recovery_codes_left(session, user),
                "just_used": codes_left is not None,
                "home": home_for(user),
            },
        )
    enrolment = mfa.start_enrolment(session, settings, user, now=now)
    return _enrol_page(request, enrolment, required=mfa.mfa_required(user, settings))


@router.post(ENROL_URL)
def two_factor_post(
    request: Request, session: SessionDep, now: NowDep, signed_in: PageUserDep, form: CheckedForm
) -> Response:
    user = signed_in[0]
    settings: Settings = request.app.state.settings
    try:
        codes = mfa.confirm_enrolment(
            session,
            settings,
            user,
            form_text(form, "code"),
            actor=auth.actor_for(user, "web"),
            now=now,
        )
    except cases.ValidationFailed as exc:
        enrolment = mfa.start_enrolment(session, settings, user, now=now)
        return _enrol_page(
            request,
            enrolment,
            required=mfa.mfa_required(user, settings),
            errors={exc.field or "code": str(exc)},
            status_code=422,
        )
    return _recovery_codes_page(request, codes, home_for(user), first=True)


@router.post(ENROL_URL + "/recovery-codes")
def recovery_codes_post(
    request: Request, session: SessionDep, now: NowDep, signed_in: PageUserDep, form: CheckedForm
) -> Response:
    user = signed_in[0]
    codes = mfa.renew_recovery_codes(session, user, actor=auth.actor_for(user, "web"), now=now)
    return _recovery_codes_page(request, codes, home_for(user), first=False)


def _recovery_codes_page(request: Request, codes: list[str], home: str, *, first: bool) -> Response:
    """Shown once, in answer to the POST: nothing stores or shows them again."""
    return render(
        request,
        "recovery_codes.html",
        {
            "page_title": "Your recovery codes",
            "codes": codes,
            "home": home,
            "first": first,
        },
    )
