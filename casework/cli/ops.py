"""Operating the service: ``db``, ``calendar``, ``serve``, ``worker``, ``tick``, ``digest``,
``notices``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from casework import cases
from casework import deadlines as dl
from casework.cli.common import (
    AtOpt,
    JsonOpt,
    emit,
    fail,
    handles_errors,
    open_session,
    parse_at,
    parse_date,
    ready_engine,
)
from casework.config import get_settings
from casework.db import get_engine, session_scope, upgrade

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
# The calendar commands answer questions about dates a case could have, not centuries.
MAX_WORKING_DAYS = 10_000
calendar_app = typer.Typer(
    help="Working days and appeal deadlines, for the phone.", no_args_is_help=True
)
notices_app = typer.Typer(help="The outbox: notices and their delivery.", no_args_is_help=True)


# --- db ----------------------------------------------------------------------------------


@db_app.command("upgrade")
@handles_errors
def db_upgrade(as_json: JsonOpt = False) -> None:
    """Apply migrations and load the providers from config."""
    settings = get_settings()
    engine = get_engine(settings)
    upgrade(engine)
    with session_scope(engine) as session:
        providers = cases.sync_providers(session, settings)
    url = engine.url.render_as_string(hide_password=True)
    emit(
        {"database": url, "providers": [p.code for p in providers if p.active]},
        as_json,
        f"database at head: {url}; providers: {', '.join(p.name for p in providers if p.active)}",
    )


# --- calendar ----------------------------------------------------------------------------


@calendar_app.command("working-days")
@handles_errors
def calendar_working_days(date: str, n: int, as_json: JsonOpt = False) -> None:
    """The N-th working day after DATE (DATE itself never counts)."""
    start = parse_date(date, "DATE")
    if not 0 <= n <= MAX_WORKING_DAYS:
        fail(f"N must be a whole number from 0 to {MAX_WORKING_DAYS:,} (about 40 years)")
    result = dl.add_working_days(start, n)
    skipped = [
        (start + dt.timedelta(days=i), dl.STATUTORY.holiday_name(start + dt.timedelta(days=i)))
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


@handles_errors
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
    settings = get_settings().served_at(host, port)
    engine = ready_engine(settings)
    with session_scope(engine) as session:
        cases.sync_providers(session, settings)
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


@handles_errors
def digest(at: AtOpt = None, as_json: JsonOpt = False) -> None:
    """Queue today's digest (due soon and late) to the advisers and the manager."""
    from casework.reminders import queue_digest

    settings = get_settings()
    queued = queue_digest(ready_engine(settings), parse_at(at), settings)
    emit({"queued": queued}, as_json, f"{queued} digest(s) queued (0: already queued today)")


@handles_errors
def worker() -> None:
    """Run the scheduler as its own process (sweep and dispatch on intervals)."""
    from casework import logs
    from casework.scheduler import run_worker

    logs.configure()
    settings = get_settings()
    engine = ready_engine(settings)
    run_worker(settings, engine)


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

    from casework.models import Notice, NoticeStatus

    with open_session() as (session, _settings):
        query = sa_select(Notice).order_by(Notice.id.desc()).limit(limit)  # type: ignore[union-attr]
        if case:
            query = query.where(Notice.case_id == cases.get_case(session, case).id)  # type: ignore[arg-type]
        if status:
            if status not in NoticeStatus.__members__:
                fail(f"--status must be one of {', '.join(NoticeStatus)}")
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
