"""Operating the service: ``db``, ``calendar``, ``serve``, ``worker``, ``tick``, ``digest``,
``notices``."""

from __future__ import annotations

import datetime as dt
import socket
from typing import Annotated, Any

import typer
from sqlalchemy import Engine

from casework import auth, cases
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
from casework.config import Settings, get_settings
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


def boxed(lines: list[str]) -> str:
    """Lines in a plain box, so they stand out of the log lines around them."""
    width = max(len(line) for line in lines)
    rule = "+" + "-" * (width + 2) + "+"
    return "\n".join([rule, *(f"| {line.ljust(width)} |" for line in lines), rule])


def startup_message(
    *,
    url: str,
    database: str,
    first_admin: tuple[str, str] | None = None,
    demo_credentials: list[str] | None = None,
) -> str:
    """What ``serve`` prints once the server is listening: where it is, how to get in.

    ``first_admin`` is (email, one-time link) when nobody can sign in yet. The demo
    credentials come last, boxed, so they are the last thing on the screen at start-up
    rather than scrolled away under the log.
    """
    parts = [f"casework is running at {url}  (database: {database})"]
    if first_admin is not None:
        email, link = first_admin
        parts.append(
            "Nobody can sign in yet. Open this link to choose the password of the first"
            f" administrator ({email}); it works once, within 7 days:\n  {link}\n"
            "Then sign in as that administrator and add your colleagues"
            " (casework user add --help). Restarting prints a new link until then."
        )
    if demo_credentials:
        parts.append(boxed(["Demo accounts: sign in at " + url, "", *demo_credentials]))
    return "\n".join(parts)


def run_server(app: Any, *, host: str, port: int, message: str) -> None:
    """Run uvicorn and print ``message`` once it is listening (after its start-up log)."""
    import uvicorn

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if not self.should_exit:
                typer.echo(message)

    _Server(uvicorn.Config(app, host=host, port=port, log_level="info")).run()


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
    admin_email: Annotated[
        str,
        typer.Option(
            help="The first administrator's email, on a database with no users"
            " (default: the manager's address in config)."
        ),
    ] = "",
) -> None:
    """Run the web app and the scheduler together: the embedded default."""
    from casework import logs
    from casework.web.app import create_app

    logs.configure()
    settings = get_settings().served_at(host, port)
    engine = ready_engine(settings)
    message = prepare_start(
        settings, engine, host=host, port=port, demo=demo, admin_email=admin_email
    )
    web_app = create_app(settings, engine, with_scheduler=scheduler)
    run_server(web_app, host=host, port=port, message=message)


def prepare_start(
    settings: Settings, engine: Engine, *, host: str, port: int, demo: bool, admin_email: str = ""
) -> str:
    """Everything ``serve`` does before listening; returns the message to print after."""
    now = dt.datetime.now(dt.UTC)
    url = f"http://{host}:{port}/"
    credentials: list[str] = []
    first: tuple[str, str] | None = None
    with session_scope(engine) as session:
        cases.sync_providers(session, settings)
        if demo:
            from casework.demo import ensure_demo_users, load_demo_cases

            credentials = ensure_demo_users(session, settings, now)
            for line in load_demo_cases(session, settings, now):
                typer.echo(line)
        else:
            email = admin_email.strip() or settings.team.manager_email
            admin = auth.first_admin(session, email=email, now=now)
            if admin is not None:
                # The link opens where this server listens unless a public address
                # was configured (CASEWORK_PUBLIC_URL).
                linked = settings.served_at(host, port)
                first = (admin.email, auth.set_password_url(linked, admin))
    return startup_message(
        url=url,
        database=engine.url.render_as_string(hide_password=True),
        first_admin=first,
        demo_credentials=credentials,
    )


@handles_errors
def tick(at: AtOpt = None, as_json: JsonOpt = False) -> None:
    """Run one sweep and one dispatch as of --at: catch up, or test a moment."""
    from casework.cases.family import apply_sms_opt_outs
    from casework.scheduler import run_once

    settings = get_settings()
    result = run_once(ready_engine(settings), settings, parse_at(at), apply_sms_opt_outs)

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
    from casework.cases.family import apply_sms_opt_outs
    from casework.cases.retention import run_scheduled
    from casework.scheduler import run_worker

    logs.configure()
    settings = get_settings()
    engine = ready_engine(settings)
    run_worker(settings, engine, apply_sms_opt_outs, retention=run_scheduled)


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
