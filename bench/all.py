"""Every bench in one run, and one table of where casework stands against its goals.

Each row puts casework's figure beside the plain-SQL or peer figure measured in the
same run, on the same database, so the ratio holds even on a noisy machine where
absolute times do not. The benches run one after another (transitions, sweep with
APScheduler's job-per-deadline catch-up as the peer, dispatch, reports, pages, crash
campaign) on SQLite and on PostgreSQL (a private schema, dropped afterwards; skipped
with a message when no server answers), then the calendar and the certificate PDF
render (against plain WeasyPrint) once.

``--quick`` uses small sizes (a few seconds a bench) to check the command works and
the figures are in the right place; its ratios are not the goals' ratios, which are
set at full size. The full run (the default) uses each bench's own sizes and takes
tens of minutes. Each bench's own report goes to the screen with ``--verbose``.

Run: ``.venv/bin/python bench/all.py [--quick] [--backend sqlite|postgresql|both]``.
The peers come from the ``bench`` extra: ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

# isort: off
import _common  # first: it takes this folder off sys.path before anything else loads
# isort: on

import argparse
import contextlib
import datetime as dt
import gc
import importlib.util
import io
import itertools
import os
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from sqlalchemy import Engine

from casework.config import load_settings


@dataclass(frozen=True)
class Sizes:
    transitions_cases: int
    sweep_deadlines: int
    sweep_repeats: int
    dispatch_notices: int
    dispatch_repeats: int
    sdk_sends: int
    report_cases: int
    report_repeats: int
    web_cases: int
    web_clients: int
    web_requests: int
    web_seconds: float
    crash_kills: int
    crash_notices: int
    calendar_calls: int
    document_renders: int


QUICK = Sizes(100, 100_000, 2, 200, 1, 100, 5_000, 2, 1_000, 5, 100, 3.0, 2, 300, 20_000, 5)
FULL = Sizes(1000, 1_000_000, 5, 2000, 2, 1000, 100_000, 5, 100_000, 20, 400, 10.0, 32, 2000, 0, 50)

HEADERS = ("db", "path", "casework", "plain SQL / peer", "ratio", "goal", "met")


@dataclass
class Row:
    db: str
    path: str
    casework: str
    other: str
    ratio: str
    goal: str
    met: bool | None  # None: no goal for this figure, or it could not be measured

    def cells(self) -> tuple[str, ...]:
        met = "-" if self.met is None else ("yes" if self.met else "no")
        return (self.db, self.path, self.casework, self.other, self.ratio, self.goal, met)


def load(name: str) -> ModuleType:
    """A bench script as a module (its ``main`` not run), under a name that shadows nothing."""
    spec = importlib.util.spec_from_file_location(
        f"bench_{name}", os.path.join(_common.HERE, f"{name}.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def rate(x: float) -> str:
    return f"{x:,.0f}/s"


def per(x: float, unit: str = "ms") -> str:
    return f"{x:,.1f} {unit}" if x < 100 else f"{x:,.0f} {unit}"


# --- The benches, each returning its rows ---------------------------------------------------


def transitions(db: str, engine: Engine, label: str, size: Sizes) -> list[Row]:
    bench = load("transitions")
    r = bench.bench_backend(
        db, engine, label, load_settings(environment="test"), size.transitions_cases
    )
    _, uc = r.total(r.use_case)
    _, plain = r.total(r.plain)
    rows = [
        Row(db, "transition vs the same writes in plain SQL", rate(uc), rate(plain),
            f"{r.ratio:.2f}x", ">= 0.50x", r.ratio >= bench.MIN_RATIO),
        Row(db, "statements per transition (max)", str(r.max_statements), "", "",
            f"<= {bench.MAX_STATEMENTS}", r.max_statements <= bench.MAX_STATEMENTS),
        Row(db, "commits per transition", "1" if r.commits_ok else "not always 1", "", "",
            "1", r.commits_ok),
        Row(db, "plain SQL wrote the same rows", "yes" if r.same_writes else "NO", "", "",
            "yes", r.same_writes),
    ]  # fmt: skip
    ours = 1e6 / uc
    path = "transition vs SpiffWorkflow's load-run-save, per step"
    try:
        spiff = spiff_step_seconds(engine, size.transitions_cases) * 1e6
    except ImportError as exc:
        rows.append(Row(db, path, per(ours, "µs"), f"not run ({exc.name} missing)", "",
                        "<= 0.5x", None))  # fmt: skip
    else:
        rows.append(Row(db, path, per(ours, "µs"), per(spiff, "µs"), f"{ours / spiff:.2f}x",
                        "<= 0.5x", ours / spiff <= 0.5))  # fmt: skip
    return rows


SPIFF_STEPS = ("advise", "decide", "certificate")


def _spiff_bpmn() -> bytes:
    """The mediation path as BPMN: one user task per transition the casework bench runs."""
    ids = ["start", *SPIFF_STEPS, "end"]
    nodes = ['<bpmn:startEvent id="start"/>', '<bpmn:endEvent id="end"/>'] + [
        f'<bpmn:userTask id="{s}" name="{s}"/>' for s in SPIFF_STEPS
    ]
    flows = [
        f'<bpmn:sequenceFlow id="f_{a}_{b}" sourceRef="{a}" targetRef="{b}"/>'
        for a, b in itertools.pairwise(ids)
    ]
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d"'
        ' targetNamespace="http://bpmn.io/schema/bpmn">'
        f'<bpmn:process id="mediation" isExecutable="true">{"".join(nodes + flows)}'
        "</bpmn:process></bpmn:definitions>"
    ).encode()


def spiff_step_seconds(engine: Engine, n: int) -> float:
    """Seconds per step of SpiffWorkflow's load-run-save, each step its own transaction.

    ``n`` workflows are stored serialized in their own table in the same database; each
    step selects one, deserializes it, completes its ready user task, runs the engine
    steps, serializes it and updates the row: what a workflow engine that keeps its state
    in the database pays per transition.
    """
    from SpiffWorkflow.bpmn import BpmnWorkflow
    from SpiffWorkflow.bpmn.parser import BpmnParser
    from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
    from SpiffWorkflow.util.task import TaskState
    from sqlalchemy import text

    parser = BpmnParser()
    parser.add_bpmn_str(_spiff_bpmn())
    spec = parser.get_spec("mediation")
    serializer = BpmnWorkflowSerializer()
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE bench_spiff (id INTEGER PRIMARY KEY, state TEXT NOT NULL)"))
        for i in range(n):
            workflow = BpmnWorkflow(spec)
            workflow.do_engine_steps()
            conn.execute(
                text("INSERT INTO bench_spiff (id, state) VALUES (:id, :state)"),
                {"id": i, "state": serializer.serialize_json(workflow)},
            )
    load = text("SELECT state FROM bench_spiff WHERE id = :id")
    save = text("UPDATE bench_spiff SET state = :state WHERE id = :id")
    started = time.perf_counter()
    for step in SPIFF_STEPS:
        for i in range(n):
            with engine.begin() as conn:
                workflow = serializer.deserialize_json(conn.execute(load, {"id": i}).scalar_one())
                task = workflow.get_next_task(state=TaskState.READY, manual=True)
                assert task is not None and task.task_spec.name == step
                task.data["by"] = "adviser"
                task.run()
                workflow.do_engine_steps()
                conn.execute(save, {"id": i, "state": serializer.serialize_json(workflow)})
    return (time.perf_counter() - started) / (n * len(SPIFF_STEPS))


def _fired(done: dict[str, Any]) -> None:
    """The peer's job: it only counts, so APScheduler's figure is its own overhead alone."""
    with done["lock"]:
        done["count"] += 1
        if done["count"] >= done["wanted"]:
            done["event"].set()


_DONE: dict[str, Any] = {}


def _apscheduler_job() -> None:
    _fired(_DONE)


def apscheduler_catch_up(engine: Engine, n: int) -> tuple[float, float]:
    """Seconds (wall, and CPU of this process) for APScheduler to fire ``n`` overdue jobs
    kept in its SQLAlchemy job store.

    The jobs sit in the same database as the clocks (their own table), all overdue, the
    scheduler started paused and then resumed: what a job-per-deadline design does when
    it catches up after downtime.
    """
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)  # APScheduler runs on the real clock
    _DONE.update(count=0, wanted=n, lock=threading.Lock(), event=threading.Event())
    store = SQLAlchemyJobStore(engine=engine, tablename="bench_apscheduler_jobs")
    scheduler = BackgroundScheduler(jobstores={"default": store}, timezone="UTC")
    scheduler.start(paused=True)
    try:
        for i in range(n):
            scheduler.add_job(
                _apscheduler_job,
                "date",
                run_date=past,
                id=f"clock-{i}",
                misfire_grace_time=None,
                replace_existing=True,
            )
        started, cpu = time.perf_counter(), time.process_time()
        scheduler.resume()
        if not _DONE["event"].wait(timeout=600):
            raise RuntimeError(f"APScheduler fired {_DONE['count']} of {n} jobs in 600 s")
        return time.perf_counter() - started, time.process_time() - cpu
    finally:
        scheduler.shutdown(wait=True)


CATCH_UP_TURNS = 5


def catch_up_turns(
    bench: ModuleType, engine: Engine, settings: Any, n: int
) -> tuple[float, float, float, float]:
    """Median seconds of (the sweep catching up ``n`` clocks, APScheduler firing ``n`` jobs),
    wall then CPU of this process.

    Why turns: one cold APScheduler run against the sweep's median swung the ratio
    between runs (the first run pays imports and an empty job table, and the machine's
    load shifts under a single sample). Each side runs once untimed, then they take
    turns, each turn a fresh catch-up for both, and the medians are compared. The CPU
    figures are the load-independent ones on SQLite, where both sides run wholly in
    this process; on PostgreSQL the server's share is not in them.
    """
    ours: list[tuple[float, float]] = []
    peer: list[tuple[float, float]] = []
    for turn in range(CATCH_UP_TURNS + 1):
        bench.reset(engine)
        # Each side starts with no garbage left by the other to collect mid-run (the
        # peer's thousand jobs leave plenty), and from an empty WAL (SQLite).
        gc.collect()
        started, cpu = time.perf_counter(), time.process_time()
        swept = bench.sweep(engine, bench.NOW, settings)
        elapsed = (time.perf_counter() - started, time.process_time() - cpu)
        assert swept.claimed == n, swept.as_dict()
        _common.timed_checkpoint(engine)  # the scheduler's checkpoint runs between
        gc.collect()
        fired = apscheduler_catch_up(engine, n)
        if turn:  # the first turn warms both sides
            ours.append(elapsed)
            peer.append(fired)
    bench.reset(engine)
    return (
        statistics.median(w for w, _ in ours),
        statistics.median(w for w, _ in peer),
        statistics.median(c for _, c in ours),
        statistics.median(c for _, c in peer),
    )


def sweep(db: str, engine: Engine, label: str, size: Sizes) -> list[Row]:
    bench = load("sweep")
    bench.TOTAL_DEADLINES = size.sweep_deadlines
    settings = load_settings(environment="test")
    fig = bench.bench_backend(
        db, engine, label, settings, size.sweep_repeats, False, diagnose=False
    )
    due = len(bench.due_ids())
    sweep_s, plain_s = fig.med(fig.sweep), fig.med(fig.plain)
    full_s = fig.med(fig.plain_with_notices)
    ratio = sweep_s / full_s
    rows = [
        Row(db, f"sweep: {due:,} due of {size.sweep_deadlines:,} clocks vs plain claim + mark"
            " + insert notices",
            per(sweep_s * 1000), per(full_s * 1000), f"{ratio:.1f}x", "<= 2x",
            ratio <= bench.TARGET_RATIO),
        Row(db, "  same, vs plain claim + mark only", per(sweep_s * 1000),
            per(plain_s * 1000), f"{sweep_s / plain_s:.1f}x", "", None),
        Row(db, "idle sweep (nothing due)", per(fig.med(fig.idle) * 1000), "", "",
            f"< {bench.TARGET_IDLE_MS:.0f} ms", fig.med(fig.idle) * 1000 < bench.TARGET_IDLE_MS),
        Row(db, "sweep's claim uses the partial index", "yes" if bench.INDEX in fig.plan else "no",
            "", "", "yes", bench.INDEX in fig.plan),
    ]  # fmt: skip
    try:
        ours, peer, ours_cpu, peer_cpu = catch_up_turns(bench, engine, settings, due)
    except ImportError as exc:
        missing = f"not run ({exc.name} missing)"
        path = f"catch-up of {due:,} overdue clocks vs APScheduler"
        rows.append(Row(db, path, per(sweep_s * 1000), missing, "", ">= 5x faster", None))
    else:
        rows.append(
            Row(db, f"catch-up of {due:,} overdue clocks vs APScheduler firing {due:,} jobs",
                per(ours * 1000), per(peer * 1000), f"{peer / ours:.1f}x faster",
                ">= 5x faster", peer / ours >= 5)
        )  # fmt: skip
        if db == "sqlite":  # both sides wholly in this process: its CPU is their cost
            rows.append(
                Row(db, "  same, CPU of this process (load-independent on SQLite)",
                    per(ours_cpu * 1000), per(peer_cpu * 1000),
                    f"{peer_cpu / ours_cpu:.1f}x less", "", None)
            )  # fmt: skip
    return rows


def dispatch(db: str, engine: Engine, label: str, size: Sizes, fakes: Any) -> list[Row]:
    bench = load("dispatch")
    bench.SDK_SENDS = size.sdk_sends
    for var in ("TWILIO_REGION", "TWILIO_EDGE", "SENDGRID_API_KEY"):
        os.environ.pop(var, None)  # they would redirect the SDKs away from the fakes
    fig = bench.bench_backend(
        engine, label, fakes, size.dispatch_notices, size.dispatch_repeats, False, diagnose=False
    )
    median = statistics.median(r.sent / r.seconds for r in fig.runs)
    sdk = bench.sdk_ceilings(bench.settings_for(fakes, "sqlite://"))
    ceiling = 2 / sum(1 / x for x in sdk.values())
    return [
        Row(db, "dispatch, one worker vs the SDKs alone (no DB)", rate(median), rate(ceiling),
            f"{median / ceiling:.2f}x", ">= 300/s", median >= 300),
    ]  # fmt: skip


def reports(db: str, size: Sizes) -> list[Row]:
    bench = load("reports")
    bench.CASES = size.report_cases
    figures: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="casework-bench-reports-") as tmp:
        failures = bench.run(db, size.report_repeats, tmp, figures)
    rows = []
    for name, ours, hand in figures:
        ok = ours <= bench.TIMELINESS_TARGET_MS and ours / hand <= bench.RATIO_TARGET
        rows.append(
            Row(db, f"report {name} ({size.report_cases:,} cases) vs hand-written SQL",
                per(ours), per(hand), f"{ours / hand:.2f}x",
                f"<= {bench.RATIO_TARGET:g}x, < {bench.TIMELINESS_TARGET_MS:.0f} ms", ok)
        )  # fmt: skip
    if not figures and failures:
        rows.append(Row(db, "reports", "failed", "", "", "", False))
    return rows


def web(db: str, size: Sizes) -> list[Row]:
    bench = load("web")
    args = argparse.Namespace(
        cases=size.web_cases,
        clients=size.web_clients,
        requests=size.web_requests,
        max_seconds=size.web_seconds,
        workers=1,
        open_rate=bench.OPEN_LOOP_RATE,
        open_seconds=size.web_seconds,
        throughput_seconds=size.web_seconds,
    )
    database = bench.sqlite_database if db == "sqlite" else bench.postgres_database
    with database() as (url, engine):
        figures = bench.run_all(db, url, engine, args)
    results = figures.closed

    def cpu_ms(r: Any) -> float | None:
        n = len(r.latencies)
        return r.cpu_seconds / n * 1000 if r.cpu_seconds is not None and n else None

    health = next(r for r in results if r.name == "GET /health")
    floor = cpu_ms(health)
    rows = []
    for r in results:
        if r.name not in ("GET / (dashboard)", "GET /cases/{ref} (case page)"):
            continue
        cpu = cpu_ms(r)
        if r.note or cpu is None:
            rows.append(Row(db, r.name, r.note or "no CPU figure", "", "", "<= 6 ms", None))
            continue
        rows.append(
            Row(db, f"{r.name}: server CPU per request, {size.web_cases:,} cases, vs /health",
                per(cpu), per(floor) if floor is not None else "?",
                f"{cpu / floor:.1f}x" if floor else "", "<= 6 ms", cpu <= 6.0)
        )  # fmt: skip
        rows.append(
            Row(db, f"  p95, {size.web_clients} clients back to back (closed loop)",
                per(r.pct(95)), per(health.pct(95)), "", "-", None)
        )  # fmt: skip
    loop = figures.open_loop
    if loop is not None and loop.latencies:
        goal = bench.OPEN_LOOP_P95_MS
        errors = sum(loop.errors.values())
        rows.append(
            Row(db, f"pages p95, open loop {loop.rate:.0f} req/s mix ({loop.planned} sent,"
                f" {errors} errors); p50 | p99", per(loop.pct(95)),
                f"{per(loop.pct(50))} | {per(loop.pct(99))}", "", f"< {goal:.0f} ms, 0 errors",
                loop.pct(95) < goal and errors == 0)
        )  # fmt: skip
    ratio = figures.workers_ratio
    if ratio is not None:
        one, two = figures.one_worker, figures.two_workers
        rows.append(
            Row(db, "pages throughput, serve --workers 2 vs --workers 1", rate(two.rate),
                rate(one.rate), f"{ratio:.2f}x", f">= {bench.WORKERS_RATIO_TARGET}x",
                ratio >= bench.WORKERS_RATIO_TARGET)
        )  # fmt: skip
    return rows


def crash(db: str, size: Sizes) -> list[Row]:
    bench = load("crash")
    figures: dict[str, int] = {}
    bench.campaign(db, size.crash_kills, size.crash_notices, 0.03, None, figures)
    held = figures["duplicates"] <= figures["in_flight"]
    return [
        Row(db, f"crash: {figures['kills']} kills, duplicates vs notices in flight at the kills",
            str(figures["duplicates"]), str(figures["in_flight"]), "", "<= in flight", held),
        Row(db, "  notices lost or left unsent", str(figures["lost"] + figures["not_sent"]), "",
            "", "0", figures["lost"] + figures["not_sent"] == 0),
        Row(db, "  most in flight at one kill vs 2 x sender threads",
            str(figures["most_at_one_kill"]), str(2 * figures["senders"]), "",
            "<= 2 x senders", figures["most_at_one_kill"] <= 2 * figures["senders"]),
    ]  # fmt: skip


def calendar(size: Sizes) -> list[Row]:
    bench = load("calendar")
    figures: dict[str, float] = {}
    bench.main(size.calendar_calls or bench.CALLS, figures)
    ours, numpy = figures["casework_us"], figures["numpy_us"]
    return [
        Row("-", "add_working_days vs numpy.busday_offset, per call", f"{ours:.2f} µs",
            f"{numpy:.2f} µs", f"{numpy / ours:.1f}x faster", ">= 1x, all agree",
            ours <= numpy and not figures["disagree"]),
    ]  # fmt: skip


def documents(size: Sizes) -> list[Row]:
    bench = load("documents")
    figures: dict[str, float] = {}
    bench.main(size.document_renders, figures)
    ours, plain = figures["casework_p95_ms"], figures["plain_p95_ms"]
    return [
        Row("-", "certificate PDF (tagged PDF/UA-1) vs plain WeasyPrint, p95",
            f"{ours:.0f} ms", f"{plain:.0f} ms", f"{ours / plain:.2f}x",
            f"each < {bench.TARGET_MS:.0f} ms", max(ours, plain) < bench.TARGET_MS),
    ]  # fmt: skip


# --- Running them -----------------------------------------------------------------------------


def attempt(name: str, db: str, fn: Callable[[], list[Row]], verbose: bool) -> list[Row]:
    """Run one bench, its own report shown only with --verbose (or when it fails)."""
    print(f"-- {name} ({db}) ...", end=" ", flush=True)
    out = io.StringIO()
    started = time.perf_counter()
    try:
        if verbose:
            rows = fn()
        else:
            with contextlib.redirect_stdout(out):
                rows = fn()
    except Exception as exc:
        print(f"FAILED after {time.perf_counter() - started:.0f}s")
        print(out.getvalue(), end="")
        traceback.print_exc()
        return [Row(db, name, f"failed: {type(exc).__name__}", "", "", "", False)]
    print(f"{time.perf_counter() - started:.0f}s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds a bench")
    parser.add_argument(
        "--backend", choices=("sqlite", "postgresql", "both"), default="both", help="default both"
    )
    parser.add_argument("--verbose", action="store_true", help="show each bench's own report")
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    print(f"casework benches, {'quick' if args.quick else 'full'} sizes")

    rows: list[Row] = []
    dispatch_bench = load("dispatch")
    with dispatch_bench.fakes_process() as fakes:
        for db, make in _common.backends(args.backend):
            for name, bench in (("transitions", transitions), ("sweep", sweep)):
                with make() as (engine, label):
                    rows += attempt(
                        name, db, lambda b=bench, d=db, e=engine, lb=label: b(d, e, lb, size),
                        args.verbose,
                    )  # fmt: skip
            with make() as (engine, label):
                rows += attempt(
                    "dispatch",
                    db,
                    lambda d=db, e=engine, lb=label: dispatch(d, e, lb, size, fakes),
                    args.verbose,
                )
            rows += attempt("reports", db, lambda d=db: reports(d, size), args.verbose)
            rows += attempt("web", db, lambda d=db: web(d, size), args.verbose)
            rows += attempt("crash", db, lambda d=db: crash(d, size), args.verbose)
    rows += attempt("calendar", "-", lambda: calendar(size), args.verbose)
    rows += attempt("documents", "-", lambda: documents(size), args.verbose)

    print()
    _common.print_table(HEADERS, [r.cells() for r in rows], left=2)
    missed = [r for r in rows if r.met is False]
    print(
        f"\n{sum(r.met is True for r in rows)} goals met, {len(missed)} not met"
        + (" (quick sizes: the goals are set at full size)" if args.quick else "")
    )
    _common.print_load(started, load_before)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
