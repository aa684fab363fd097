"""Benchmark: web latency with 100,000 cases, 20 concurrent users, SQLite and PostgreSQL.

Why this exists: issue 4 sets a target of p95 under 100 ms at 20 concurrent users on
this 2-core machine for the adviser dashboard and the case page, with 100,000 cases
in the database. This script fills a database that size (bulk inserts, not the use
cases: that would take an hour and measure the wrong thing), starts the real app
under uvicorn in a subprocess, and measures each route with 20 concurrent clients,
printed beside ``GET /health`` served by the same process in the same run, so the
figures separate "our queries and templates" from "Python, HTTP and this machine".

Measured: the dashboard (``GET /``) and a case page (``GET /cases/{ref}``) signed in
as an adviser (a server-side session made directly, as sign-in would), and the REST
API's case list and case detail with an adviser's bearer token. A route that is not
there yet prints "page not available" instead of failing the run.

Read the "CPU ms/req" column beside the latencies: it is the server process's own CPU
time per request. With 20 clients each sending again as soon as answered, latency is
about 20 x that / the cores the server gets, so on a shared machine the wall-clock
figures move with everyone else's load while CPU ms/req moves much less.

Run: ``.venv/bin/python bench/web.py`` (both databases; ``--db sqlite`` for one, and
``--cases``, ``--clients``, ``--requests``, ``--workers`` to vary). PostgreSQL is
``CASEWORK_BENCH_POSTGRES_URL`` (default the test server), in a private schema that is
dropped afterwards. Bounded: well under 3 minutes for both databases.

Note on sys.path: run as a script, this file's folder heads ``sys.path`` and its
neighbour ``bench/calendar.py`` would shadow the standard library's ``calendar``
(imported by ``holidays``), so the folder is dropped before any other import.
"""

from __future__ import annotations

# isort: off
import _common  # first: it takes this folder off sys.path before anything else loads
# isort: on

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Connection, Engine, insert, text

from casework import auth, cases
from casework.config import PROJECT_ROOT, load_settings
from casework.db import make_engine, session_scope, upgrade
from casework.deadlines import DeadlineKind
from casework.models import (
    Allocation,
    Case,
    CaseEvent,
    Deadline,
    Person,
    ReferenceCounter,
)
from casework.states import CaseKind, CaseState
from casework.web.deps import SESSION_COOKIE

POSTGRES_URL = os.environ.get(
    "CASEWORK_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TARGET_P95_MS = 100.0
BATCH = 10_000
SEED = 20261110

# Roughly how a year's caseload sits: most cases closed or in progress, a few new.
MEDIATION_STATES = [
    (CaseState.requested, 8),
    (CaseState.advised, 10),
    (CaseState.mediating, 14),
    (CaseState.declined, 4),
    (CaseState.certificate_issued, 6),
    (CaseState.appeal_ready, 8),
    (CaseState.closed, 44),
    (CaseState.withdrawn, 6),
]
DISAGREEMENT_STATES = [
    (CaseState.requested, 8),
    (CaseState.advised, 10),
    (CaseState.allocated, 16),
    (CaseState.meeting_held, 6),
    (CaseState.closed, 54),
    (CaseState.withdrawn, 6),
]
WITH_PROVIDER = {
    CaseState.mediating,
    CaseState.certificate_issued,
    CaseState.appeal_ready,
    CaseState.allocated,
    CaseState.meeting_held,
    CaseState.closed,
}
FINAL = {CaseState.closed, CaseState.withdrawn}
FIRST_NAMES = ["Sam", "Alex", "Jo", "Priya", "Mohammed", "Chloe", "Kwame", "Aisha", "Tom", "Zara"]
SURNAMES = ["Khan", "Smith", "Okafor", "Jones", "Patel", "Brown", "Nowak", "Ali", "Taylor", "Wu"]


# --- Filling the database -----------------------------------------------------------------


def _weighted(rng: random.Random, table: list[tuple[CaseState, int]]) -> CaseState:
    states, weights = zip(*table, strict=True)
    return rng.choices(states, weights)[0]


def _sqlite_datetime(value: dt.datetime) -> str:
    text = value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ")
    return text if len(text) > 19 else text + ".000000"


def _sqlite_converter(sample: Any) -> Callable[[Any], Any] | None:
    """How SQLAlchemy itself stores a value of this type on SQLite (naive UTC text, ISO
    dates, JSON text, 0/1), chosen once per column rather than tested per value."""
    if isinstance(sample, dt.datetime):
        return _sqlite_datetime
    if isinstance(sample, dt.date):
        return dt.date.isoformat
    if isinstance(sample, dict):
        return json.dumps
    if isinstance(sample, bool):
        return int
    return None


def bulk_insert(conn: Connection, table: str, rows: list[dict[str, Any]]) -> None:
    """Insert rows at driver speed: ``executemany`` on SQLite, ``COPY`` on PostgreSQL.

    The ORM's per-value type processing would make filling 600,000 rows take a
    minute; the bench measures the web app, not the fill.
    """
    if not rows:
        return
    columns = list(rows[0])
    if conn.dialect.name == "postgresql":
        from psycopg.types.json import Jsonb

        raw = conn.connection.driver_connection
        assert raw is not None
        with (
            raw.cursor() as cursor,
            cursor.copy(  # type: ignore[attr-defined]
                f"COPY {table} ({', '.join(columns)}) FROM STDIN"
            ) as copy,
        ):
            for row in rows:
                copy.write_row([Jsonb(v) if isinstance(v, dict) else v for v in row.values()])
        return
    converters = [
        _sqlite_converter(next((r[c] for r in rows if r[c] is not None), None)) for c in columns
    ]
    values = [list(row.values()) for row in rows]
    for i, convert in enumerate(converters):
        if convert is not None:
            for v in values:
                if v[i] is not None:
                    v[i] = convert(v[i])
    placeholders = ", ".join("?" for _ in columns)
    conn.exec_driver_sql(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})",
        [tuple(v) for v in values],
    )


def with_defaults(table: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with every column the fill does not set given its model's plain default.

    A column added later with a NOT NULL and a Python-side default (the family's
    address lines) would otherwise fail the driver-level insert, which skips the ORM.
    """
    missing = {}
    for column in table.columns:
        default = column.default
        if rows and column.name not in rows[0] and default is not None and default.is_scalar:
            value = default.arg
            missing[column.name] = getattr(value, "value", value)
    return [{**row, **missing} for row in rows] if missing else rows


def fill(engine: Engine, n_cases: int, now: dt.datetime, provider_ids: list[int]) -> list[str]:
    """Bulk-insert ``n_cases`` cases with a family contact, an open event and two clocks each.

    Returns the references of the open cases, which the case-page requests pick from.
    """
    rng = random.Random(SEED)
    today = now.date()
    open_refs: list[str] = []
    with engine.begin() as conn:
        for start in range(0, n_cases, BATCH):
            cases: list[dict[str, Any]] = []
            people: list[dict[str, Any]] = []
            events: list[dict[str, Any]] = []
            clocks: list[dict[str, Any]] = []
            allocations: list[dict[str, Any]] = []
            for i in range(start + 1, min(start + BATCH, n_cases) + 1):
                mediation = rng.random() < 0.8
                kind = CaseKind.mediation if mediation else CaseKind.disagreement
                state = _weighted(rng, MEDIATION_STATES if mediation else DISAGREEMENT_STATES)
                opened = now - dt.timedelta(days=rng.randint(1, 720), minutes=rng.randint(0, 600))
                provider = rng.choice(provider_ids) if state in WITH_PROVIDER else None
                reference = f"{'MED' if mediation else 'DR'}-{opened.year}-{i:06d}"
                if state not in FINAL:
                    open_refs.append(reference)
                cases.append(
                    {
                        "id": i,
                        "reference": reference,
                        "public_id": secrets.token_urlsafe(12),
                        "kind": kind.value,
                        "state": state.value,
                        "version": 3,
                        "intake_channel": "helpline" if rng.random() < 0.7 else "email",
                        "opened_at": opened,
                        "updated_at": opened + dt.timedelta(days=1),
                        "summary": "",
                        "child_name": "",
                        "decision_date": (opened - dt.timedelta(days=5)).date()
                        if mediation
                        else None,
                        "decision_type": "refuse_assessment" if mediation else None,
                        "health_care": False,
                        "health_only": False,
                        "placement_only": False,
                        "provider_id": provider,
                    }
                )
                people.append(
                    {
                        "case_id": i,
                        "role": "family",
                        "name": f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)} {i}",
                        "phone": f"+447911{i:06d}",
                        "email": f"family{i}@example.org",
                        "preferred_channels": "sms,email",
                        "sms_consent": True,
                    }
                )
                events.append(
                    {
                        "case_id": i,
                        "at": opened,
                        "actor": "bench:fill",
                        "event": "open",
                        "from_state": None,
                        "to_state": "requested",
                        "data": {"kind": kind.value},
                        "channel": "helpline",
                        "note": "",
                    }
                )
                if provider is not None:
                    allocations.append(
                        {
                            "case_id": i,
                            "provider_id": provider,
                            "status": "accepted",
                            "allocated_at": opened,
                            "allocated_by": "bench:fill",
                            "responded_at": opened + dt.timedelta(hours=4),
                            "responded_by": "bench:fill",
                            "note": "",
                            "override_reason": "",
                        }
                    )
                # One clock already met, one running (or cancelled when the case ended).
                first_kind = (
                    DeadlineKind.contact_adviser if mediation else DeadlineKind.dr_advice
                ).value
                running_kind = (
                    DeadlineKind.mediation_meeting if mediation else DeadlineKind.dr_meeting
                ).value
                due = today + dt.timedelta(days=rng.randint(-10, 60))
                for kind_value, status, due_date in (
                    (first_kind, "met", opened.date() + dt.timedelta(days=30)),
                    (running_kind, "cancelled" if state in FINAL else "open", due),
                ):
                    due_at = dt.datetime.combine(due_date, dt.time(16, 59), tzinfo=dt.UTC)
                    clocks.append(
                        {
                            "case_id": i,
                            "kind": kind_value,
                            "due_date": due_date,
                            "due_at": due_at,
                            "status": status,
                            "citation": "bench",
                            "explanation": f"bench clock due {due_date.isoformat()}",
                            "opened_at": opened,
                            "closed_at": None if status == "open" else opened,
                            "closed_reason": "",
                            "next_action_at": due_at if status == "open" else None,
                        }
                    )
            for model, batch in (
                (Case, cases),
                (Person, people),
                (CaseEvent, events),
                (Deadline, clocks),
                (Allocation, allocations),
            ):
                table = model.__table__  # type: ignore[attr-defined]
                bulk_insert(conn, table.name, with_defaults(table, batch))
        year = now.year
        for prefix in ("MED", "DR"):  # so a case opened during the run gets a fresh number
            conn.execute(insert(ReferenceCounter), [{"prefix": prefix, "year": year, "last": 0}])
        if engine.dialect.name == "postgresql":
            conn.execute(
                text("SELECT setval(pg_get_serial_sequence('cases', 'id'), :n)"), {"n": n_cases}
            )
    # Planner statistics for the filled tables only: a bare ANALYZE on PostgreSQL would
    # walk every schema in the database, other people's included.
    tables = ", ".join(m.__tablename__ for m in (Case, Person, CaseEvent, Deadline, Allocation))  # type: ignore[attr-defined]
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"ANALYZE {tables}"))
        else:
            conn.execute(text("ANALYZE"))
        conn.commit()
    return open_refs


# --- The server and the clients ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of the server and its worker processes, from Linux /proc.

    Per request, it is the figure the machine's other load does not inflate much:
    wall-clock latency on a shared 2-core box also measures everyone else's work.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    total, stack = 0, [pid]
    try:
        while stack:
            current = stack.pop()
            stat = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(stat[11]) + int(stat[12])  # utime, stime (fields 14 and 15)
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
            stack.extend(int(c) for c in children)
    except (OSError, ValueError, IndexError):
        return None
    return total / ticks


@contextmanager
def serve(database_url: str, workers: int) -> Iterator[tuple[str, int]]:
    """The real app under uvicorn in a subprocess; yields (base URL, pid) once /health answers."""
    port = free_port()
    # Served as production serves it: `casework serve` (its --workers spread connections
    # and keep TCP_NODELAY), templates not re-checked on disk on every render.
    env = {
        **os.environ,
        "CASEWORK_DATABASE_URL": with_application_name(database_url),
        "CASEWORK_ENVIRONMENT": "production",
        "CASEWORK_SECRET_KEY": secrets.token_urlsafe(48),
        "CASEWORK_PUBLIC_URL": "https://casework.bench.example",
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    command = [
        sys.executable,
        "-m",
        "casework.cli",
        "serve",
        "--no-scheduler",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    # Its own process group, signalled as a whole (as Ctrl-C would be): killing only the
    # parent of `--workers N` left its workers running, still answering a backlog and
    # holding SQLite's write lock while the next server started.
    # The server's own log goes to a file, kept and shown only when it holds a traceback:
    # a 500 under load must be explainable after the run, not lost with the process.
    log_fd, log_path = tempfile.mkstemp(prefix="casework-bench-serve-", suffix=".log")
    proc = subprocess.Popen(
        command,
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log_fd,
        start_new_session=True,
    )
    os.close(log_fd)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"uvicorn exited with {proc.returncode}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the app did not answer /health within 90 s")
            time.sleep(0.2)
        yield base, proc.pid
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group
        proc.wait()
        _show_server_errors(log_path)


def _show_server_errors(log_path: str) -> None:
    """Print the server's tracebacks (keeping its log) or remove a log with none."""
    with open(log_path, encoding="utf-8", errors="replace") as log:
        text = log.read()
    if "Traceback" not in text:
        os.unlink(log_path)
        return
    last = text[text.rindex("Traceback") :].splitlines()[-12:]
    print(f"  the server logged {text.count('Traceback')} traceback(s); log kept: {log_path}")
    print("\n".join(f"    {line}" for line in last))


@dataclass
class Result:
    name: str
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    cpu_seconds: float | None = None
    note: str = ""

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        return ordered[index] * 1000

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)


async def measure(
    base: str,
    server_pid: int,
    name: str,
    urls: list[str],
    headers: dict[str, str],
    *,
    clients: int,
    requests: int,
    max_seconds: float,
) -> Result:
    """``clients`` concurrent users each sending one request after another."""
    result = Result(name)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=30, follow_redirects=False
    ) as client:
        probe = await client.get(urls[0])
        if probe.status_code == 404:
            result.note = "page not available (404)"
            return result
        if 300 <= probe.status_code < 400:
            where = probe.headers.get("location", "?")
            result.note = f"page not available (redirects to {where})"
            return result
        for url in urls[: min(len(urls), clients)]:  # warm up connections and caches
            await client.get(url)
        rng = random.Random(SEED)
        sent = 0
        stop_at = time.monotonic() + max_seconds

        async def user() -> None:
            nonlocal sent
            while sent < requests and time.monotonic() < stop_at:
                sent += 1
                url = urls[rng.randrange(len(urls))]
                t0 = time.perf_counter()
                try:
                    status = (await client.get(url)).status_code
                except httpx.HTTPError:
                    status = 0  # connection dropped by the server: counted, not fatal
                result.latencies.append(time.perf_counter() - t0)
                result.statuses[status] = result.statuses.get(status, 0) + 1

        cpu_before = server_cpu_seconds(server_pid)
        started = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(clients)))
        result.seconds = time.perf_counter() - started
        cpu_after = server_cpu_seconds(server_pid)
        if cpu_before is not None and cpu_after is not None:
            result.cpu_seconds = cpu_after - cpu_before
    return result


def report(label: str, results: list[Result], clients: int) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n[{label}] {clients} concurrent clients; load average now {load} (1, 5, 15 min)")
    print(
        f"  {'route':<34}{'requests':>9}{'ok':>7}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}"
        f"{'p99 ms':>9}{'CPU ms/req':>12}   p95 < {TARGET_P95_MS:.0f} ms"
    )
    for r in results:
        if r.note:
            print(f"  {r.name:<34}{r.note}")
            continue
        n = len(r.latencies)
        rps = n / r.seconds if r.seconds else 0.0
        p95 = r.pct(95)
        verdict = (
            "n/a (baseline)"
            if r.name.startswith("GET /health")
            else ("yes" if p95 < TARGET_P95_MS else "NO")
        )
        cpu = f"{r.cpu_seconds / n * 1000:.1f}" if r.cpu_seconds is not None and n else "?"
        errors = {s: c for s, c in r.statuses.items() if not 200 <= s < 300}
        extra = f"   non-2xx (0 = dropped): {errors}" if errors else ""
        print(
            f"  {r.name:<34}{n:>9}{r.ok:>7}{rps:>9.1f}"
            f"{r.pct(50):>9.1f}{p95:>9.1f}{r.pct(99):>9.1f}{cpu:>12}   {verdict}{extra}"
        )
    print(
        "  Closed loop: each client sends again as soon as it is answered, so latency is about"
        " clients x CPU ms/req / free cores;\n  CPU ms/req is the server's own CPU time per"
        " request (less inflated by other load), /health the stack's floor."
    )


# --- Open loop and the workers' throughput ---------------------------------------------------

OPEN_LOOP_RATE = 100.0  # requests a second, launched on a fixed schedule
OPEN_LOOP_P95_MS = 50.0
WORKERS_RATIO_TARGET = 1.7


@dataclass
class OpenLoop:
    """An open-loop run: each request's latency counted from the moment it was DUE.

    Requests are launched on a fixed schedule whether or not earlier ones were
    answered, so a server that falls behind shows it in the latency (no coordinated
    omission, which a closed loop hides by waiting before it sends again).
    """

    rate: float
    planned: int
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    cpu_seconds: float | None = None
    late_launches: int = 0  # the client itself fell behind its schedule by > 10 ms

    def pct(self, p: float) -> float:
        return Result("", self.latencies).pct(p) if self.latencies else float("nan")


async def open_loop(
    base: str,
    server_pid: int,
    mix: list[tuple[list[str], dict[str, str], int]],
    *,
    rate: float = OPEN_LOOP_RATE,
    seconds: float = 10.0,
) -> OpenLoop:
    """``rate`` requests a second for ``seconds``, drawn from ``mix`` (urls, headers, weight)."""
    planned = int(rate * seconds)
    result = OpenLoop(rate=rate, planned=planned)
    rng = random.Random(SEED)
    weights = [w for _, _, w in mix]
    where = urlsplit(base)
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def get(url: str, headers: dict[str, str]) -> int:
        """One GET on an idle keep-alive connection (or a new one): plain HTTP/1.1 on
        asyncio streams, cheap enough that the client keeps its schedule on 2 cores.

        A kept connection the server has closed meanwhile (its keep-alive timeout) is
        not the server failing: the request is sent once more on a new connection, as
        a browser does."""
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = f"GET {url} HTTP/1.1\r\nHost: {where.netloc}\r\n{extra}\r\n".encode()
        reused = bool(idle)
        reader, writer = (
            idle.pop() if idle else await asyncio.open_connection(where.hostname, where.port)
        )
        try:
            writer.write(request)
            raw = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            if not reused:
                raise
            reader, writer = await asyncio.open_connection(where.hostname, where.port)
            writer.write(request)
            raw = await reader.readuntil(b"\r\n\r\n")
        head = raw.decode("latin-1").split("\r\n")
        sizes = [x.split(":", 1)[1] for x in head if x.lower().startswith("content-length:")]
        await reader.readexactly(int(sizes[0]) if sizes else 0)
        idle.append((reader, writer))
        return int(head[0].split()[1])

    for urls, headers, _ in mix:  # warm up: connections, caches, statement caches
        for url in urls[:5]:
            await get(url, headers)

    async def one(due: float, url: str, headers: dict[str, str]) -> None:
        try:
            status = await asyncio.wait_for(get(url, headers), timeout=30)
            if not 200 <= status < 300:
                result.errors[str(status)] = result.errors.get(str(status), 0) + 1
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
            key = type(exc).__name__
            result.errors[key] = result.errors.get(key, 0) + 1
        result.latencies.append(time.perf_counter() - due)

    cpu_before = server_cpu_seconds(server_pid)
    started = time.perf_counter()
    tasks = []
    for i in range(planned):
        due = started + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.01:
            result.late_launches += 1
        urls, headers, _ = rng.choices(mix, weights)[0]
        tasks.append(asyncio.create_task(one(due, urls[rng.randrange(len(urls))], headers)))
    await asyncio.gather(*tasks)
    result.seconds = time.perf_counter() - started
    cpu_after = server_cpu_seconds(server_pid)
    if cpu_before is not None and cpu_after is not None:
        result.cpu_seconds = cpu_after - cpu_before
    for _, writer in idle:
        writer.close()
    return result


def worker_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each process under ``pid`` (itself included), by pid."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            stat = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            out[current] = (int(stat[11]) + int(stat[12])) / ticks
            stack.extend(
                int(c) for c in Path(f"/proc/{current}/task/{current}/children").read_text().split()
            )
        except (OSError, ValueError, IndexError):
            continue
    return out


# One client process: ``clients`` keep-alive connections sending back to back for
# ``seconds``; prints how many were answered 200 and for how long it sent. Plain
# HTTP/1.1 on asyncio streams, not httpx: on 2 cores the clients share the machine with
# the workers, and httpx's few hundred microseconds a request would be measured as the
# server's. Run with ``python -c`` so it needs nothing importable.
_CLIENT = """
import asyncio, json, random, sys, time
from urllib.parse import urlsplit
base, urls, seconds, clients, seed = json.loads(sys.argv[1])
where = urlsplit(base)
async def run():
    done = 0
    rng = random.Random(seed)
    started = time.monotonic()
    stop = started + seconds
    async def user():
        nonlocal done
        reader, writer = await asyncio.open_connection(where.hostname, where.port)
        while time.monotonic() < stop:
            url, headers = urls[rng.randrange(len(urls))]
            extra = "".join(f"{k}: {v}\\r\\n" for k, v in headers.items())
            line = f"GET {url} HTTP/1.1\\r\\nHost: {where.netloc}\\r\\n"
            writer.write(f"{line}{extra}\\r\\n".encode())
            try:
                head = await reader.readuntil(b"\\r\\n\\r\\n")
            except (asyncio.IncompleteReadError, ConnectionError):  # closed: open another
                reader, writer = await asyncio.open_connection(where.hostname, where.port)
                continue
            lines = head.decode("latin-1").split("\\r\\n")
            sizes = [x.split(":", 1)[1] for x in lines if x.lower().startswith("content-length:")]
            await reader.readexactly(int(sizes[0]))
            if lines[0].split()[1] == "200":
                done += 1
        writer.close()
    await asyncio.gather(*(user() for _ in range(clients)))
    return done, time.monotonic() - started
print(*asyncio.run(run()))
"""


# The name the served app's PostgreSQL connections carry, so the run can read the CPU
# time of its own database backends (and not of whatever else uses the server).
BENCH_APPLICATION = "casework-bench-web"


def with_application_name(database_url: str) -> str:
    """``database_url`` with :data:`BENCH_APPLICATION` as its connections' name (PostgreSQL)."""
    if not database_url.startswith("postgresql"):
        return database_url
    separator = "&" if "?" in database_url else "?"
    return f"{database_url}{separator}application_name={BENCH_APPLICATION}"


def database_cpu() -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving the bench's app, by pid (from /proc:
    the server runs on this machine). Empty when there is none or it cannot be read."""
    try:
        import psycopg

        url = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url, connect_timeout=3) as conn:
            pids = [
                int(row[0])
                for row in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                    (BENCH_APPLICATION,),
                )
            ]
    except Exception:  # no server, no rights: the figure is left out, not the run
        return {}
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for pid in pids:
        with suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = (int(stat[11]) + int(stat[12])) / ticks
    return out


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all cores, every process) since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass
class Throughput:
    """One saturation run, with where the machine's CPU went meanwhile.

    On 2 cores the workers share the machine with the database, the clients and
    anything else running: 2 workers can only double 1 worker's rate if the rest costs
    nothing. The CPU per request of each part says what the ratio could be here."""

    workers: int
    requests: int
    seconds: float
    cpu_by_process: dict[int, float]
    client_cpu: float = 0.0
    database_cpu: float | None = None
    machine_busy: float = 0.0
    wall: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def per_request_ms(self, cpu_seconds: float) -> float:
        return cpu_seconds / self.requests * 1000 if self.requests else 0.0

    @property
    def server_cpu(self) -> float:
        return sum(self.cpu_by_process.values())

    @property
    def others_cpu(self) -> float:
        """CPU seconds of everything else on the machine meanwhile."""
        ours = self.server_cpu + self.client_cpu + (self.database_cpu or 0.0)
        return max(0.0, self.machine_busy - ours)


def throughput(
    database_url: str,
    workers: int,
    urls: list[tuple[str, dict[str, str]]],
    *,
    seconds: float = 8.0,
    client_processes: int = 2,
    clients: int = 8,
) -> Throughput:
    """Requests a second served by ``casework serve --workers N``, saturated by clients in
    their own processes (one Python client process cannot keep two workers busy)."""
    with serve(database_url, workers) as (base, pid):
        for url, headers in urls[:20]:  # warm each worker's caches a little
            httpx.get(base + url, headers=headers, timeout=30)
        before = worker_cpu(pid)
        database_before = database_cpu()
        machine_before = machine_busy_seconds()
        children_before = os.times()
        started = time.perf_counter()
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _CLIENT,
                    json.dumps([base, urls, seconds, clients, SEED + i]),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(client_processes)
        ]
        # Each client times its own run (not its interpreter's start): requests/s summed.
        answers = [proc.communicate(timeout=seconds + 60)[0].split() for proc in procs]
        after = worker_cpu(pid)
        database_after = database_cpu()
        machine_after = machine_busy_seconds()
        children_after = os.times()
        wall = time.perf_counter() - started
    total = sum(int(done) for done, _ in answers)
    rate = sum(int(done) / float(took) for done, took in answers)
    cpu = {p: after[p] - before.get(p, 0.0) for p in after}
    # The clients are this process's children that ended meanwhile (the server ends later).
    client = (children_after.children_user + children_after.children_system) - (
        children_before.children_user + children_before.children_system
    )
    database = (
        sum(t - database_before.get(p, 0.0) for p, t in database_after.items())
        if database_after
        else None
    )
    return Throughput(
        workers,
        total,
        total / rate if rate else 0.0,
        cpu,
        client_cpu=client,
        database_cpu=database,
        machine_busy=machine_after - machine_before,
        wall=wall,
    )


def page_mix(sample: list[str], page: dict[str, str], api: dict[str, str]
             ) -> list[tuple[list[str], dict[str, str], int]]:  # fmt: skip
    """The open-loop mix: case pages most, then the dashboard, then the API."""
    return [
        ([f"/cases/{r}" for r in sample], page, 5),
        (["/"], page, 3),
        (["/api/v1/cases"], api, 1),
        ([f"/api/v1/cases/{r}" for r in sample], api, 1),
    ]


def report_open_loop(label: str, r: OpenLoop) -> None:
    n = len(r.latencies)
    cpu = f"{r.cpu_seconds / n * 1000:.1f}" if r.cpu_seconds is not None and n else "?"
    verdict = "yes" if r.pct(95) < OPEN_LOOP_P95_MS and not r.errors else "NO"
    print(
        f"\n[{label}] open loop: {r.rate:.0f} requests/s launched on schedule for"
        f" {r.seconds:.1f} s (case page 5 : dashboard 3 : API list 1 : API case 1)\n"
        f"  sent {r.planned}, answered {n - sum(r.errors.values())}, errors {r.errors or 0},"
        f" client late launches {r.late_launches}\n"
        f"  p50 {r.pct(50):.1f} ms   p95 {r.pct(95):.1f} ms   p99 {r.pct(99):.1f} ms"
        f"   server CPU {cpu} ms/req   p95 < {OPEN_LOOP_P95_MS:.0f} ms: {verdict}"
    )


def report_throughput(label: str, one: Throughput, two: Throughput) -> None:
    ratio = two.rate / one.rate if one.rate else 0.0
    print(f"\n[{label}] throughput, clients saturating `casework serve --workers N`:")
    cores = os.cpu_count() or 1
    for t in (one, two):
        busy = sorted((round(c, 1) for c in t.cpu_by_process.values() if c > 0.05), reverse=True)
        database = (
            f"database {t.per_request_ms(t.database_cpu):.2f}, "
            if t.database_cpu is not None
            else ""
        )
        share = t.machine_busy / (t.wall * cores) * 100 if t.wall else 0.0
        print(
            f"  --workers {t.workers}: {t.rate:7.1f} req/s ({t.requests} in {t.seconds:.1f} s);"
            f" CPU s by process {busy}\n"
            f"      CPU ms per request: server {t.per_request_ms(t.server_cpu):.2f}, {database}"
            f"clients {t.per_request_ms(t.client_cpu):.2f}; machine {share:.0f}% busy, other"
            f" processes {t.per_request_ms(t.others_cpu):.2f} ms per request"
        )
    verdict = "yes" if ratio >= WORKERS_RATIO_TARGET else "NO"
    print(f"  ratio 2 workers / 1 worker: {ratio:.2f}x   >= {WORKERS_RATIO_TARGET}x: {verdict}")
    # What the cores allow at these costs, nothing else running: 1 worker at most one
    # core's worth of its own CPU per request (its GIL), 2 workers every core shared by
    # their server, database and client CPU per request.
    ours = two.server_cpu + two.client_cpu + (two.database_cpu or 0.0)
    if ours and one.server_cpu and one.requests and two.requests:
        ceiling = cores * (one.server_cpu / one.requests) / (ours / two.requests)
        print(
            f"  at these CPU costs per request the {cores} cores allow at most {ceiling:.2f}x"
            " (2 workers on every core with their database and clients; 1 on one core)"
        )


# --- One database -------------------------------------------------------------------------


def prepare(engine: Engine, n_cases: int, now: dt.datetime) -> tuple[list[str], str, str]:
    """Migrate, fill, and make an adviser with an API token and a signed-in session."""
    settings = load_settings()
    upgrade(engine)
    with session_scope(engine) as session:
        providers = cases.sync_providers(session, settings)
        provider_ids = [p.id for p in providers if p.id is not None]
    started = time.perf_counter()
    refs = fill(engine, n_cases, now, provider_ids)
    took = time.perf_counter() - started
    print(f"  filled {n_cases:,} cases (+ people, events, clocks, allocations) in {took:.1f} s")
    with session_scope(engine) as session:
        user = auth.create_user(session, email="bench.adviser@example.org", role="adviser", now=now)
        token = auth.create_api_token(session, user, name="bench", now=now)
        cookie = auth.start_session(session, user, now=now).token
    return refs, token, cookie


@dataclass
class Figures:
    """Everything one database's run measured."""

    closed: list[Result]
    open_loop: OpenLoop | None = None
    one_worker: Throughput | None = None
    two_workers: Throughput | None = None

    @property
    def workers_ratio(self) -> float | None:
        if self.one_worker is None or self.two_workers is None or not self.one_worker.rate:
            return None
        return self.two_workers.rate / self.one_worker.rate


def run_one(label: str, url: str, engine: Engine, args: argparse.Namespace) -> list[Result]:
    """The closed-loop figures of one database (the interface ``bench/all.py`` first used)."""
    return run_all(label, url, engine, args).closed


def run_all(label: str, url: str, engine: Engine, args: argparse.Namespace) -> Figures:
    """Closed loop per route, then the open-loop mix, then 1 worker vs 2, on one database."""
    now = dt.datetime.now(dt.UTC)
    print(f"\n== {label}: {engine.url.render_as_string(hide_password=True)}")
    refs, token, cookie = prepare(engine, args.cases, now)
    engine.dispose()
    sample = random.Random(SEED).sample(refs, min(500, len(refs)))
    api = {"Authorization": f"Bearer {token}"}
    page = {"Cookie": f"{SESSION_COOKIE}={cookie}"}
    plan: list[tuple[str, list[str], dict[str, str]]] = [
        ("GET /health", ["/health"], {}),
        ("GET / (dashboard)", ["/"], page),
        ("GET /cases/{ref} (case page)", [f"/cases/{r}" for r in sample], page),
        ("GET /api/v1/cases", ["/api/v1/cases"], api),
        ("GET /api/v1/cases/{ref}", [f"/api/v1/cases/{r}" for r in sample], api),
        ("GET /health (again, after)", ["/health"], {}),
    ]
    figures = Figures([])
    open_rate = float(getattr(args, "open_rate", OPEN_LOOP_RATE))
    # The servers run without their scheduler (it would sweep and send mid-run), so its
    # SQLite checkpoint runs here instead, on a thread of its own as it does in service.
    with _common.scheduler_checkpoints(engine) as checkpoints:
        with serve(url, args.workers) as (base, pid):
            for name, urls, headers in plan:
                figures.closed.append(
                    asyncio.run(
                        measure(
                            base,
                            pid,
                            name,
                            urls,
                            headers,
                            clients=args.clients,
                            requests=args.requests,
                            max_seconds=args.max_seconds,
                        )
                    )
                )
        report(label, figures.closed, args.clients)
        if open_rate > 0:
            # As production runs it on this machine: one worker per core.
            open_workers = int(getattr(args, "open_workers", os.cpu_count() or 1))
            with serve(url, open_workers) as (base, pid):
                figures.open_loop = asyncio.run(
                    open_loop(
                        base,
                        pid,
                        page_mix(sample, page, api),
                        rate=open_rate,
                        seconds=float(getattr(args, "open_seconds", 10.0)),
                    )
                )
            report_open_loop(f"{label}, --workers {open_workers}", figures.open_loop)
        seconds = float(getattr(args, "throughput_seconds", 8.0))
        if seconds > 0:
            mix = [(f"/cases/{r}", page) for r in sample[:100]] + [("/", page)] * 60
            figures.one_worker = throughput(url, 1, mix, seconds=seconds)
            figures.two_workers = throughput(url, 2, mix, seconds=seconds)
            report_throughput(label, figures.one_worker, figures.two_workers)
    if engine.dialect.name == "sqlite":
        print(f"\n[{label}] the scheduler's checkpoints during these runs: {checkpoints.text()}")
    return figures


@contextmanager
def sqlite_database() -> Iterator[tuple[str, Engine]]:
    folder = Path(tempfile.mkdtemp(prefix="casework-bench-"))
    url = f"sqlite:///{folder / 'casework.db'}"
    engine = make_engine(url)
    try:
        yield url, engine
    finally:
        engine.dispose()
        shutil.rmtree(folder, ignore_errors=True)


def postgres_unavailable() -> str | None:
    return _common.postgres_unavailable(POSTGRES_URL)


@contextmanager
def postgres_database() -> Iterator[tuple[str, Engine]]:
    with _common.postgres_schema(server=POSTGRES_URL) as url:
        engine = make_engine(url)
        try:
            yield url, engine
        finally:
            engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=400, help="per route")
    parser.add_argument("--max-seconds", type=float, default=10.0, help="per route, at most")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--open-rate", type=float, default=OPEN_LOOP_RATE, help="open-loop requests/s (0: skip)"
    )
    parser.add_argument("--open-seconds", type=float, default=10.0)
    parser.add_argument(
        "--open-workers", type=int, default=os.cpu_count() or 1, help="workers for the open loop"
    )
    parser.add_argument(
        "--throughput-seconds",
        type=float,
        default=8.0,
        help="each of the 1- and 2-worker saturation runs (0: skip)",
    )
    args = parser.parse_args()
    # A SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the finally blocks stop
    # uvicorn and drop the PostgreSQL schema instead of leaving them behind.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    print(
        f"casework web bench: {args.cases:,} cases, {args.clients} concurrent clients,"
        f" {args.workers} uvicorn worker(s), {os.cpu_count()} CPUs;"
        f" target p95 < {TARGET_P95_MS:.0f} ms"
    )
    started = time.perf_counter()
    if args.db in ("sqlite", "both"):
        with sqlite_database() as (url, engine):
            run_all("SQLite", url, engine, args)
    if args.db in ("postgresql", "both"):
        reason = postgres_unavailable()
        if reason:
            print(f"\n== PostgreSQL: skipped, no server at {POSTGRES_URL} ({reason})")
        else:
            with postgres_database() as (url, engine):
                run_all("PostgreSQL", url, engine, args)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
