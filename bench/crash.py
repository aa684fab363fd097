"""Benchmark: a crash campaign against the dispatcher at the default settings, on the real clock.

A dispatcher process (``tests/integration/worker_proc.py``, forked from one warm
process so each kill costs no Python start-up) runs as ``casework worker`` would:
the default ``dispatch_concurrency`` sender threads, the default claim lease and
heartbeat, the real clock. It is SIGKILLed at a random moment while it is sending,
a fresh one is started at once, and so on; a last one then runs until every notice
is out (it must wait out the lease on what the last dead one held). Meanwhile this
process samples the notices table to see how long any notice stays claimed.

Figures printed: kills, notices, lost (never accepted by a provider, or not ``sent``),
duplicates (extra provider acceptances) against the stated bound (at most one per
notice in flight at a crash: being sent, or sent with the result not yet written), the
most notices in flight at one kill (at most twice the sender threads), and the
longest hold (how long a notice stayed claimed without being renewed or finished:
the lease plus the time until a live worker picks it up).

The providers are the loopback fakes (``tests/fakes``) in this process, each answer
held back ``--provider-delay`` seconds so kills land mid-request.

Run: ``.venv/bin/python bench/crash.py [--kills 32] [--notices 2000]
[--backend postgresql|sqlite] [--seed N]``.
"""

from __future__ import annotations

# isort: off
import _common  # first: it takes this folder off sys.path before anything else loads
# isort: on

import argparse
import contextlib
import datetime as dt
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import Engine, func, select

from casework.cases import sync_providers
from casework.config import load_settings
from casework.db import make_engine, session_scope, upgrade
from casework.models import Notice, NoticeStatus
from casework.notices import insert_notices, outbox_row
from tests.fakes.sendgrid_server import SendGridFake
from tests.fakes.twilio_server import TwilioFake

POSTGRES_URL = _common.POSTGRES_URL
PROJECT_ROOT = _common.PROJECT_ROOT
WORKER = os.path.join(PROJECT_ROOT, "tests", "integration", "worker_proc.py")
SENDER = "+447700900000"
NOTICES: Any = Notice.__table__  # type: ignore[attr-defined]


def queue(engine: Engine, n: int, now: dt.datetime) -> None:
    """N family notices, half SMS and half e-mail, due now (a real template, no case)."""
    context = {
        "notice_kind": "event",
        "reference": "MED-2026-0001",
        "case_kind": "mediation",
        "service_name": "IAS service",
        "helpline": "0161 000 0000",
        "service_email": "ias@example.org",
        "case_link": "https://casework.example.org/cases/MED-2026-0001",
        "portal_link": "https://casework.example.org/portal/cases/MED-2026-0001",
        "provider_name": "",
        "family_name": "Jo",
        "acceptance_working_days": 2,
        "event": "open",
    }
    rows = []
    for i in range(n):
        channel = "email" if i % 2 else "sms"
        rows.append(
            outbox_row(
                key=f"bench-crash:{i}",
                case_id=None,
                template="request_acknowledged",
                recipient="family",
                channel=channel,
                address=f"family{i}@example.org" if channel == "email" else "+447911123456",
                context=context,
                not_before=now - dt.timedelta(seconds=n - i),  # oldest first, in order
                now=now,
            )
        )
    with engine.begin() as conn:
        for start in range(0, n, 500):
            insert_notices(conn, rows[start : start + 500])


def accepted(sendgrid: SendGridFake, twilio: TwilioFake) -> Counter[str]:
    seen: Counter[str] = Counter()
    for payload in list(sendgrid.messages.values()):
        seen[payload["custom_args"]["notice_id"]] += 1
    for form in list(twilio.messages.values()):
        seen[parse_qs(urlsplit(form["StatusCallback"]).query)["notice"][0]] += 1
    return seen


class Sampler(threading.Thread):
    """Longest time any notice stayed claimed since its claim was last stamped."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(daemon=True)
        self.engine = engine
        self.longest = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            try:
                with self.engine.connect() as conn:
                    now = dt.datetime.now(dt.UTC)
                    for claimed_at in conn.execute(
                        select(NOTICES.c.claimed_at).where(NOTICES.c.status == NoticeStatus.sending)
                    ).scalars():
                        self.longest = max(self.longest, (now - claimed_at).total_seconds())
            except Exception:  # a sample lost to load is not a figure
                continue


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=32)
    parser.add_argument("--notices", type=int, default=2000)
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--provider-delay", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    return campaign(args.backend, args.kills, args.notices, args.provider_delay, args.seed)


def campaign(
    backend: str,
    kills_wanted: int,
    notices: int,
    provider_delay: float,
    seed: int | None = None,
    figures: dict[str, int] | None = None,
) -> int:
    """Prints the campaign's outcome; ``figures`` also gets its counts. 0 when the bound held."""
    seed = seed if seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    with contextlib.ExitStack() as stack:
        if backend == "postgresql":
            url = stack.enter_context(_common.postgres_schema())
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            url = f"sqlite:///{tmp}/crash.db"
        return _campaign(url, backend, kills_wanted, notices, provider_delay, seed, rng, figures)


def _campaign(
    url: str,
    backend: str,
    kills_wanted: int,
    notices: int,
    provider_delay: float,
    seed: int,
    rng: random.Random,
    figures: dict[str, int] | None,
) -> int:
    engine = make_engine(url)
    try:
        upgrade(engine)
        defaults = load_settings(environment="test")
        with session_scope(engine) as session:
            sync_providers(session, defaults)
        now = dt.datetime.now(dt.UTC)
        queue(engine, notices, now)
        with SendGridFake() as sendgrid, TwilioFake() as twilio:
            for fake in (sendgrid, twilio):
                fake.delay_next(provider_delay, count=10_000_000)
            env = {k: v for k, v in os.environ.items() if k not in ("TWILIO_REGION", "TWILIO_EDGE")}
            env.update(
                {
                    "CASEWORK_ENVIRONMENT": "test",
                    "CASEWORK_DATABASE_URL": url,
                    "CASEWORK_SENDGRID_API_KEY": sendgrid.api_key,
                    "CASEWORK_SENDGRID_HOST": sendgrid.url,
                    "CASEWORK_TWILIO_ACCOUNT_SID": twilio.account_sid,
                    "CASEWORK_TWILIO_AUTH_TOKEN": twilio.auth_token,
                    "CASEWORK_TWILIO_FROM": SENDER,
                    "CASEWORK_TWILIO_BASE_URL": twilio.url,
                    "CASEWORK_PROVIDER_TIMEOUT_SECONDS": "5",
                    # Not "test": the quiet hours must not hold SMS back in the evening.
                    "CASEWORK_QUIET_HOURS_START": "00:00",
                    "CASEWORK_QUIET_HOURS_END": "00:00",
                }
            )
            sampler = Sampler(engine)
            sampler.start()
            in_flight: list[int] = []
            server = subprocess.Popen(
                [sys.executable, WORKER, "--serve-forks", "--until-done", "--batch", "100000"],
                env=env,
                cwd=PROJECT_ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            assert server.stdin is not None and server.stdout is not None
            assert server.stdout.readline().strip() == "ready"
            started = time.monotonic()
            kills = 0
            for _ in range(kills_wanted):
                before = len(sendgrid.requests) + len(twilio.requests)
                server.stdin.write(dt.datetime.now(dt.UTC).isoformat() + "\n")
                server.stdin.flush()
                while not (line := server.stdout.readline().strip()).startswith("child "):
                    pass
                pid = int(line.split()[1])
                while len(sendgrid.requests) + len(twilio.requests) <= before and alive(pid):
                    time.sleep(0.002)
                if not alive(pid):
                    print("a dispatcher finished before its kill: use more --notices")
                    break
                time.sleep(rng.uniform(0.0, 0.3))
                os.kill(pid, signal.SIGKILL)
                while alive(pid):
                    time.sleep(0.005)
                kills += 1
                # What the dead one held (older orphans belong to earlier kills).
                with engine.connect() as conn:
                    in_flight.append(
                        conn.execute(
                            select(func.count()).where(
                                NOTICES.c.status == NoticeStatus.sending,
                                NOTICES.c.claimed_by == f"{socket.gethostname()}:{pid}",
                            )
                        ).scalar_one()
                    )
            server.kill()
            server.wait()
            drain = subprocess.run(
                [sys.executable, WORKER, "--real-clock", "--until-done", "--batch", "100000"],
                env=env,
                cwd=PROJECT_ROOT,
                capture_output=True,
                text=True,
                timeout=600,
            )
            elapsed = time.monotonic() - started
            sampler.stop.set()
            sampler.join()
            seen = accepted(sendgrid, twilio)
        with engine.connect() as conn:
            ids = set(conn.execute(select(NOTICES.c.public_id)).scalars())
            not_sent = conn.execute(
                select(func.count()).where(NOTICES.c.status != NoticeStatus.sent)
            ).scalar_one()
        lost = len(ids - set(seen)) + 0
        duplicates = sum(n - 1 for n in seen.values())
        print(
            f"crash campaign [{backend}], default settings "
            f"(dispatch_concurrency={defaults.dispatch_concurrency}, "
            f"lease {defaults.dispatch_lease_seconds:g} s, "
            f"heartbeat {defaults.dispatch_heartbeat_seconds:g} s), seed {seed}"
        )
        print(f"  kills:           {kills}")
        print(f"  notices:         {len(ids)}")
        print(f"  lost:            {lost} (not sent: {not_sent})")
        print(
            f"  duplicates:      {duplicates} (bound: {sum(in_flight)} notices in flight at the "
            f"kills, at most {max(in_flight, default=0)} at one kill)"
        )
        print(f"  longest hold:    {sampler.longest:.1f} s")
        print(f"  wall time:       {elapsed:.1f} s (drain exit {drain.returncode})")
        if figures is not None:
            figures.update(
                kills=kills,
                notices=len(ids),
                lost=lost,
                not_sent=not_sent,
                duplicates=duplicates,
                in_flight=sum(in_flight),
                most_at_one_kill=max(in_flight, default=0),
                senders=defaults.dispatch_concurrency,
            )
        within = max(in_flight, default=0) <= 2 * defaults.dispatch_concurrency
        return 0 if lost == 0 and not_sent == 0 and duplicates <= sum(in_flight) and within else 1
    finally:
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
