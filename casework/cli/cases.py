"""``casework case ...`` and ``casework deadlines``: open, advance and inspect cases."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from casework import services as svc
from casework.cases.effects import EVENT_LABELS
from casework.cli.common import (
    AtOpt,
    JsonOpt,
    cli_actor,
    emit,
    fail,
    handles_errors,
    open_session,
    parse_at,
    parse_date,
)
from casework.cli.render import case_dict, case_text, deadline_dict

case_app = typer.Typer(help="Open, advance and inspect cases.", no_args_is_help=True)


@case_app.command("open")
@handles_errors
def case_open(
    kind: Annotated[str, typer.Option(help="mediation or disagreement")],
    name: Annotated[str, typer.Option(help="The family contact's name.")],
    channel: Annotated[str, typer.Option(help="How the request arrived: helpline or email.")],
    phone: Annotated[str, typer.Option(help="Contact telephone number (required).")] = "",
    email: Annotated[str, typer.Option(help="Contact email address.")] = "",
    decision_date: Annotated[
        str | None, typer.Option(help="Date the LA sent its decision, YYYY-MM-DD.")
    ] = None,
    decision_type: Annotated[
        str | None,
        typer.Option(help="refuse_assessment|refuse_plan|plan_contents|refuse_amend|cease_plan"),
    ] = None,
    health_care: Annotated[bool, typer.Option(help="Health care provision is in issue.")] = False,
    placement_only: Annotated[
        bool, typer.Option(help="Appeal only about the school or college named.")
    ] = False,
    channels: Annotated[
        str, typer.Option(help="Notice channels: sms, email or sms,email.")
    ] = "sms,email",
    no_sms_consent: Annotated[
        bool, typer.Option("--no-sms-consent", help="The family does not want SMS.")
    ] = False,
    summary: Annotated[str, typer.Option(help="What the disagreement is about.")] = "",
    at: AtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Open a case from a helpline call or an email; prints the new reference."""
    now = parse_at(at)
    intake = svc.Intake(
        kind=kind,
        name=name,
        phone=phone,
        channel=channel,
        email=email,
        decision_date=parse_date(decision_date, "--decision-date") if decision_date else None,
        decision_type=decision_type,
        health_care=health_care,
        placement_only=placement_only,
        summary=summary,
        preferred_channels=channels,
        sms_consent=not no_sms_consent,
    )
    with open_session() as (session, settings):
        case = svc.open_case(session, intake, now=now, actor=cli_actor(), settings=settings)
        emit(case_dict(session, case), as_json, case.reference)


def _parse_sets(values: list[str]) -> dict[str, str]:
    data: dict[str, str] = {}
    for item in values:
        if "=" not in item:
            fail(f"--set {item!r} must be KEY=VALUE, e.g. --set outcome=agreement")
        key, _, value = item.partition("=")
        data[key.strip()] = value
    return data


@case_app.command("advance")
@handles_errors
def case_advance(
    reference: str,
    event: str,
    at: AtOpt = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Event data KEY=VALUE (repeatable).")
    ] = None,
    note: Annotated[str, typer.Option(help="A note for the case record.")] = "",
    expected_version: Annotated[
        int | None, typer.Option(help="Refuse if the case has moved on.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Move a case by EVENT (see `casework case events REF`)."""
    now = parse_at(at)
    with open_session() as (session, settings):
        case = svc.advance(
            session,
            reference,
            event,
            now=now,
            actor=cli_actor(),
            settings=settings,
            data=_parse_sets(set_ or []),
            note=note,
            expected_version=expected_version,
        )
        data = case_dict(session, case)
        emit(data, as_json, lambda: case_text(data))


@case_app.command("events")
@handles_errors
def case_events(reference: str, as_json: JsonOpt = False) -> None:
    """The events allowed now, and the data each takes."""
    with open_session() as (session, _settings):
        case = svc.get_case(session, reference)
        events = svc.allowed_events(case)
        payload: list[dict[str, Any]] = [
            {
                "event": name,
                "label": EVENT_LABELS.get(name, name),
                "fields": [
                    {
                        "name": f.name,
                        "type": f.type,
                        "required": f.required,
                        "default": f.default,
                        "choices": list(f.choices),
                        "help": f.help,
                    }
                    for f in fields
                ],
            }
            for name, fields in events
        ]

        def text() -> str:
            lines = [f"{case.reference} is {case.state}; allowed now:"]
            for item in payload:
                lines.append(f"  {item['event']}  - {item['label']}")
                for f in item["fields"]:
                    flag = (
                        "required"
                        if f["required"]
                        else (f"default {f['default']}" if f["default"] else "optional")
                    )
                    choices = f" [{'|'.join(f['choices'])}]" if f["choices"] else ""
                    lines.append(
                        f"      --set {f['name']}=<{f['type']}>{choices}  ({flag}) {f['help']}"
                    )
            if not payload:
                lines.append("  nothing (case is closed)")
            return "\n".join(lines)

        emit({"reference": case.reference, "state": case.state, "events": payload}, as_json, text)


@case_app.command("allocate")
@handles_errors
def case_allocate(
    reference: str,
    provider: str,
    at: AtOpt = None,
    note: Annotated[str, typer.Option(help="A note for the case record.")] = "",
    override_reason: Annotated[str, typer.Option(help="Why not the suggested provider.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Allocate a case to a provider (by name or code from config)."""
    now = parse_at(at)
    with open_session() as (session, settings):
        svc.allocate(
            session,
            reference,
            provider,
            now=now,
            actor=cli_actor(),
            settings=settings,
            note=note,
            override_reason=override_reason,
        )
        case = svc.get_case(session, reference)
        data = case_dict(session, case)
        emit(data, as_json, lambda: case_text(data))


@case_app.command("respond")
@handles_errors
def case_respond(
    reference: str,
    answer: Annotated[str, typer.Argument(help="accept or decline")],
    at: AtOpt = None,
    note: Annotated[str, typer.Option(help="Reason (required to decline).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Record a provider's acceptance or refusal of an allocation."""
    if answer not in ("accept", "decline"):
        fail("answer must be accept or decline")
    now = parse_at(at)
    with open_session() as (session, settings):
        svc.respond_to_allocation(
            session,
            reference,
            accept=answer == "accept",
            now=now,
            actor=cli_actor(),
            settings=settings,
            note=note,
        )
        data = case_dict(session, svc.get_case(session, reference))
        emit(data, as_json, lambda: case_text(data))


@case_app.command("update")
@handles_errors
def case_update(
    reference: str,
    decision_date: Annotated[
        str | None, typer.Option(help="Date the LA sent its decision.")
    ] = None,
    decision_type: Annotated[str | None, typer.Option(help="The kind of LA decision.")] = None,
    icb_told_on: Annotated[
        str | None, typer.Option(help="The day the LA told the ICB (health care in issue).")
    ] = None,
    agreement_done_on: Annotated[
        str | None, typer.Option(help="The day the LA carried out what was agreed.")
    ] = None,
    note: Annotated[str, typer.Option(help="Why it changed.")] = "",
    at: AtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add or correct facts after intake: the LA's decision, the ICB told, agreement done."""
    now = parse_at(at)
    with open_session() as (session, settings):
        case = svc.update_case_facts(
            session,
            reference,
            now=now,
            actor=cli_actor(),
            settings=settings,
            decision_date=parse_date(decision_date, "--decision-date") if decision_date else None,
            decision_type=decision_type,
            icb_told_on=parse_date(icb_told_on, "--icb-told-on") if icb_told_on else None,
            agreement_done_on=(
                parse_date(agreement_done_on, "--agreement-done-on") if agreement_done_on else None
            ),
            note=note,
        )
        data = case_dict(session, case)
        emit(data, as_json, lambda: case_text(data))


@case_app.command("show")
@handles_errors
def case_show(reference: str, as_json: JsonOpt = False) -> None:
    """State, contact, allocation, deadlines with explanations, and the history."""
    with open_session() as (session, _settings):
        data = case_dict(session, svc.get_case(session, reference))
        emit(data, as_json, lambda: case_text(data))


@case_app.command("list")
@handles_errors
def case_list(
    state: Annotated[str | None, typer.Option(help="Only cases in this state.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Cases, newest first."""
    with open_session() as (session, _settings):
        cases = svc.list_cases(session, state)
        payload = [case_dict(session, c, detail=False) for c in cases]
        emit(
            payload,
            as_json,
            lambda: (
                "\n".join(f"{c['reference']:<16} {c['kind']:<13} {c['state']}" for c in payload)
                or "no cases"
            ),
        )


@handles_errors
def deadlines_cmd(
    due_before: Annotated[
        str | None, typer.Option(help="Only deadlines due before this date.")
    ] = None,
    status: Annotated[str, typer.Option(help="open, met, missed or cancelled.")] = "open",
    as_json: JsonOpt = False,
) -> None:
    """Deadlines across all cases, soonest first."""
    before = parse_date(due_before, "--due-before") if due_before else None
    if status not in ("open", "met", "missed", "cancelled"):
        fail("--status must be open, met, missed or cancelled")
    with open_session() as (session, _settings):
        rows = svc.list_deadlines(session, before, status)
        payload = [{"reference": ref, **deadline_dict(d)} for d, ref in rows]
        emit(
            payload,
            as_json,
            lambda: (
                "\n".join(
                    f"{p['due_date']}  {p['reference']:<16} {p['kind']:<26} {p['explanation']}"
                    for p in payload
                )
                or "no deadlines"
            ),
        )
