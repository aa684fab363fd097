"""Benchmark: the timeliness and SEN2 reports over 100,000 cases and 600,000 clocks.

On SQLite (a file in a temp dir, WAL via ``make_engine``) and on PostgreSQL (a
private schema, created and dropped here; skipped with a message when no server
answers). The caseload is built with bulk inserts (``executemany`` on the raw
sqlite3 connection, ``COPY`` on PostgreSQL): 100,000 cases over 2025-2026 across
the five providers, six clocks each with a seeded mix of outcomes (met on time,
met late: a ``done_on`` after the due date and the use cases' "(late: done ...)"
marker; missed and still outstanding, missed then stopped, cancelled, open), and
meetings, closing outcomes and certificates for the SEN2 figures.

For each report, in the same run and interleaved: (a) the report as casework runs it
(``casework.reports.timeliness`` over both years: counts per clock and provider plus
the working-day lateness medians; ``casework.reports.sen2`` for 2026), and (b) one
hand-written SQL query for the same aggregate (the counts per clock and provider;
the SEN2 categories) on the raw driver connection. "timeliness counts only" times
the report's own counting query alone against (b), since (b) works out no lateness.
Best and median of the repeats, and the ratio of the medians. Targets: (a) under
500 ms, and within 2x of (b).

Run: ``.venv/bin/python bench/reports.py [--repeats 5] [--backend sqlite|postgresql|both]``
(PostgreSQL URL from ``CASEWORK_TEST_POSTGRES_URL``, as the tests use).
"""

from __future__ import annotations

# isort: off
import _common  # first: it takes this folder off sys.path before anything else loads
# isort: on

import argparse
import datetime as dt
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, text

from casework import reports
from casework.cases import sync_providers
from casework.config import load_settings
from casework.db import make_engine, session_scope, upgrade
from casework.models import MISSED_OUTSTANDING
from casework.reports.queries import timeliness_counts_query

CASES = 100_000
CLOCKS_PER_CASE = 6
AS_OF = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
KINDS = [
    "contact_adviser",
    "certificate_after_decline",
    "mediation_meeting",
    "certificate_after_meeting",
    "agreement_implemented",
    "appeal",
    "dr_advice",
    "allocation_acceptance",
]
TIMELINESS_TARGET_MS = 500.0
RATIO_TARGET = 2.0

POSTGRES_URL = _common.POSTGRES_URL

CASE_COLUMNS = (
    "id, reference, public_id, kind, state, version, intake_channel, opened_at, updated_at,"
    " summary, child_name, decision_type, health_care, health_only, placement_only,"
    " provider_id, meeting_held_on, meeting_outcome, certificate_on, certificate_type,"
    " close_outcome"
)
DEADLINE_COLUMNS = (
    "id, case_id, kind, due_date, due_at, status, citation, explanation, opened_at,"
    " closed_at, closed_reason, done_on"
)

# The hand-written aggregates. {ts} renders a bound instant in each dialect's storage.
HAND_TIMELINESS = """
SELECT d.kind, c.provider_id,
  SUM(CASE WHEN d.status = 'met' THEN 1 ELSE 0 END),
  SUM(CASE WHEN d.status = 'missed' AND d.done_on IS NOT NULL THEN 1 ELSE 0 END),
  SUM(CASE WHEN (d.status = 'missed' AND d.done_on IS NULL)
            OR (d.status = 'open' AND d.due_at <= :as_of) THEN 1 ELSE 0 END),
  SUM(CASE WHEN d.status = 'open' AND d.due_at > :as_of THEN 1 ELSE 0 END),
  SUM(CASE WHEN d.status = 'cancelled' THEN 1 ELSE 0 END)
FROM deadlines d JOIN cases c ON c.id = d.case_id
WHERE d.due_date BETWEEN :first AND :last AND d.kind <> 'scheduled_meeting'
GROUP BY d.kind, c.provider_id
"""
HAND_SEN2 = """
SELECT CASE WHEN close_outcome = 'appeal_lodged' THEN 'followed_by_appeal'
            WHEN close_outcome = 'no_appeal' THEN 'no_appeal'
            ELSE 'outcome_unknown' END AS category, COUNT(*)
FROM cases
WHERE kind = 'mediation' AND meeting_held_on BETWEEN :first AND :last
GROUP BY 1
"""


def build_rows(provider_ids: list[int]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    rng = random.Random(20261130)
    start = dt.datetime(2025, 1, 1, 9, tzinfo=dt.UTC)
    cases, clocks = [], []
    clock_id = 0
    for i in range(1, CASES + 1):
        opened = start + dt.timedelta(minutes=rng.randrange(0, 700 * 24 * 60))
        kind = "mediation" if rng.random() < 0.85 else "disagreement"
        held = opened.date() + dt.timedelta(days=rng.randrange(10, 60))
        has_meeting = kind == "mediation" and rng.random() < 0.4 and held <= AS_OF.date()
        outcome = rng.choice(["appeal_lodged", "no_appeal", "window_ended", None])
        cases.append(
            (
                i,
                f"MED-{opened.year}-{i:06d}",
                uuid.uuid4().hex[:16],
                kind,
                "closed" if outcome else "mediating",
                1,
                rng.choice(["helpline", "email"]),
                opened,
                opened,
                "",
                "",
                rng.choice(["refuse_assessment", "refuse_plan", "plan_contents"]),
                False,
                False,
                False,
                rng.choice(provider_ids),
                held if has_meeting else None,
                rng.choice(["agreement", "partial", "none"]) if has_meeting else None,
                held + dt.timedelta(days=3) if has_meeting else None,
                "mediation_held" if has_meeting else None,
                outcome,
            )
        )
        for _ in range(CLOCKS_PER_CASE):
            clock_id += 1
            due = opened.date() + dt.timedelta(days=rng.randrange(1, 90))
            due_at = dt.datetime.combine(due + dt.timedelta(days=1), dt.time(0), tzinfo=dt.UTC)
            roll = rng.random()
            closed_reason = "done"
            done: dt.date | None = None  # the day the act was done, as the use cases store it
            if due_at > AS_OF and roll < 0.5:
                status, closed_reason = "open", ""
            elif roll < 0.70:
                status = "met"
                done = due - dt.timedelta(days=rng.randrange(0, 5))
            elif roll < 0.80:
                done = due + dt.timedelta(days=rng.randrange(1, 12))
                status, closed_reason = "missed", f"done (late: done {done.isoformat()})"
            elif roll < 0.85:
                status, closed_reason = "missed", MISSED_OUTSTANDING
            elif roll < 0.88:
                status, closed_reason = "missed", f"{MISSED_OUTSTANDING}; then case closed"
            elif roll < 0.95:
                status, closed_reason = "cancelled", "case closed"
            else:
                status, closed_reason = "open", ""
            clocks.append(
                (
                    clock_id,
                    i,
                    rng.choice(KINDS),
                    due,
                    due_at,
                    status,
                    "bench",
                    "bench",
                    opened,
                    None if status == "open" else due_at,
                    closed_reason,
                    done,
                )
            )
    return cases, clocks


def _sqlite_value(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        return v.astimezone(dt.UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, bool):
        return int(v)
    return v


def load_sqlite(
    engine: Engine, cases: list[tuple[Any, ...]], clocks: list[tuple[Any, ...]]
) -> None:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        marks = ", ".join("?" * len(cases[0]))
        cur.executemany(
            f"INSERT INTO cases ({CASE_COLUMNS}) VALUES ({marks})",
            [tuple(_sqlite_value(v) for v in row) for row in cases],
        )
        marks = ", ".join("?" * len(clocks[0]))
        cur.executemany(
            f"INSERT INTO deadlines ({DEADLINE_COLUMNS}) VALUES ({marks})",
            [tuple(_sqlite_value(v) for v in row) for row in clocks],
        )
        raw.commit()
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()


def load_postgresql(
    engine: Engine, cases: list[tuple[Any, ...]], clocks: list[tuple[Any, ...]]
) -> None:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for table, columns, rows in (
            ("cases", CASE_COLUMNS, cases),
            ("deadlines", DEADLINE_COLUMNS, clocks),
        ):
            with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in rows:
                    copy.write_row(row)
        raw.commit()
        cur.execute("ANALYZE cases")
        cur.execute("ANALYZE deadlines")
        raw.commit()
    finally:
        raw.close()


@contextmanager
def database(backend: str, tmp: str) -> Iterator[Engine | None]:
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{tmp}/bench-reports.db")
        upgrade(engine)
        yield engine
        engine.dispose()
        return
    reason = _common.postgres_unavailable()
    if reason is not None:
        print(f"postgresql: skipped, no server at {POSTGRES_URL} ({reason.split(':')[0]})")
        yield None
        return
    with _common.postgres_schema("bench_reports") as url:
        engine = make_engine(url)
        try:
            upgrade(engine)
            yield engine
        finally:
            engine.dispose()


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000.0


def run(
    backend: str, repeats: int, tmp: str, figures: list[tuple[str, float, float]] | None = None
) -> list[str]:
    """Prints each report's figures; ``figures`` also gets (report, median ms, hand-SQL ms)."""
    failures: list[str] = []
    settings = load_settings(environment="test")
    with database(backend, tmp) as engine:
        if engine is None:
            return failures
        with session_scope(engine) as session:
            sync_providers(session, settings)
            session.commit()
            provider_ids = [
                r[0] for r in session.execute(text("SELECT id FROM providers ORDER BY id"))
            ]
        started = time.perf_counter()
        cases, clocks = build_rows(provider_ids)
        (load_sqlite if backend == "sqlite" else load_postgresql)(engine, cases, clocks)
        print(
            f"\n{backend}: {len(cases):,} cases, {len(clocks):,} clocks loaded in"
            f" {time.perf_counter() - started:.1f} s"
        )
        both_years = reports.Period(dt.date(2025, 1, 1), dt.date(2026, 12, 31))
        year = reports.Period.year(2026)
        as_of: Any = _sqlite_value(AS_OF) if backend == "sqlite" else AS_OF
        with engine.connect() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None

            def hand(sql: str, params: dict[str, Any]) -> Callable[[], Any]:
                if backend == "sqlite":
                    q = sql
                    p = {k: _sqlite_value(v) for k, v in params.items()}
                else:
                    q = sql.replace("%", "%%")
                    for name in params:
                        q = q.replace(f":{name}", f"%({name})s")
                    p = params
                return lambda: raw.execute(q, p).fetchall()  # type: ignore[union-attr]

            pairs = {
                "timeliness counts only": (
                    lambda: conn.execute(timeliness_counts_query(both_years, None, AS_OF)).all(),
                    hand(
                        HAND_TIMELINESS,
                        {"as_of": as_of, "first": both_years.start, "last": both_years.end},
                    ),
                ),
                "timeliness": (
                    lambda: reports.timeliness(conn, both_years, as_of=AS_OF),
                    hand(
                        HAND_TIMELINESS,
                        {"as_of": as_of, "first": both_years.start, "last": both_years.end},
                    ),
                ),
                "sen2": (
                    lambda: reports.sen2(conn, year),
                    hand(HAND_SEN2, {"first": year.start, "last": year.end}),
                ),
            }
            for name, (ours, theirs) in pairs.items():
                ours()
                theirs()  # warm caches and statement caches on both sides
                a, b = [], []
                for _ in range(repeats):
                    a.append(timed(ours))
                    b.append(timed(theirs))
                ma, mb = statistics.median(a), statistics.median(b)
                ratio = ma / mb if mb else float("inf")
                if figures is not None:
                    figures.append((name, ma, mb))
                print(
                    f"  {name:<22} report: best {min(a):7.1f} ms, median {ma:7.1f} ms | "
                    f"hand-written SQL: best {min(b):7.1f} ms, median {mb:7.1f} ms |"
                    f" ratio {ratio:4.2f}"
                )
                if ma > TIMELINESS_TARGET_MS:
                    failures.append(
                        f"{backend} {name}: {ma:.0f} ms > {TIMELINESS_TARGET_MS:.0f} ms"
                    )
                if ratio > RATIO_TARGET:
                    failures.append(f"{backend} {name}: {ratio:.2f}x the hand-written query")
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="casework-bench-reports-") as tmp:
        for backend in backends:
            failures += run(backend, args.repeats, tmp)
    print(
        f"\ntargets: each report under {TIMELINESS_TARGET_MS:.0f} ms and within"
        f" {RATIO_TARGET:g}x of the hand-written query"
    )
    print("all targets met" if not failures else "missed: " + "; ".join(failures))


if __name__ == "__main__":
    main()
