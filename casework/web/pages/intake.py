"""Opening a case from a helpline call or an email."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from casework import auth, cases
from casework import deadlines as dl
from casework.config import Settings
from casework.web.deps import NowDep, PageUserDep, SessionDep
from casework.web.pages.common import (
    date_from_parts,
    date_parts,
    forget_counts,
    form_text,
    redirect,
    render,
    require_staff,
)
from casework.web.security import CheckedForm

router = APIRouter(include_in_schema=False)


INTAKE_DEFAULTS: dict[str, Any] = {
    "kind": "mediation",
    "channel": "helpline",
    "preferred_channels": ["sms", "email"],
    "sms_consent": "yes",
    "health_care": "no",
    "placement_only": "no",
    "reg32_info_given": "",
    "decision_date_parts": {},
}


def _yes(value: str) -> bool:
    return value == "yes"


@router.get("/cases/new")
def intake_get(request: Request, signed_in: PageUserDep) -> Response:
    require_staff(signed_in)
    return render(
        request,
        "case_new.html",
        {"page_title": "Open a case", "values": dict(INTAKE_DEFAULTS), "errors": {}},
    )


@router.post("/cases/new")
def intake_post(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
) -> Response:
    user = require_staff(signed_in)
    settings: Settings = request.app.state.settings
    values: dict[str, Any] = {
        name: form_text(form, name)
        for name in (
            "kind",
            "channel",
            "name",
            "phone",
            "email",
            "child_name",
            "decision_type",
            "sms_consent",
            "health_care",
            "placement_only",
            "reg32_info_given",
            "summary",
            "address_line_1",
            "address_line_2",
            "address_town",
            "address_postcode",
        )
    }
    values["preferred_channels"] = [
        c for c in form.getlist("preferred_channels") if isinstance(c, str)
    ]
    values["decision_date_parts"] = date_parts(form, "decision_date")
    errors: dict[str, str] = {}
    decision_date = None
    try:
        decision_date = date_from_parts(
            values["decision_date_parts"], "decision_date", "The date of the LA's decision letter"
        )
    except cases.ValidationFailed as exc:
        errors["decision_date"] = str(exc)
    reg32 = values["reg32_info_given"]
    intake = cases.Intake(
        kind=values["kind"],
        name=values["name"],
        phone=values["phone"],
        channel=values["channel"],
        email=values["email"],
        decision_date=decision_date,
        decision_type=values["decision_type"] or None,
        health_care=_yes(values["health_care"]),
        placement_only=_yes(values["placement_only"]),
        summary=values["summary"],
        child_name=values["child_name"],
        preferred_channels=",".join(values["preferred_channels"]),
        sms_consent=_yes(values["sms_consent"]),
        reg32_info_given=None if reg32 == "" else _yes(reg32),
        address_line_1=values["address_line_1"],
        address_line_2=values["address_line_2"],
        address_town=values["address_town"],
        address_postcode=values["address_postcode"],
    )
    try:
        if errors:
            # The date could not be read: still list every other problem at once.
            cases.check_intake(intake, today=dl.local_date(now))
        else:
            case = cases.open_case(
                session, intake, now=now, actor=auth.actor_for(user, "web"), settings=settings
            )
            forget_counts(request)
            return redirect(f"/cases/{quote(case.reference)}?done=opened")
    except cases.IntakeInvalid as exc:
        errors = {**exc.errors, **errors}
    except cases.ValidationFailed as exc:
        errors[exc.field or "_form"] = str(exc)
    return render(
        request,
        "case_new.html",
        {"page_title": "Open a case", "values": values, "errors": errors},
        status_code=422,
    )
