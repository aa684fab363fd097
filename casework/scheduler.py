"""APScheduler wiring only: interval jobs for the sweep, the dispatcher and stored receipts
(and, on SQLite, the WAL checkpoint); daily jobs for the digest, the monthly report and
retention.

The database is the coordinator, not APScheduler: the jobs keep no state of
their own (in-memory job store), claim work with row-level locking, and are safe
to run in several ``casework worker`` processes at once. ``casework tick`` calls
the same functions, so everything here is testable without a scheduler.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy import Engine

from casework.config import Settings
from casework.db import CHECKPOINT_SECONDS, checkpoint
from casework.notify.dispatch import build_channels, dispatch
from casework.notify.receipts import apply_stored_receipts
from casework.reminders import sweep

# Work a door hands the scheduler to run after each dispatch: the use cases that act on
# what delivery learnt (a family that replied STOP: casework.cases.apply_sms_opt_outs).
# The scheduler sits below the use cases, so it is given them rather than importing them.
AfterDispatch = Callable[[Engine, dt.datetime, Settings], Any]

log = logging.getLogger("casework.scheduler")

SWEEP_SECONDS = 60
DISPATCH_SECONDS = 10
RECEIPTS_SECONDS = 5
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 300}


def run_once(
    engine: Engine,
    settings: Settings,
    now: dt.datetime | None = None,
    after_dispatch: AfterDispatch | None = None,
) -> dict[str, Any]:
    """Stored receipts, one sweep, one dispatch as of ``now``: what `casework tick` runs.

    Receipts go first so a notice the provider already reported on is up to date
    before anything decides about it.
    """
    now = now or dt.datetime.now(dt.UTC)
    receipts = apply_stored_receipts(engine, settings, now)
    swept = sweep(engine, now, settings)
    sent = dispatch(
        engine,
        now,
        settings,
        channels=_channels(settings),
        concurrency=settings.dispatch_concurrency,
    )
    after = after_dispatch(engine, now, settings) if after_dispatch is not None else None
    return {
        "at": now.isoformat(),
        "receipts": receipts.as_dict(),
        "sweep": swept.as_dict(),
        "dispatch": sent.as_dict(),
        "after_dispatch": after,
    }


_channel_cache: dict[tuple[Any, ...], Any] = {}
_CHANNEL_SETTINGS = (
    "sendgrid_api_key",
    "sendgrid_host",
    "sendgrid_from",
    "twilio_account_sid",
    "twilio_auth_token",
    "twilio_from",
    "twilio_messaging_service_sid",
    "twilio_base_url",
    "public_url",
    "provider_timeout_seconds",
)


def _channels(settings: Settings) -> Any:
    # SDK clients keep connection pools: build them once per distinct configuration
    # (keyed by value, not id(): a freed Settings' id can be reused by a new one).
    key = tuple(getattr(settings, name) for name in _CHANNEL_SETTINGS)
    if key not in _channel_cache:
        _channel_cache[key] = build_channels(settings)
    return _channel_cache[key]


def _sweep_job(engine: Engine, settings: Settings, status: dict[str, Any]) -> None:
    now = dt.datetime.now(dt.UTC)
    result = sweep(engine, now, settings)
    status["last_sweep"] = now.isoformat()
    status["last_sweep_result"] = result.as_dict()


def _dispatch_job(
    engine: Engine,
    settings: Settings,
    status: dict[str, Any],
    after_dispatch: AfterDispatch | None = None,
) -> None:
    now = dt.datetime.now(dt.UTC)
    result = dispatch(
        engine,
        now,
        settings,
        channels=_channels(settings),
        concurrency=settings.dispatch_concurrency,
    )
    if after_dispatch is not None:
        after_dispatch(engine, now, settings)
    status["last_dispatch"] = now.isoformat()
    status["last_dispatch_result"] = result.as_dict()


def _receipts_job(engine: Engine, settings: Settings, status: dict[str, Any]) -> None:
    now = dt.datetime.now(dt.UTC)
    result = apply_stored_receipts(engine, settings, now)
    status["last_receipts"] = now.isoformat()
    status["last_receipts_result"] = result.as_dict()


def _checkpoint_job(engine: Engine, status: dict[str, Any]) -> None:
    """SQLite only: copy the WAL back here, so no user's commit waits for it (casework.db)."""
    done = checkpoint(engine)
    if done is not None:
        status["last_checkpoint"] = dt.datetime.now(dt.UTC).isoformat()
        status["last_checkpoint_result"] = done.as_dict()


def _digest_job(engine: Engine, settings: Settings, status: dict[str, Any]) -> None:
    from casework.reminders import queue_digest

    now = dt.datetime.now(dt.UTC)
    status["last_digest"] = now.isoformat()
    status["last_digest_queued"] = queue_digest(engine, now, settings)


def _monthly_report_job(engine: Engine, settings: Settings, status: dict[str, Any]) -> None:
    from casework.reports.monthly import queue_monthly_report

    now = dt.datetime.now(dt.UTC)
    status["last_monthly_report"] = now.isoformat()
    status["last_monthly_report_queued"] = queue_monthly_report(engine, now, settings)


# A daily task handed in by the door that starts the scheduler (the scheduler sits
# below the use cases and may not import them): it takes the engine, the settings and
# the moment, does its work in its own transaction and returns how much it did.
DailyTask = Callable[[Engine, Settings, dt.datetime], int]


def _retention_job(
    engine: Engine, settings: Settings, status: dict[str, Any], task: DailyTask
) -> None:
    """Anonymise whatever has passed its retention date (casework.cases.retention).

    Safe to repeat and to run in two workers at once: what is already anonymised is
    not listed again, and a run that loses a race to another changes nothing.
    """
    now = dt.datetime.now(dt.UTC)
    status["last_retention"] = now.isoformat()
    status["last_retention_anonymised"] = task(engine, settings, now)


def _listen(event: JobEvent) -> None:
    if event.code == EVENT_JOB_MISSED:
        log.warning("job %s missed its run time %s", event.job_id, event.scheduled_run_time)
    elif event.code == EVENT_JOB_MAX_INSTANCES:
        log.warning("job %s still running; this run skipped", event.job_id)
    elif event.code == EVENT_JOB_ERROR:
        log.error("job %s failed: %r", event.job_id, getattr(event, "exception", None))


def configure(
    scheduler: BaseScheduler,
    engine: Engine,
    settings: Settings,
    status: dict[str, Any],
    after_dispatch: AfterDispatch | None = None,
    *,
    retention: DailyTask | None = None,
) -> BaseScheduler:
    scheduler.add_listener(_listen, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_ERROR)
    args = (engine, settings, status)
    now = dt.datetime.now(dt.UTC)
    scheduler.add_job(
        _sweep_job,
        "interval",
        seconds=SWEEP_SECONDS,
        id="sweep",
        args=args,
        replace_existing=True,
        next_run_time=now,
    )
    scheduler.add_job(
        _dispatch_job,
        "interval",
        seconds=DISPATCH_SECONDS,
        id="dispatch",
        args=(*args, after_dispatch),
        replace_existing=True,
        next_run_time=now,
    )
    scheduler.add_job(
        _receipts_job,
        "interval",
        seconds=RECEIPTS_SECONDS,
        id="receipts",
        args=args,
        replace_existing=True,
        next_run_time=now,
    )
    if engine.dialect.name == "sqlite":
        scheduler.add_job(
            _checkpoint_job,
            "interval",
            seconds=CHECKPOINT_SECONDS,
            id="checkpoint",
            args=(engine, status),
            replace_existing=True,
            next_run_time=now,
        )
    # The daily digest at 08:00 London time; its idempotency key makes a repeat harmless.
    scheduler.add_job(
        _digest_job,
        "cron",
        hour=8,
        minute=0,
        timezone="Europe/London",
        id="digest",
        args=args,
        replace_existing=True,
    )
    # The commissioners' monthly report, daily at 08:30 London time: it queues on the
    # month's first working day (or the first run after it), once per month and address.
    scheduler.add_job(
        _monthly_report_job,
        "cron",
        hour=8,
        minute=30,
        timezone="Europe/London",
        id="monthly_report",
        args=args,
        replace_existing=True,
    )
    if retention is not None:
        # Retention, daily at 02:30 London time, when nobody is working on cases.
        scheduler.add_job(
            _retention_job,
            "cron",
            hour=2,
            minute=30,
            timezone="Europe/London",
            id="retention",
            args=(*args, retention),
            replace_existing=True,
        )
    return scheduler


def start_background(
    settings: Settings,
    engine: Engine,
    status: dict[str, Any],
    after_dispatch: AfterDispatch | None = None,
    *,
    retention: DailyTask | None = None,
) -> BaseScheduler:
    """The scheduler inside `casework serve` (one process: the embedded default)."""
    scheduler = BackgroundScheduler(timezone="UTC", job_defaults=JOB_DEFAULTS)
    configure(scheduler, engine, settings, status, after_dispatch, retention=retention)
    scheduler.start()
    status["running"] = True
    status["mode"] = "in-process"
    return scheduler


def run_worker(
    settings: Settings,
    engine: Engine,
    after_dispatch: AfterDispatch | None = None,
    *,
    retention: DailyTask | None = None,
) -> None:
    """`casework worker`: a dedicated process; run as many as needed against PostgreSQL."""
    status: dict[str, Any] = {"running": True, "mode": "worker"}
    scheduler = BlockingScheduler(timezone="UTC", job_defaults=JOB_DEFAULTS)
    configure(scheduler, engine, settings, status, after_dispatch, retention=retention)
    log.info("worker started: sweep every %ss, dispatch every %ss", SWEEP_SECONDS, DISPATCH_SECONDS)
    scheduler.start()
