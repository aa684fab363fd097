"""Benchmark: dispatch throughput of one worker against the loopback SendGrid and Twilio fakes.

The fakes (``tests/fakes``, ``record=False``) run in their own process, as a provider
would, so they do not compete with the dispatcher for this process's GIL. Figures:

1. The fakes' own ceiling: requests/s each fake answers to a tight loop of raw
   ``http.client`` POSTs over one kept-alive connection (valid payload and auth, no
   casework, no SDK), the most one sequential client can get out of it.
2. The SDK-only ceiling: the real adapters' ``send()`` (``SendGridEmailChannel`` on the
   ``sendgrid`` SDK, ``TwilioSmsChannel`` on the ``twilio`` SDK) in a loop, no database.
3. Dispatch: N queued notices (half e-mail, half SMS, rendered from the real
   ``request_acknowledged`` templates with a real case's context) delivered by
   ``casework.notify.dispatch.dispatch`` in this one process, on SQLite (a file, WAL)
   and PostgreSQL (a private schema, dropped at the end). The outbox is reset to
   queued between repeats; best and median. Target: >= 300 notices/s per worker.

When the target is missed (or with ``--profile``), three diagnostic runs on the first
500 notices follow: a what-if with the same worker process dispatching from 4 threads
(``dispatch(me=..., concurrency=1)`` per thread: only the existing API), one run with
its steps timed (claim, render, claim renewal, each channel's send, the result write),
and one under cProfile, to say where the time goes. A second timed repeat is skipped
once the runs have taken over a minute (a loaded machine), to bound the run time.

Run: ``.venv/bin/python bench/dispatch.py [--notices 2000] [--repeats 2]
[--backend sqlite|postgresql|both] [--profile]``.

Like ``bench/transitions.py``, this folder is dropped from ``sys.path`` first (or
``bench/calendar.py`` would shadow the standard library's ``calendar``), and the
project root is added so that ``tests.fakes`` imports.
"""

from __future__ import annotations

# isort: off
import _common  # first: it takes this folder off sys.path before anything else loads
# isort: on

import argparse
import base64
import cProfile
import datetime as dt
import http.client
import importlib
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from sqlalchemy import Engine, func, select, text

from casework import cases
from casework import deadlines as dl
from casework.config import Settings, load_settings
from casework.db import session_scope
from casework.models import Notice, NoticeStatus, new_public_id
from casework.notices import insert_notices
from casework.notify.base import OutgoingMessage
from casework.notify.dispatch import build_channels, dispatch, worker_id
from casework.notify.render import render

POSTGRES_URL = _common.POSTGRES_URL
PROJECT_ROOT = _common.PROJECT_ROOT
TARGET_PER_SECOND = 300.0  # issue 13
SENDER = "+447700900000"
NOW = dt.datetime(2026, 11, 10, 10, 0, tzinfo=dl.LONDON).astimezone(dt.UTC)  # no quiet hours
ADVISER = cases.Actor(id="user:bench.adviser@ias.example.org", role="adviser", channel="cli")
CEILING_REQUESTS = 2000  # per fake, raw HTTP
SDK_SENDS = 1000  # per adapter
THREADS = 4  # the what-if: dispatch threads in one worker process
DIAGNOSTIC_NOTICES = 500  # the what-if, timed-steps and profiled runs use this many
REPEAT_BUDGET_SECONDS = 60  # no further timed repeat once the runs have taken this long

# The fakes' process: start both, say where they are, print counts on request, stop on EOF.
FAKES_PROCESS = """
import json, sys
from tests.fakes.sendgrid_server import SendGridFake
from tests.fakes.twilio_server import TwilioFake
sg, tw = SendGridFake(record=False).start(), TwilioFake(record=False).start()
print(json.dumps({"sendgrid": sg.url, "sendgrid_key": sg.api_key, "twilio": tw.url,
                  "sid": tw.account_sid, "token": tw.auth_token}), flush=True)
for line in sys.stdin:
    print(json.dumps({"sendgrid": sg.accepted, "twilio": tw.accepted}), flush=True)
sg.stop(); tw.stop()
"""


ms = _common.ms
verdict = _common.verdict


@dataclass
class Fakes:
    proc: subprocess.Popen[str]
    sendgrid: str
    sendgrid_key: str
    twilio: str
    sid: str
    token: str

    def accepted(self) -> dict[str, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("count\n")
        self.proc.stdin.flush()
        counts: dict[str, int] = json.loads(self.proc.stdout.readline())
        return counts


@contextmanager
def fakes_process() -> Iterator[Fakes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWILIO_")}
    proc = subprocess.Popen(
        [sys.executable, "-c", FAKES_PROCESS],
        cwd=PROJECT_ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        yield Fakes(
            proc,
            info["sendgrid"],
            info["sendgrid_key"],
            info["twilio"],
            info["sid"],
            info["token"],
        )
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=10)


def settings_for(fakes: Fakes, database_url: str) -> Settings:
    return load_settings(
        environment="test",
        database_url=database_url,
        sendgrid_api_key=fakes.sendgrid_key,
        sendgrid_host=fakes.sendgrid,
        twilio_account_sid=fakes.sid,
        twilio_auth_token=fakes.token,
        twilio_from=SENDER,
        twilio_base_url=fakes.twilio,
        provider_timeout_seconds=5,
    )


# --- 1 and 2: ceilings without casework ---------------------------------------------------


def raw_ceiling(url: str, path: str, headers: dict[str, str], body: bytes, n: int) -> float:
    """Requests/s over one kept-alive http.client connection, sequentially."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers=headers)  # warm: connect once
        conn.getresponse().read()
        t0 = time.perf_counter()
        for _ in range(n):
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status >= 300:
                raise SystemExit(f"the fake refused the ceiling request: {response.status}")
        return n / (time.perf_counter() - t0)
    finally:
        conn.close()


def fake_ceilings(fakes: Fakes) -> dict[str, float]:
    sendgrid_body = json.dumps(
        {
            "from": {"email": "noreply@example.org"},
            "subject": "Your request",
            "personalizations": [{"to": [{"email": "family@example.org"}]}],
            "content": [{"type": "text/plain", "value": "We have your request."}],
            "custom_args": {"notice_id": "bench"},
        }
    ).encode()
    basic = base64.b64encode(f"{fakes.sid}:{fakes.token}".encode()).decode()
    twilio_body = urlencode({"To": "+447911123456", "From": SENDER, "Body": "Reminder"}).encode()
    return {
        "sendgrid": raw_ceiling(
            fakes.sendgrid,
            "/v3/mail/send",
            {"Authorization": f"Bearer {fakes.sendgrid_key}", "Content-Type": "application/json"},
            sendgrid_body,
            CEILING_REQUESTS,
        ),
        "twilio": raw_ceiling(
            fakes.twilio,
            f"/2010-04-01/Accounts/{fakes.sid}/Messages.json",
            {
                "Authorization": f"Basic {basic}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
            twilio_body,
            CEILING_REQUESTS,
        ),
    }


def sdk_ceilings(settings: Settings) -> dict[str, float]:
    channels = build_channels(settings)
    context = sample_context()
    out = {}
    for channel, to in (("email", "family@example.org"), ("sms", "+447911123456")):
        subject, body = render("request_acknowledged", channel, context)
        adapter = channels[channel]
        adapter.send(OutgoingMessage("warm", channel, to, body, subject or None))  # type: ignore[arg-type]
        t0 = time.perf_counter()
        for i in range(SDK_SENDS):
            adapter.send(OutgoingMessage(f"n{i}", channel, to, body, subject or None))  # type: ignore[arg-type]
        out[f"{channel}:{adapter.name}"] = SDK_SENDS / (time.perf_counter() - t0)
    return out


# --- 3: the dispatcher --------------------------------------------------------------------

_context: dict[str, Any] = {}


def sample_context() -> dict[str, Any]:
    if not _context:
        raise RuntimeError("queue_notices() first")
    return _context


def queue_notices(engine: Engine, settings: Settings, n: int) -> None:
    """One real case for a real context, then N notices like its acknowledgement."""
    with session_scope(engine) as session:
        cases.sync_providers(session, settings)
        case = cases.open_case(
            session,
            cases.Intake(
                kind="mediation",
                name="Jo Family",
                phone="07911 123456",
                channel="helpline",
                email="jo.family@example.org",
                decision_date=dt.date(2026, 11, 2),
                decision_type="refuse_assessment",
            ),
            now=NOW - dt.timedelta(hours=1),
            actor=ADVISER,
            settings=settings,
        )
        template = session.execute(
            select(Notice).where(Notice.case_id == case.id, Notice.channel == "email")  # type: ignore[arg-type]
        ).scalar_one()
        _context.update(template.context)
        case_id = case.id
        session.execute(text("DELETE FROM notices"))  # only the bench's own notices remain
        session.commit()
    rows = []
    for i in range(n):
        channel = "email" if i % 2 == 0 else "sms"
        rows.append(
            {
                "public_id": new_public_id(),
                "idempotency_key": f"bench:{i}:{channel}",
                "case_id": case_id,
                "deadline_id": None,
                "template": "request_acknowledged",
                "recipient_role": "family",
                "channel": channel,
                "to_address": f"family{i}@example.org" if channel == "email" else "+447911123456",
                "context": dict(_context),
                "subject": "",
                "body": "",
                "status": NoticeStatus.queued,
                "not_before": NOW - dt.timedelta(seconds=n - i),
                "attempts": 0,
                "last_error": "",
                "created_at": NOW - dt.timedelta(hours=1),
                "escalated": False,
            }
        )
    with engine.begin() as conn:
        for start in range(0, n, 500):
            insert_notices(conn, rows[start : start + 500])


def requeue(engine: Engine, limit: int | None = None) -> None:
    """Every notice (or the first ``limit``) back to queued, as if never sent."""
    where = (
        "" if limit is None else f" WHERE id IN (SELECT id FROM notices ORDER BY id LIMIT {limit})"
    )
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM delivery_events"))
        conn.execute(
            text(
                "UPDATE notices SET status = 'queued', attempts = 0, claimed_at = NULL,"
                " claimed_by = NULL, provider = NULL, provider_message_id = NULL,"
                " sent_at = NULL, subject = '', body = ''" + where
            )
        )
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE notices, delivery_events")


@dataclass
class Run:
    seconds: float
    cpu: float
    sent: int


def run_dispatch(engine: Engine, settings: Settings, n: int) -> Run:
    channels = build_channels(settings)  # as the scheduler does: built once per process
    t0, c0 = time.perf_counter(), time.process_time()
    # As a worker runs it: settings.dispatch_concurrency sender threads.
    result = dispatch(
        engine, NOW, settings, channels=channels, concurrency=settings.dispatch_concurrency
    )
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    if result.sent != n:
        raise SystemExit(f"dispatch sent {result.sent} of {n}: {result.as_dict()}")
    with engine.connect() as conn:
        left = conn.execute(
            select(func.count()).where(Notice.status != NoticeStatus.sent)  # type: ignore[arg-type]
        ).scalar_one()
    if left:
        raise SystemExit(f"{left} notices not sent")
    return Run(seconds, cpu, result.sent)


def run_threaded(engine: Engine, settings: Settings, n: int, threads: int) -> Run:
    """What-if: the same one worker process, dispatching from several threads.

    Uses only dispatch()'s existing API: each thread claims its own small batches under
    its own claim name, so the database keeps them apart exactly as it keeps worker
    processes apart, and provider round trips overlap.
    """
    channels = build_channels(settings)
    results: list[Any] = []
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            results.append(
                dispatch(
                    engine,
                    NOW,
                    settings,
                    channels=channels,
                    concurrency=1,
                    me=f"{worker_id()}:t{k}",
                )
            )
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    t0, c0 = time.perf_counter(), time.process_time()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    # A thread stops when nothing is left to claim; sweep up anything left behind.
    results.append(dispatch(engine, NOW, settings, channels=channels))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    if errors:
        raise errors[0]
    sent = sum(r.sent for r in results)
    if sent != n:
        raise SystemExit(f"threaded dispatch sent {sent} of {n}")
    return Run(seconds, cpu, sent)


# --- Why: where the time goes ----------------------------------------------------------------

STEPS = (
    ("casework.notify.dispatch", "claim_batch", "claim the notices (a transaction per batch)"),
    ("casework.notify.dispatch", "render", "render the template (Jinja2)"),
    ("casework.notify.dispatch", "_record_sent", "write the results (one transaction per batch)"),
)


@contextmanager
def timed_steps(channels: dict[str, Any]) -> Iterator[dict[str, list[float]]]:
    spent: dict[str, list[float]] = {}
    saved: list[tuple[Any, str, Any, bool]] = []

    def wrap(owner: Any, attr: str, label: str, instance: bool) -> None:
        original = getattr(owner, attr)
        cell = spent.setdefault(label, [0.0, 0])

        def wrapper(*args: Any, _f: Any = original, _c: list[float] = cell, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return _f(*args, **kw)
            finally:
                _c[0] += time.perf_counter() - t0
                _c[1] += 1

        setattr(owner, attr, wrapper)
        saved.append((owner, attr, original, instance))

    for module_name, attr, label in STEPS:
        module = importlib.import_module(module_name)
        if hasattr(module, attr):  # the dispatcher changes; time the steps it has
            wrap(module, attr, label, False)
    for name, channel in channels.items():
        wrap(channel, "send", f"{name} send() through the {channel.name} SDK", True)
    try:
        yield spent
    finally:
        for owner, attr, original, instance in reversed(saved):
            if instance:
                delattr(owner, attr)
            else:
                setattr(owner, attr, original)


@dataclass
class Figures:
    label: str
    runs: list[Run] = field(default_factory=list)
    threaded: Run | None = None
    note: str = ""
    steps: list[str] = field(default_factory=list)
    profile: str = ""


def bench_backend(
    engine: Engine,
    label: str,
    fakes: Fakes,
    n: int,
    repeats: int,
    profile: bool,
    *,
    diagnose: bool = True,
) -> Figures:
    """The figures of one backend; ``diagnose=False`` skips the why-run even on a miss."""
    fig = Figures(label)
    settings = settings_for(fakes, engine.url.render_as_string(hide_password=False))
    queue_notices(engine, settings, n)
    for i in range(repeats):
        if i:
            if sum(r.seconds for r in fig.runs) > REPEAT_BUDGET_SECONDS:
                fig.note = f"(stopped after {i} run(s): over {REPEAT_BUDGET_SECONDS} s already)"
                break
            requeue(engine)
        fig.runs.append(run_dispatch(engine, settings, n))
    best = max(r.sent / r.seconds for r in fig.runs)
    if diagnose and (best < TARGET_PER_SECOND or profile):
        # The diagnostics run on the first DIAGNOSTIC_NOTICES notices only.
        diag = min(n, DIAGNOSTIC_NOTICES)
        requeue(engine, diag)
        fig.threaded = run_threaded(engine, settings, diag, THREADS)
        requeue(engine, diag)
        channels = build_channels(settings)
        with timed_steps(channels) as spent:
            t0 = time.perf_counter()
            dispatch(engine, NOW, settings, channels=channels)
            total = time.perf_counter() - t0
        fig.steps.append(f"one run, steps timed: {ms(total)} for {diag:,} notices")
        accounted = 0.0
        for label_, (seconds, calls) in spent.items():
            accounted += seconds
            per = seconds / calls * 1e6 if calls else 0.0
            fig.steps.append(
                f"{ms(seconds):>10} {seconds / total:5.0%}  x{int(calls):<5} {per:7.0f} us each"
                f"  {label_}"
            )
        rest = total - accounted
        fig.steps.append(f"{ms(rest):>10} {rest / total:5.0%}  the rest (Python in dispatch)")
        requeue(engine, diag)
        profiler = cProfile.Profile()
        profiler.enable()
        dispatch(engine, NOW, settings, channels=channels)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(16)
        fig.profile = out.getvalue()
    return fig


def print_figures(fig: Figures, n: int) -> None:
    rates = [r.sent / r.seconds for r in fig.runs]
    cpu_rates = [r.sent / r.cpu for r in fig.runs if r.cpu]
    best, median = max(rates), statistics.median(rates)
    print(f"\n== {fig.label}")
    print(
        f"   dispatch, 1 worker, {n:,} notices (half e-mail, half SMS): best {best:.0f}/s,"
        f" median {median:.0f}/s over {len(rates)} runs"
        f" ({', '.join(f'{r.seconds:.2f} s' for r in fig.runs)})"
        f"   target >= {TARGET_PER_SECOND:.0f}/s: {verdict(median >= TARGET_PER_SECOND)}"
        + (f" {fig.note}" if fig.note else "")
    )
    print(
        f"   CPU of this process per notice: {ms(min(r.cpu for r in fig.runs) / n)}"
        f" (= {max(cpu_rates):.0f}/s if this process had a core to itself)"
    )
    if fig.threaded is not None:
        rate = fig.threaded.sent / fig.threaded.seconds
        print(
            f"   what-if, the same worker process dispatching from {THREADS} threads"
            f" (dispatch(me=..., concurrency=1) per thread): {rate:.0f}/s"
            f" ({fig.threaded.sent:,} notices in {fig.threaded.seconds:.2f} s)"
            f"   vs target: {verdict(rate >= TARGET_PER_SECOND)}"
        )
    if fig.steps:
        print("   WHY (one more run, its steps timed):")
        for line in fig.steps:
            print(f"      {line}")
    if fig.profile:
        print("   cProfile of one run (tottime):")
        for line in fig.profile.splitlines():
            if line.strip():
                print(f"      {line}")


# --- Backends -------------------------------------------------------------------------------


def sqlite_engine() -> Any:
    return _common.sqlite_engine("casework-bench-dispatch-")


postgres_unavailable = _common.postgres_unavailable
postgres_engine = _common.postgres_engine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--notices", type=int, default=2000, help="queued notices (default 2000)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per backend")
    parser.add_argument(
        "--backend", choices=("sqlite", "postgresql", "both"), default="both", help="default both"
    )
    parser.add_argument("--profile", action="store_true", help="profile even if the target is met")
    args = parser.parse_args(argv)
    for var in ("TWILIO_REGION", "TWILIO_EDGE", "SENDGRID_API_KEY"):
        os.environ.pop(var, None)  # they would redirect the SDKs away from the fakes

    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    print(
        f"casework dispatch bench: {args.notices:,} notices per run, {args.repeats} runs per"
        " backend, one worker (this process); the fakes run in a process of their own"
    )
    runners = _common.backends(args.backend, "casework-bench-dispatch-")
    with fakes_process() as fakes:
        figures = []
        sdk: dict[str, float] = {}
        for _, make in runners:
            with make() as (engine, label):
                figures.append(
                    bench_backend(engine, label, fakes, args.notices, args.repeats, args.profile)
                )
                if not sdk:
                    sdk = sdk_ceilings(settings_for(fakes, "sqlite://"))
        raw = fake_ceilings(fakes)
        accepted = fakes.accepted()
    print(
        "\n== Ceilings (no database): what one sequential client gets, for comparison"
        "\n   the fakes themselves, raw http.client on one kept-alive connection:"
        f" SendGrid {raw['sendgrid']:.0f} req/s, Twilio {raw['twilio']:.0f} req/s"
        "\n   the real adapters' send() in a loop (SDK + HTTP, no DB): "
        + ", ".join(f"{name} {rate:.0f}/s" for name, rate in sdk.items())
    )
    if sdk:
        mixed = 2 / sum(1 / rate for rate in sdk.values())
        print(f"   so the SDK-only ceiling for a half e-mail, half SMS mix is {mixed:.0f}/s")
    for fig in figures:
        print_figures(fig, args.notices)
    print(f"\n(the fakes accepted {accepted['sendgrid']:,} e-mails and {accepted['twilio']:,} SMS)")
    load = os.getloadavg()[0]
    print(
        f"(total run {time.perf_counter() - started:.0f}s; load average {load_before:.1f} at the"
        f" start, {load:.1f} at the end on {os.cpu_count()} CPUs: anything else running skews"
        " these figures)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
