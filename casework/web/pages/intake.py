"""Opening a case from a helpline call or an email."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from casework import auth, cases
from casework import deadlines as dl
from casework.config import Settings
from casework.contacts import display_phone
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
from casework.web.pages.labels import DECISION_TYPE_LABELS, KIND_LABELS
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


_FIELDS = (
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


def _read(form: Any) -> tuple[dict[str, Any], cases.Intake, dict[str, str]]:
    """What was typed (for the form again), the intake, and a date that could not be read."""
    values: dict[str, Any] = {name: form_text(form, name) for name in _FIELDS}
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
    return values, intake, errors


def _answers(checked: Any) -> list[tuple[str, str, str]]:
    """The check-your-answers rows: (question, answer in words, the field to change)."""
    yes_no = {True: "Yes", False: "No", None: "Not known yet"}
    channel_words = {"sms": "Text message (SMS)", "email": "Email", "post": "Letter by post"}
    return [
        ("What the family wants", KIND_LABELS.get(checked.kind, ""), "kind"),
        (
            "How the request arrived",
            "Email" if checked.channel == "email" else "Helpline",
            "channel",
        ),
        ("Name", checked.name, "name"),
        ("Telephone number", display_phone(checked.phone) if checked.phone else "", "phone"),
        ("Email address", checked.email or "Not given", "email"),
        ("Child's name", checked.child_name or "Not given", "child_name"),
        (
            "Notices by",
            " and ".join(channel_words[c] for c in checked.channels),
            "preferred_channels",
        ),
        ("Agreed to text messages", yes_no[checked.sms_consent], "sms_consent"),
        (
            "Date of the LA's decision letter",
            dl.fmt(checked.decision_date) if checked.decision_date else "Not known yet",
            "decision_date",
        ),
        (
            "What the LA decided",
            DECISION_TYPE_LABELS.get(checked.decision_type or "", "Not known yet"),
            "decision_type",
        ),
        ("Health care in issue", yes_no[checked.health_care], "health_care"),
        (
            "Appeal only about the school or college named",
            yes_no[checked.placement_only],
            "placement_only",
        ),
        (
            "The decision letter gave the mediation information",
            yes_no[checked.reg32_info_given],
            "reg32_info_given",
        ),
        ("Summary", checked.summary or "None", "summary"),
        (
            "Postal address",
            ", ".join(v for v in checked.address.values() if v) or "Not given",
            "address_line_1",
        ),
    ]


def _form_page(
    request: Request, values: dict[str, Any], errors: dict[str, str], status_code: int
) -> Response:
    return render(
        request,
        "case_new.html",
        {
            "page_title": "Open a case",
            "values": values,
            "errors": errors,
        },
        status_code=status_code,
    )


@router.post("/cases/new")
def intake_post(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
) -> Response:
    """The form, then "check your answers", then the case: opened only on the second post.

    A post without ``confirmed`` (the form itself, or a script that skipped the
    check) shows the answers to check; one with it opens the case.
    """
    user = require_staff(signed_in)
    settings: Settings = request.app.state.settings
    values, intake, errors = _read(form)
    try:
        if errors:
            # The date could not be read: still list every other problem at once.
            cases.check_intake(intake, today=dl.local_date(now))
        elif form.get("confirmed") == "yes":
            opened = cases.open_case_reviewed(
                session, intake, now=now, actor=auth.actor_for(user, "web"), settings=settings
            )
            forget_counts(request)
            warned = "&warned=1" if opened.warnings else ""
            return redirect(f"/cases/{quote(opened.case.reference)}?done=opened{warned}")
        else:
            review = cases.review_intake(session, intake, now=now)
            carried = [
                (name, value)
                for name, value in form.multi_items()
                if isinstance(value, str) and name not in ("csrf_token", "confirmed")
            ]
            return render(
                request,
                "case_check.html",
                {
                    "page_title": "Check the details before opening the case",
                    "answers": _answers(review.checked),
                    "duplicates": review.duplicates,
                    "warnings": review.warnings,
                    "carried": carried,
                },
            )
    except cases.IntakeInvalid as exc:
        errors = {**exc.errors, **errors}
    except cases.ValidationFailed as exc:
        errors[exc.field or "_form"] = str(exc)
    return _form_page(request, values, errors, 422)


@router.post("/cases/new/change")
def intake_change_post(request: Request, signed_in: PageUserDep, form: CheckedForm) -> Response:
    """Back from "check your answers" to the form, with everything typed kept."""
    require_staff(signed_in)
    values, _intake, _errors = _read(form)
    return _form_page(request, values, {}, 200)
