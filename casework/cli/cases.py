"""``casework case ...`` and ``casework deadlines``: open, advance and inspect cases."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlmodel import Session

from casework import cases
from casework import deadlines as dl
from casework.cases import words
from casework.cases.advance import nothing_possible_words
from casework.cli.common import (
    AtOpt,
    JsonOpt,
    account_actor,
    cli_actor,
    emit,
    exit_code,
    fail,
    handles_errors,
    open_session,
    parse_at,
    parse_date,
)
from casework.cli.render import case_dict, case_text, deadline_dict
from casework.models import Case

case_app = typer.Typer(help="Open, advance and inspect cases.", no_args_is_help=True)


@case_app.command("open")
@handles_errors
def case_open(
    kind: Annotated[str, typer.Option(help="mediation or disagreement")],
    name: Annotated[str, typer.Option(help="The family contact's name.")],
    channel: Annotated[str, typer.Option(help="How the request arrived: helpline or email.")],
    phone: Annotated[
        str,
        typer.Option(
            help="Contact telephone number (required): a UK number, or one abroad starting"
            " with + and its country code (we text only UK mobiles)."
        ),
    ] = "",
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
        str, typer.Option(help="Notice channels: any of sms, email, post, comma-separated.")
    ] = "sms,email",
    no_sms_consent: Annotated[
        bool, typer.Option("--no-sms-consent", help="The family does not want SMS.")
    ] = False,
    summary: Annotated[str, typer.Option(help="What the disagreement is about.")] = "",
    child_name: Annotated[str, typer.Option(help="The child or young person's name.")] = "",
    reg32_info_given: Annotated[
        bool | None,
        typer.Option(
            "--reg32-info-given/--reg32-info-missing",
            help="Whether the LA's decision letter gave the mediation information (reg 32).",
        ),
    ] = None,
    address_line_1: Annotated[str, typer.Option(help="Postal address, first line.")] = "",
    address_line_2: Annotated[str, typer.Option(help="Postal address, second line.")] = "",
    town: Annotated[str, typer.Option(help="Postal address, town or city.")] = "",
    postcode: Annotated[str, typer.Option(help="Postal address, postcode.")] = "",
    at: AtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Open a case from a helpline call or an email; prints the new reference."""
    now = parse_at(at)
    intake = cases.Intake(
        kind=kind,
        name=name,
        phone=phone,
        channel=channel,
        email=email,
        decision_date=decision_date,
        decision_type=decision_type,
        health_care=health_care,
        placement_only=placement_only,
        summary=summary,
        child_name=child_name,
        preferred_channels=channels,
        sms_consent=not no_sms_consent,
        reg32_info_given=reg32_info_given,
        address_line_1=address_line_1,
        address_line_2=address_line_2,
        address_town=town,
        address_postcode=postcode,
    )
    with open_session() as (session, settings):
        opened = cases.open_case_reviewed(
            session, intake, now=now, actor=cli_actor(), settings=settings
        )
        for duplicate in opened.duplicates:
            typer.echo(f"warning: possible duplicate: {duplicate.words()}", err=True)
        for warning in opened.warnings:
            typer.echo(f"warning: {warning}", err=True)
        emit(case_dict(session, opened.case), as_json, opened.case.reference)


def _show(session: Session, case: Case, as_json: bool) -> None:
    """The case as it now stands: JSON for scripts, words for people."""
    data = case_dict(session, case)
    emit(data, as_json, lambda: case_text(data))


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
        try:
            recorded = cases.record_step(
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
        except cases.ValueMissing as missing:
            # The rule's words, then how to give the value on this command line.
            fail(f'{missing} Give it with --set {missing.field}="..."', exit_code(missing))
        except cases.ValuesUnknown as unknown:
            # The rule's words list what the step takes in words; at the prompt the
            # person needs the names to type.
            names = "; ".join(f"{name} ({words})" for name, words in unknown.takes)
            hint = f" The names --set takes here: {names}." if names else ""
            fail(f"{unknown}{hint}", exit_code(unknown))
        for warning in recorded.warnings:
            typer.echo(f"warning: {warning}", err=True)
        _show(session, recorded.case, as_json)


def _said(value: Any, field: dict[str, Any]) -> str:
    """A field's default as typed, with its words when it is one of the field's choices."""
    return f"{value}: {words.choice_words(value)}" if value in field["choices"] else str(value)


@case_app.command("events")
@handles_errors
def case_events(reference: str, as_json: JsonOpt = False) -> None:
    """The events allowed now, and the data each takes."""
    with open_session() as (session, _settings):
        case = cases.get_case(session, reference)
        events = cases.allowed_events(case, cli_actor())
        payload: list[dict[str, Any]] = [
            {
                "event": name,
                "label": spec.label,
                "fields": [
                    {
                        "name": f.name,
                        "label": f.label,
                        "type": f.type,
                        "required": f.required,
                        "default": f.default,
                        "choices": list(f.choices),
                        "help": f.help or f.label,
                    }
                    for f in spec.fields
                ],
            }
            for name, spec in events
        ]

        def text() -> str:
            lines = [f"{case.reference} is {words.state_words(case.state)}; possible now:"]
            for item in payload:
                lines.append(f"  {item['event']}  - {item['label']}")
                for f in item["fields"]:
                    flag = (
                        "required"
                        if f["required"]
                        else (f"default {_said(f['default'], f)}" if f["default"] else "optional")
                    )
                    # What to type after --set, each choice with the words it stands for.
                    choices = (
                        " ["
                        + " | ".join(f"{c}: {words.choice_words(c)}" for c in f["choices"])
                        + "]"
                        if f["choices"]
                        else ""
                    )
                    lines.append(
                        f"      --set {f['name']}=<{f['type']}>{choices}  ({flag}) {f['label']}"
                    )
            if not payload:
                lines.append(f"  {nothing_possible_words(case)}")
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
    preferred: Annotated[
        str | None, typer.Option(help="The family's preferred provider (name or code).")
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option(help="A provider to leave out for this case (repeat).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Allocate a case to a provider (by name or code); differing from the suggestion needs
    --override-reason, exactly as on the case page and in the API."""
    now = parse_at(at)
    with open_session() as (session, settings):
        cases.allocate(
            session,
            reference,
            provider,
            now=now,
            actor=cli_actor(),
            settings=settings,
            note=note,
            override_reason=override_reason,
            preferred=preferred,
            excluded=exclude or (),
        )
        case = cases.get_case(session, reference)
        _show(session, case, as_json)


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
        cases.respond_to_allocation(
            session,
            reference,
            accept=answer == "accept",
            now=now,
            actor=cli_actor(),
            settings=settings,
            note=note,
        )
        _show(session, cases.get_case(session, reference), as_json)


@case_app.command("update")
@handles_errors
def case_update(
    reference: str,
    decision_date: Annotated[
        str | None, typer.Option(help="Date the LA sent its decision.")
    ] = None,
    decision_type: Annotated[str | None, typer.Option(help="The kind of LA decision.")] = None,
    la_told_on: Annotated[
        str | None, typer.Option(help="The day the LA was told mediation is wanted.")
    ] = None,
    icb_told_on: Annotated[
        str | None, typer.Option(help="The day the LA told the ICB (health care in issue).")
    ] = None,
    icb_told_la_on: Annotated[
        str | None, typer.Option(help="The day the ICB told the LA what was agreed.")
    ] = None,
    agreement_done_on: Annotated[
        str | None, typer.Option(help="The day every open agreed action was carried out.")
    ] = None,
    reg32_info_given: Annotated[
        bool | None,
        typer.Option(
            "--reg32-info-given/--reg32-info-missing",
            help="Whether the LA's decision letter gave the mediation information (reg 32).",
        ),
    ] = None,
    child_name: Annotated[
        str | None, typer.Option(help="The child or young person's name.")
    ] = None,
    summary: Annotated[str | None, typer.Option(help="What the disagreement is about.")] = None,
    note: Annotated[
        str,
        typer.Option(
            "--reason", "--note", help="Why it changed (needed to correct a detail held)."
        ),
    ] = "",
    at: AtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add or correct facts after intake: the LA's decision, the ICB told, agreement done.

    Correcting a detail already held needs --reason; clocks counted from a corrected
    date are worked out again.
    """
    now = parse_at(at)
    with open_session() as (session, settings):
        case = cases.update_case_facts(
            session,
            reference,
            now=now,
            actor=cli_actor(),
            settings=settings,
            decision_date=decision_date,
            decision_type=decision_type,
            reg32_info_given=reg32_info_given,
            child_name=child_name,
            summary=summary,
            la_told_on=la_told_on,
            icb_told_on=icb_told_on,
            icb_told_la_on=icb_told_la_on,
            agreement_done_on=agreement_done_on,
            note=note,
        )
        _show(session, case, as_json)


@case_app.command("reopen")
@handles_errors
def case_reopen(
    reference: str,
    reason: Annotated[str, typer.Option(help="Why the case is being reopened.")] = "",
    at: AtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reopen a closed or withdrawn case (a manager's step: set CASEWORK_ACTOR to your email).

    The case goes back to the state it was in and the clocks that still run start again.
    """
    now = parse_at(at)
    with open_session() as (session, _settings):
        try:
            case = cases.reopen_case(
                session, reference, reason=reason, now=now, actor=account_actor(session)
            )
        except cases.ValueMissing as missing:
            # The rule's words, then how to give the reason on this command line.
            fail(f'{missing} Give it with --reason "..."', exit_code(missing))
        _show(session, case, as_json)


@case_app.command("agree")
@handles_errors
def case_agree(
    reference: str,
    description: Annotated[str, typer.Option(help="What was agreed, in the family's words.")],
    body: Annotated[str, typer.Option(help="Who must act: la or icb.")] = "la",
    matter: Annotated[
        str | None,
        typer.Option(help="The reg 44 matter it falls under (see config/law.toml), if any."),
    ] = None,
    agreed_due_on: Annotated[
        str | None, typer.Option(help="A date the parties agreed in writing (reg 42(5)).")
    ] = None,
    at: AtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record one action agreed at mediation, with its own clock (reg 42)."""
    now = parse_at(at)
    with open_session() as (session, settings):
        cases.add_agreement_item(
            session,
            reference,
            description=description,
            body=body,
            matter=matter,
            agreed_due_on=agreed_due_on,
            now=now,
            actor=cli_actor(),
            settings=settings,
        )
        _show(session, cases.get_case(session, reference), as_json)


@case_app.command("agreement-done")
@handles_errors
def case_agreement_done(
    reference: str,
    number: Annotated[int, typer.Argument(help="The agreed action's number.")],
    done_on: Annotated[
        str | None, typer.Option(help="The day it was carried out (default today).")
    ] = None,
    at: AtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record that an agreed action was carried out: its clock is met on that day."""
    now = parse_at(at)
    with open_session() as (session, settings):
        cases.record_agreement_item_done(
            session,
            reference,
            number,
            done_on=done_on,
            now=now,
            actor=cli_actor(),
            settings=settings,
        )
        _show(session, cases.get_case(session, reference), as_json)


@case_app.command("note")
@handles_errors
def case_note(
    reference: str,
    text: Annotated[str, typer.Option(help="The note.")],
    shared: Annotated[
        bool, typer.Option(help="Share it with the provider running mediation.")
    ] = False,
    at: AtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a note on a case (IAS only unless --shared)."""
    now = parse_at(at)
    with open_session() as (session, _settings):
        note = cases.add_note(
            session, reference, text=text, shared=shared, now=now, actor=cli_actor()
        )
        who = "the IAS and the provider" if note.shared else "the IAS only"
        emit(
            {"reference": reference.strip().upper(), "id": note.id, "shared": note.shared},
            as_json,
            f"Note saved on {reference.strip().upper()}, for {who}.",
        )


@case_app.command("message")
@handles_errors
def case_message(
    reference: str,
    channel: Annotated[str, typer.Option(help="email, or sms for a text message.")],
    text: Annotated[str, typer.Option(help="What to tell the family.")],
    key: Annotated[
        str, typer.Option(help="An idempotency key: the same key again sends nothing.")
    ] = "",
    at: AtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send the family a one-off email or text message (through the notices)."""
    now = parse_at(at)
    with open_session() as (session, settings):
        notice = cases.send_message(
            session,
            reference,
            channel=channel,
            text=text,
            key=key,
            now=now,
            actor=cli_actor(),
            settings=settings,
        )
        ref = reference.strip().upper()
        how = words.CHANNEL_WORDS.get(notice.channel, notice.channel)
        when = (
            ""
            if notice.not_before <= now
            else f" It waits until {words.moment_words(notice.not_before)} (quiet hours)."
        )
        emit(
            {
                "reference": ref,
                "notice": notice.public_id,
                "channel": notice.channel,
                "status": notice.status,
                "not_before": notice.not_before,
            },
            as_json,
            f"Message to the family of {ref} queued by {how}.{when}",
        )


@case_app.command("call")
@handles_errors
def case_call(
    reference: str,
    on: Annotated[str, typer.Option(help="The day the call happened, YYYY-MM-DD.")],
    direction: Annotated[str, typer.Option(help="in: they called the IAS; out: the IAS called.")],
    who: Annotated[str, typer.Option(help="Who was on the call, e.g. mother, LA officer.")],
    summary: Annotated[str, typer.Option(help="What was said.")],
    shared: Annotated[
        bool, typer.Option(help="Share it with the provider running mediation.")
    ] = False,
    at: AtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Log a call on a case, dated the day it happened."""
    now = parse_at(at)
    with open_session() as (session, _settings):
        call = cases.log_call(
            session,
            reference,
            call_on=on,
            direction=direction,
            who=who,
            summary=summary,
            shared=shared,
            now=now,
            actor=cli_actor(),
        )
        day = dl.fmt(call.call_on) if call.call_on else ""
        emit(
            {
                "reference": reference.strip().upper(),
                "id": call.id,
                "call_on": call.call_on,
                "direction": call.direction,
                "shared": call.shared,
            },
            as_json,
            f"Call logged on {reference.strip().upper()} ({day}).",
        )


@case_app.command("family-link")
@handles_errors
def case_family_link(
    reference: str,
    stop: Annotated[
        bool, typer.Option("--stop", help="Stop the link working, without a new one.")
    ] = False,
    at: AtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send the family a new link to its own page (older links stop), or --stop the link."""
    from casework.cases import family

    now = parse_at(at)
    ref = reference.strip().upper()
    with open_session() as (session, settings):
        if stop:
            stopped = family.revoke_link(session, reference, now=now, actor=cli_actor())
            emit(
                {"reference": ref, "stopped": stopped},
                as_json,
                f"The family's page link on {ref} no longer works.",
            )
            return
        family.issue_link(session, reference, now=now, actor=cli_actor(), settings=settings)
        emit(
            {"reference": ref, "sent": True},
            as_json,
            f"A new link to the family's page on {ref} is on its way to them;"
            " older links no longer work.",
        )


@case_app.command("show")
@handles_errors
def case_show(reference: str, as_json: JsonOpt = False) -> None:
    """State, contact, allocation, deadlines with explanations, and the history."""
    with open_session() as (session, _settings):
        _show(session, cases.get_case(session, reference), as_json)


@case_app.command("list")
@handles_errors
def case_list(
    state: Annotated[str | None, typer.Option(help="Only cases in this state.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Cases, newest first."""
    with open_session() as (session, _settings):
        found = cases.list_cases(session, state)
        payload = [case_dict(session, c, detail=False) for c in found]
        emit(
            payload,
            as_json,
            lambda: (
                "\n".join(
                    f"{c['reference']:<16} {words.kind_words(c['kind']):<24}"
                    f" {words.state_words(c['state'])}"
                    for c in payload
                )
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
    with open_session() as (session, _settings):
        rows = cases.list_deadlines(session, before, status)
        payload = [{"reference": ref, **deadline_dict(d)} for d, ref in rows]
        lines = [
            f"{dl.fmt(d.due_date)}  {ref}  {words.deadline_words(d.kind)}"
            f" ({words.DEADLINE_STATUS_WORDS.get(d.status, 'Recorded').lower()})"
            f"\n    {d.explanation}"
            for d, ref in rows
        ]
        emit(payload, as_json, lambda: "\n".join(lines) or "no deadlines")
