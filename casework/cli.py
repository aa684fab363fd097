"""The operator CLI: every use case from a terminal, for people and for tests.

Every command takes ``--json``. Bad input exits non-zero with one line that says
what to do: 2 for a refused transition or invalid data, 3 for something not
found, 4 for a conflict with a concurrent change.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from sqlalchemy import Engine
from sqlmodel import Session

from casework import deadlines as dl
from casework import services as svc
from casework.cli_reports import report_app
from casework.cli_users import user_app
from casework.config import Settings, get_settings
from casework.contacts import display_phone
from casework.db import ensure_schema, get_engine, session_scope, upgrade
from casework.models import Case, Deadline
from casework.states import EVENT_LABELS, CaseKind

app = typer.Typer(
    help="casework: SEND disagreement-resolution and mediation cases and their legal clocks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
case_app = typer.Typer(help="Open, advance and inspect cases.", no_args_is_help=True)
calendar_app = typer.Typer(
    help="Working days and appeal deadlines, for the phone.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(case_app, name="case")
app.add_typer(calendar_app, name="calendar")
app.add_typer(user_app, name="user")
app.add_typer(report_app, name="report")

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
AtOpt = Annotated[
    str | None,
    typer.Option(
        "--at",
        help="When this happened: ISO date-time; without a zone it is London time. Default now.",
    ),
]

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def handles_errors(func: F) -> F:
    """Turn refusals into one line on stderr and a meaningful exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except svc.CaseworkError as exc:
            fail(str(exc), exc.exit_code)
        except ValueError as exc:
            fail(str(exc), 2)

    return wrapper  # type: ignore[return-value]


def parse_at(value: str | None) -> dt.datetime:
    """An instant from ``--at``; naive values are London wall-clock time."""
    if value is None:
        return dt.datetime.now(dt.UTC)
    text = value.strip()
    try:
        if len(text) == 10:
            moment = dt.datetime.combine(dt.date.fromisoformat(text), dt.time(12, 0))
        else:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(
            f"--at {value!r} is not an ISO date-time;"
            " use e.g. 2026-11-27T10:00 or 2026-11-27T10:00Z"
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dl.LONDON)
    return moment.astimezone(dt.UTC)


def parse_date(value: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        fail(f"{option} {value!r} is not a date; use YYYY-MM-DD")


def cli_actor() -> svc.Actor:
    name = os.environ.get("CASEWORK_ACTOR") or getpass.getuser()
    return svc.Actor(id=f"cli:{name}", role="adviser", channel="cli")


def ready_engine(settings: Settings) -> Engine:
    """The engine, its schema current; a freshly migrated embedded database also gets the
    configured providers, exactly as `casework db upgrade` would load them."""
    engine = get_engine(settings)
    try:
        migrated = ensure_schema(engine)
    except RuntimeError as exc:
        fail(str(exc), 5)
    if migrated:
        with session_scope(engine) as session:
            svc.sync_providers(session, settings)
    return engine


@contextmanager
def open_session() -> Iterator[tuple[Session, Settings]]:
    settings = get_settings()
    with session_scope(ready_engine(settings)) as session:
        yield session, settings


def emit(payload: Any, as_json: bool, text: str | Callable[[], str]) -> None:
    if as_json:
        typer.echo(json.dumps(payload, indent=2, default=str))
    else:
        typer.echo(text() if callable(text) else text)


# --- Serialisation shared by JSON output (and the web API later) -----------------------


def deadline_dict(d: Deadline) -> dict[str, Any]:
    return {
        "kind": d.kind,
        "due_date": d.due_date.isoformat(),
        "due_at": d.due_at.isoformat(),
        "status": d.status,
        "citation": d.citation,
        "explanation": d.explanation,
        "closed_reason": d.closed_reason,
    }


def case_dict(session: Session, case: Case, *, detail: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "reference": case.reference,
        "kind": case.kind,
        "state": case.state,
        "version": case.version,
        "opened_at": case.opened_at.isoformat(),
        "decision_date": case.decision_date.isoformat() if case.decision_date else None,
        "decision_type": case.decision_type,
        "appeal_due": case.appeal_due.isoformat() if case.appeal_due else None,
    }
    if not detail:
        return out
    family = svc.family_of(session, case)
    allocation = svc.live_allocation(session, case)
    provider = None
    if case.provider_id is not None:
        from casework.models import Provider

        row = session.get(Provider, case.provider_id)
        provider = {"code": row.code, "name": row.name} if row else None
    out.update(
        {
            "contact": {
                "name": family.name if family else "",
                "phone": family.phone if family else "",
                "email": family.email if family else "",
                "preferred_channels": family.channels if family else [],
            },
            "provider": provider,
            "allocation_status": allocation.status if allocation else None,
            "facts": {
                k: (v.isoformat() if isinstance(v, dt.date) else v)
                for k, v in case.model_dump().items()
                if k
                in (
                    "health_care",
                    "health_only",
                    "placement_only",
                    "la_told_on",
                    "declined_on",
                    "meeting_on",
                    "meeting_time",
                    "meeting_held_on",
                    "meeting_outcome",
                    "agreement",
                    "not_arranged_reported_on",
                    "certificate_on",
                    "certificate_type",
                    "close_outcome",
                    "withdrawn_reason",
                )
                and v not in (None, False, "")
            },
            "deadlines": [deadline_dict(d) for d in svc.case_deadlines(session, case)],
            "events": [
                {
                    "at": e.at.isoformat(),
                    "actor": e.actor,
                    "event": e.event,
                    "from": e.from_state,
                    "to": e.to_state,
                    "channel": e.channel,
                    "data": e.data,
                    "note": e.note,
                }
                for e in svc.case_events(session, case)
            ],
            "allowed_events": [name for name, _ in svc.allowed_events(case)],
        }
    )
    return out


def _local(moment: dt.datetime) -> str:
    return moment.astimezone(dl.LONDON).strftime("%Y-%m-%d %H:%M")


def case_text(data: dict[str, Any]) -> str:
    lines = [
        f"{data['reference']}  {data['kind']}  state: {data['state']}  (version {data['version']})",
        f"  contact: {data['contact']['name']}  {display_phone(data['contact']['phone'])}"
        f"  {data['contact']['email']}",
    ]
    if data.get("decision_date"):
        lines.append(
            f"  LA decision: {data['decision_date']}"
            f" ({data.get('decision_type') or 'type not recorded'})"
        )
    provider = data.get("provider")
    lines.append(
        f"  provider: {provider['name']} ({data['allocation_status']})"
        if provider
        else "  provider: none"
    )
    for key, value in data.get("facts", {}).items():
        lines.append(f"  {key}: {value}")
    lines.append("  deadlines:")
    if not data["deadlines"]:
        lines.append("    none")
    for d in data["deadlines"]:
        lines.append(f"    [{d['status']:>9}] {d['kind']} due {d['due_date']} - {d['explanation']}")
        lines.append(
            f"                {d['citation']}"
            + (f"; {d['closed_reason']}" if d["closed_reason"] else "")
        )
    lines.append("  history:")
    for e in data["events"]:
        moved = f"{e['from'] or '-'} -> {e['to']}" if e["from"] != e["to"] else f"({e['to']})"
        extra = f"  {e['data']}" if e["data"] else ""
        note = f"  note: {e['note']}" if e["note"] else ""
        lines.append(
            f"    {e['at'][:16]}  {e['event']:<22} {moved}"
            f"  by {e['actor']} via {e['channel']}{extra}{note}"
        )
    lines.append(
        f"  allowed now: {', '.join(data['allowed_events']) or 'nothing (case is closed)'}"
    )
    return "\n".join(lines)


# --- db ----------------------------------------------------------------------------------


@db_app.command("upgrade")
@handles_errors
def db_upgrade(as_json: JsonOpt = False) -> None:
    """Apply migrations and load the providers from config."""
    settings = get_settings()
    engine = get_engine(settings)
    upgrade(engine)
    with session_scope(engine) as session:
        providers = svc.sync_providers(session, settings)
    url = engine.url.render_as_string(hide_password=True)
    emit(
        {"database": url, "providers": [p.code for p in providers if p.active]},
        as_json,
        f"database at head: {url}; providers: {', '.join(p.name for p in providers if p.active)}",
    )


# --- case --------------------------------------------------------------------------------


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


@app.command("deadlines")
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


# --- calendar ----------------------------------------------------------------------------


@calendar_app.command("working-days")
@handles_errors
def calendar_working_days(date: str, n: int, as_json: JsonOpt = False) -> None:
    """The N-th working day after DATE (DATE itself never counts)."""
    get_settings()  # installs configured closure days
    start = parse_date(date, "DATE")
    if n < 0:
        fail("N must be zero or more")
    result = dl.add_working_days(start, n)
    skipped = [
        (start + dt.timedelta(days=i), dl.calendar().holiday_name(start + dt.timedelta(days=i)))
        for i in range(1, (result - start).days + 1)
        if not dl.is_working_day(start + dt.timedelta(days=i))
    ]
    payload = {
        "date": start.isoformat(),
        "working_days": n,
        "result": result.isoformat(),
        "skipped": [{"date": d.isoformat(), "why": why} for d, why in skipped],
    }
    skip_text = (
        "; skipping " + ", ".join(f"{d:%a %d %b} ({why})" for d, why in skipped) if skipped else ""
    )
    emit(payload, as_json, f"{dl.fmt(start)} + {n} working days = {dl.fmt(result)}{skip_text}")


@calendar_app.command("appeal-deadline")
@handles_errors
def calendar_appeal_deadline(
    decision: Annotated[str, typer.Option(help="Date the LA sent its decision letter.")],
    certificate: Annotated[
        str | None, typer.Option(help="Date the mediation certificate was issued.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The last day (5pm) an appeal can reach the Tribunal, and how it was worked out."""
    get_settings()
    decision_date = parse_date(decision, "--decision")
    certificate_date = parse_date(certificate, "--certificate") if certificate else None
    if certificate_date is not None and certificate_date < decision_date:
        fail("--certificate is before --decision; a certificate follows the decision")
    clock = dl.appeal_clock(decision_date, certificate_date)
    payload = {
        "due_date": clock.due.isoformat(),
        "due_time": "17:00",
        "due_at": clock.due_at().isoformat(),
        "citation": clock.citation,
        "explanation": clock.explanation,
    }
    emit(payload, as_json, f"{dl.fmt(clock.due)}, 5pm\n{clock.explanation}\n({clock.citation})")


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    demo: Annotated[
        bool, typer.Option(help="Load demo cases and demo users (credentials printed once).")
    ] = False,
    scheduler: Annotated[
        bool, typer.Option(help="Run the reminder scheduler in this process too.")
    ] = True,
) -> None:
    """Run the web app and the scheduler together: the embedded default."""
    import uvicorn

    from casework import logs
    from casework.web.app import create_app

    logs.configure()
    settings = get_settings()
    engine = get_engine(settings)
    upgrade(engine)
    with session_scope(engine) as session:
        svc.sync_providers(session, settings)
        if demo:
            from casework.demo import load_demo

            for line in load_demo(session, settings, now=dt.datetime.now(dt.UTC)):
                typer.echo(line)
    web_app = create_app(settings, engine, with_scheduler=scheduler)
    typer.echo(
        f"casework is running at http://{host}:{port}/"
        f"  (database: {engine.url.render_as_string(hide_password=True)})"
    )
    uvicorn.run(web_app, host=host, port=port, log_level="info")


@app.command("tick")
@handles_errors
def tick(at: AtOpt = None, as_json: JsonOpt = False) -> None:
    """Run one sweep and one dispatch as of --at: catch up, or test a moment."""
    from casework.scheduler import run_once

    settings = get_settings()
    result = run_once(ready_engine(settings), settings, parse_at(at))

    def text() -> str:
        sw, dp = result["sweep"], result["dispatch"]
        return (
            f"tick at {result['at']}\n"
            f"  sweep: {sw['claimed']} clocks looked at, {sw['queued']} notices queued,"
            f" {sw['skipped']} stale reminders skipped, {sw['missed']} deadlines missed\n"
            f"  dispatch: {dp['sent']} sent, {dp['deferred']} deferred (quiet hours),"
            f" {dp['retried']} to retry, {dp['failed']} failed, {dp['escalated']} escalated,"
            f" {dp['skipped']} skipped"
        )

    emit(result, as_json, text)


@app.command("digest")
@handles_errors
def digest(at: AtOpt = None, as_json: JsonOpt = False) -> None:
    """Queue today's digest (due soon and late) to the advisers and the manager."""
    from casework.reminders import queue_digest

    settings = get_settings()
    queued = queue_digest(ready_engine(settings), parse_at(at), settings)
    emit({"queued": queued}, as_json, f"{queued} digest(s) queued (0: already queued today)")


@app.command("worker")
def worker() -> None:
    """Run the scheduler as its own process (sweep and dispatch on intervals)."""
    from casework import logs
    from casework.scheduler import run_worker

    logs.configure()
    settings = get_settings()
    engine = get_engine(settings)
    upgrade(engine)
    run_worker(settings, engine)


notices_app = typer.Typer(help="The outbox: notices and their delivery.", no_args_is_help=True)
app.add_typer(notices_app, name="notices")


@notices_app.command("list")
@handles_errors
def notices_list(
    case: Annotated[str | None, typer.Option("--case", help="Only this case reference.")] = None,
    status: Annotated[
        str | None, typer.Option(help="queued, sending, sent, delivered, failed, skipped.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 200,
    as_json: JsonOpt = False,
) -> None:
    """Notices in the outbox with their delivery state."""
    from sqlalchemy import select as sa_select

    from casework.models import Notice

    with open_session() as (session, _settings):
        query = sa_select(Notice).order_by(Notice.id.desc()).limit(limit)  # type: ignore[union-attr]
        if case:
            query = query.where(Notice.case_id == svc.get_case(session, case).id)  # type: ignore[arg-type]
        if status:
            query = query.where(Notice.status == status)  # type: ignore[arg-type]
        rows = list(session.execute(query).scalars())
        payload = [
            {
                "id": n.public_id,
                "case": (n.context or {}).get("reference"),
                "template": n.template,
                "recipient": n.recipient_role,
                "channel": n.channel,
                "to": n.to_address,
                "status": n.status,
                "not_before": n.not_before.isoformat(),
                "attempts": n.attempts,
                "provider": n.provider,
                "sent_at": n.sent_at.isoformat() if n.sent_at else None,
                "delivered_at": n.delivered_at.isoformat() if n.delivered_at else None,
                "last_error": n.last_error,
                "subject": n.subject,
                "body": n.body,
            }
            for n in rows
        ]
        emit(
            payload,
            as_json,
            lambda: (
                "\n".join(
                    f"{p['not_before'][:16]}  {p['case'] or '-':<15} {p['template']:<32}"
                    f" {p['recipient']:<8} {p['channel']:<5} {p['status']:<9}"
                    f" {p['last_error'][:60]}"
                    for p in payload
                )
                or "no notices"
            ),
        )


def main() -> None:  # pragma: no cover - console entry point alias
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())


_ = CaseKind  # re-exported for `casework case open --kind` help text consumers
