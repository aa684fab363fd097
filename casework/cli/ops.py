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
from casework.cases import words
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
        "; skipping " + ", ".join(f"{dl.fmt(d)} ({why})" for d, why in skipped) if skipped else ""
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


def run_server(
    app: Any,
    *,
    host: str,
    port: int,
    message: str,
    sockets: list[socket.socket] | None = None,
) -> None:
    """Run uvicorn and print ``message`` once it is listening (after its start-up log)."""
    import uvicorn

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if not self.should_exit and message:
                typer.echo(message)

    _Server(uvicorn.Config(app, host=host, port=port, log_level="info")).run(sockets=sockets)


def shared_listener(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` that other processes may bind too (SO_REUSEPORT).

    Each web worker binds its own, and the kernel spreads new connections across them;
    with one socket shared by every worker, the worker that wakes first takes each
    connection, and keep-alive clients all end up on one process. The socket is made
    with IPPROTO_TCP named: asyncio sets TCP_NODELAY only on a TCP socket that says so,
    and a socket handed from process to process (uvicorn's ``--workers``) says protocol
    0, so every response waited for the client's delayed ACK (Nagle, about 40 ms).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


# How long a worker waits for the others to be ready before the service gives up.
READY_TIMEOUT_SECONDS = 300.0


def _web_worker(
    host: str, port: int, with_scheduler: bool, message: str, ready: Any = None
) -> None:
    """One of ``serve --workers N``: its own engine, app and listening socket.

    It warms up (:func:`casework.web.app.warm_up`), binds, then waits at ``ready`` (a
    barrier) until every worker has, and only then listens. The kernel spreads new
    connections over the sockets listening at that moment: a worker that listened
    while another was still starting took every connection opened meanwhile, and
    keep-alive clients stayed on it (the second worker idle, or cold when it got its
    first visitors).
    """
    from casework import logs
    from casework.web.app import create_app, warm_up

    logs.configure()
    settings = get_settings().served_at(host, port)
    app = create_app(settings, get_engine(settings), with_scheduler=with_scheduler)
    warm_up(app)
    listener = shared_listener(host, port)  # bound (a taken port fails here), not listening
    if ready is not None:
        ready.wait(READY_TIMEOUT_SECONDS)
    run_server(app, host=host, port=port, message=message, sockets=[listener])


def run_workers(host: str, port: int, *, workers: int, scheduler: bool, message: str) -> int:
    """Run ``workers`` web processes on one port until they stop; their worst exit code.

    The scheduler, if asked for, runs in the first worker only: APScheduler's job store
    must not be shared. A SIGTERM (a process manager stopping the service) is passed on
    to every worker, which finishes its requests and stops; when one worker ends, the
    others are stopped too, so a process manager sees the service end and restarts it.
    """
    import multiprocessing
    import signal
    from multiprocessing.connection import wait

    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(workers)
    procs = [
        context.Process(
            target=_web_worker,
            args=(host, port, scheduler and i == 0, message if i == 0 else "", ready),
            name=f"casework-web-{i + 1}",
        )
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()

    asked_to_stop: list[bool] = []

    def stop(*_args: Any) -> None:
        asked_to_stop.append(True)
        for proc in procs:
            if proc.is_alive():
                proc.terminate()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        wait([proc.sentinel for proc in procs])
    except KeyboardInterrupt:  # Ctrl-C reached every worker too: let them finish
        asked_to_stop.append(True)
    finally:
        ended_alone = not asked_to_stop
        stop()
        for proc in procs:
            proc.join()
        signal.signal(signal.SIGTERM, previous)
    # uvicorn ends by re-raising the signal it stopped for: asked to stop, that is clean.
    clean = {0} if ended_alone else {0, -signal.SIGTERM, -signal.SIGINT}
    codes = [proc.exitcode or 0 for proc in procs]
    return max((0 if code in clean else abs(code) or 1 for code in codes), default=0)


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
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Web processes sharing the port (one per CPU core); the scheduler runs"
            " in the first.",
        ),
    ] = 1,
) -> None:
    """Run the web app and the scheduler together: the embedded default."""
    from casework import logs
    from casework.web.app import create_app, warm_up

    logs.configure()
    settings = get_settings().served_at(host, port)
    engine = ready_engine(settings)
    message = prepare_start(
        settings, engine, host=host, port=port, demo=demo, admin_email=admin_email
    )
    if workers > 1:
        engine.dispose()  # each worker opens its own connections
        code = run_workers(host, port, workers=workers, scheduler=scheduler, message=message)
        if code:
            raise typer.Exit(code)
        return
    web_app = create_app(settings, engine, with_scheduler=scheduler)
    warm_up(web_app)
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
    moment = parse_at(at)
    result = run_once(ready_engine(settings), settings, moment, apply_sms_opt_outs)

    def text() -> str:
        sw, dp = result["sweep"], result["dispatch"]
        return (
            f"tick as at {words.moment_words(moment)}\n"
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
        str | None,
        typer.Option(help="queued, sending, sent, delivered, failed, skipped, to_post or posted."),
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
                # The words to type, each with what it means as the pages say it.
                fail("--status: choose one of " + "; ".join(map(_status_choice, NoticeStatus)))
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
        lines = [_notice_text(n) for n in rows]
        emit(payload, as_json, lambda: "\n".join(lines) or "no notices")


def _status_choice(status: str) -> str:
    """A --status value to type, with the pages' words for it where they differ."""
    said = words.NOTICE_STATUS_WORDS[status].lower()
    return status if said == status else f"{status} ({said})"


def _notice_text(n: Any) -> str:
    """One notice as a person reads it: what, to whom, how, and where it is (the pages' words).

    The moment is when it went; not yet gone, the earliest it may go; a letter, the day it
    was posted or since when it waits; one that never went, when it was meant to.
    """
    ref = (n.context or {}).get("reference") or "No case"
    reason = words.notice_reason_words(n.status, n.last_error)
    state = reason or words.NOTICE_STATUS_WORDS.get(n.status, "Unknown").lower()
    if n.sent_at:
        when = words.moment_words(n.sent_at)
    elif n.status == "queued":
        when = f"not before {words.moment_words(n.not_before)}"
    elif n.status == "posted" and n.posted_on:
        when = f"on {dl.fmt(n.posted_on)}"
    elif n.status == "to_post":
        when = f"since {words.moment_words(n.created_at)}"
    else:
        when = f"meant for {words.moment_words(n.not_before)}"
    return (
        f"{ref:<15} {words.template_words(n.template)}\n"
        f"    to {words.recipient_words(n.recipient_role)}"
        f" ({words.channel_words(n.channel)}): {state}, {when}"
    )
